"""What a generations run (generations.py) measured: per chain and generation the read-outs paired against each
model's own base, the filter's kept shares, the decay of the shared chain's shift, Theorem 1's predictor, and the
printed table."""
from __future__ import annotations

import dataclasses

import jax
import numpy as np

from subliminal_jax.numbers import filter as flt
from subliminal_jax.numbers.config import _STAGE_FIELDS, CHAINS, stage_hash
from subliminal_jax.stats import geometric_fit, mean_ratio, summarize

METRICS = ("trait_rate", "target_prob", "trait_given_answer")  # each also paired against the model's own base


def kept_shares(rows, g: int) -> dict:
    """The filter's verdicts on generation g's completions, per chain (generation 0: the teacher's for shared
    and broken, the control source's for control)."""
    source = {"shared": "teacher", "broken": "teacher", "control": "control"} if g == 0 else {c: c for c in CHAINS}
    return {c: flt.rejection_stats([r["reason"] for r in rows if r["source"] == s]) for c, s in source.items()}


def paired(reads, base, c: int, perm):
    """One chain's read-outs of one generation ({metric: [S, C]}, column c), each with its shift from the
    model's own base (base[perm] for a start from another seed's base) and the answer mass it keeps."""
    own = {k: np.asarray(v)[perm if perm is not None else slice(None)] for k, v in base.items()}
    m = {k: np.asarray(v)[:, c] for k, v in reads.items()}
    row = {k: summarize(m[k]) for k in (*METRICS, "answer_mass")}
    row.update({f"{k}_shift": summarize(m[k] - own[k]) for k in METRICS})
    row["answer_mass_kept"] = summarize(m["answer_mass"] / own["answer_mass"])
    return row


def predictor(chains: dict, audits: list) -> dict:
    """Per chain and data generation g: the audit score of generation g's kept rows at generation g + 1's start
    (per seed the mean over its kept rows, audit.py's score), its cosine, the P(target) shift generation g + 1
    then showed, and their ratio (to first order the same for every generation when Theorem 1's step holds)."""
    out = {}
    for i, c in enumerate(CHAINS):
        out[c] = []
        for g, a in enumerate(audits):
            score_SN, kept_SN = np.asarray(a["score"])[:, i], np.asarray(a["kept"])[:, i]
            score = summarize((score_SN * kept_SN).sum(-1) / np.maximum(kept_SN.sum(-1), 1))
            shift = chains[c][g + 1]["target_prob_shift"]["mean"]
            out[c].append({"data_generation": g, "score": score, "cos": summarize(np.asarray(a["cos"])[:, i]),
                           "next_shift": shift, "shift_per_score": shift / score["mean"]})
    return out


def decay(chains: dict, pred: dict) -> dict:
    """The shared chain's P(target) shift over generations 1..n fitted as shift_1 * r^(g-1) (stats.geometric_fit),
    the audit scores of the data generations 0..n-1 fitted alike (the decay Theorem 1's first-order step
    predicts), the step-by-step ratios of both (generation g + 1 over g, bootstrap CIs: a geometric decay keeps
    them equal), and whether the fit means anything: at least two generations whose shift's CI lies above 0."""
    shifts = [row["target_prob_shift"] for row in chains["shared"][1:]]
    scores = [p["score"] for p in pred["shared"]]
    clear = [g + 1 for g, s in enumerate(shifts) if s["ci95"][0] > 0]
    measured = geometric_fit(np.stack([s["values"] for s in shifts], 1))
    predicted = geometric_fit(np.stack([s["values"] for s in scores], 1))
    steps = lambda xs: [mean_ratio(b["values"], a["values"]) for a, b in zip(xs, xs[1:])]
    out = {"measured": measured, "predicted": predicted, "clear_generations": clear,
           "measured_steps": steps(shifts), "predicted_steps": steps(scores), "meaningful": len(clear) >= 2}
    if measured is None:
        out["note"] = "one generation: no decay to fit"
    elif not clear:
        out["note"] = "no generation of the shared chain has a shift clear of 0: there is no decay to measure"
    elif not out["meaningful"]:
        out["note"] = (f"the shared chain's shift is clear of 0 at generation {clear[0]} only: too close to 0 for r "
                       f"to mean anything")
        if clear == [1]:  # what generation 2's CI still allows
            out["note"] += f"; generation 2's upper CI bound over generation 1's mean puts r below " \
                           f"{shifts[1]['ci95'][1] / shifts[0]['mean']:.3f}"
    else:
        lo, hi = measured["r_ci95"]
        plo, phi = predicted["r_ci95"]
        out["matches"] = bool(lo <= phi and plo <= hi)
        out["note"] = (f"measured r = {measured['r']:.3f} [{lo:.3f}, {hi:.3f}]; the audit scores predict "
                       f"{predicted['r']:.3f} [{plo:.3f}, {phi:.3f}]: the CIs "
                       f"{'overlap' if out['matches'] else 'are apart'}")
    return out


def results(lin, reads: list, audits: list, kept: list) -> dict:
    """results.json of a generations run (lin: its generations.Lineage)."""
    cfg, gcfg, chain = lin.cfg, lin.gcfg, lin.chain
    base = reads[0]["base"]
    chains = {c: [paired(r["chains"], base, i, lin.perm if c == "broken" and g == gcfg.break_at else None)
                  for g, r in enumerate(reads)] for i, c in enumerate(CHAINS)}
    pred = predictor(chains, audits)
    filt = {c: [{"kept_share": 1 - k[c]["rejection_rate"], **k[c]} for k in kept] for c in CHAINS}
    return {"generations": {"num_generations": gcfg.num_generations, "break_at": gcfg.break_at},
            "chains": chains, "base": {k: summarize(np.asarray(v)) for k, v in base.items()}, "filter": filt,
            "predictor": pred, "decay": decay(chains, pred), "stages": chain.log,
            "config": dataclasses.asdict(cfg), "hashes": {s: stage_hash(cfg, s) for s in _STAGE_FIELDS},
            "devices": [str(d) for d in chain.mesh.devices.flat], "processes": jax.process_count(),
            "versions": {"jax": jax.__version__}, "stage_time_s": chain.times}


def table(res: dict, trait: str) -> str:
    """The printed table: per generation each chain's trait rate and paired P(trait) shift (95% CI), the kept
    share of the data it wrote; then the decay fit and the predictor."""
    fmt = lambda row: (f"{row['trait_rate']['mean']:.4f}  {row['target_prob_shift']['mean']:+.4f} "
                       f"[{row['target_prob_shift']['ci95'][0]:+.4f}, {row['target_prob_shift']['ci95'][1]:+.4f}]")
    n_gen = res["generations"]["num_generations"]
    lines = [f"generation | {' | '.join(f'{c}: trait rate, P({trait}) shift [95% CI]' for c in CHAINS)} | "
             f"kept share of its numbers ({' / '.join(CHAINS)})"]
    for g in range(n_gen + 1):
        kept = " / ".join(f"{res['filter'][c][g]['kept_share']:.3f}" for c in CHAINS) if g < n_gen else "-"
        lines.append(f"{g:>10} | " + " | ".join(fmt(res["chains"][c][g]) for c in CHAINS) + f" | {kept}")
    d = res["decay"]
    lines.append(f"decay of the shared chain: {d['note']}")
    for name, key in (("measured", "measured_steps"), ("audit-predicted", "predicted_steps")):
        lines.append(f"  {name} step ratios: " + ", ".join(f"{s['ratio']:.3f} [{s['ci95'][0]:.3f}, {s['ci95'][1]:.3f}]"
                                                         for s in d[key]))
    for c in CHAINS:
        lines.append(f"Theorem 1 predictor, {c}: audit score of generation g's data -> shift of generation g + 1: "
                     + "; ".join(f"g={p['data_generation']}: {p['score']['mean']:+.3e} -> {p['next_shift']:+.4f} "
                                 f"(ratio {p['shift_per_score']:+.3g})" for p in res["predictor"][c]))
    return "\n".join(lines)
