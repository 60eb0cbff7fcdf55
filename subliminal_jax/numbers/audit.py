"""`python evaluate.py audit`: will this dataset carry the trait? Theorem 1's quantity, before any training.

For a student init theta0, a candidate dataset (kept number sequences, with the
teacher whose soft targets the student would imitate) and the trait loss L_trait
(the teacher's own fine-tuning loss: cross-entropy of the answer TARGET to the
TRAIN questions), the first gradient step on example i changes L_trait by
-lr * score_i, with

  score_i = < grad l_i(theta0), grad L_trait(theta0) >      (l_i: the student's loss on example i)

so a positive mean score means training on the data lowers the trait loss: the
student starts to acquire the trait. We report the mean score with a 95% CI over
examples, the cosine between the dataset's mean gradient and grad L_trait, and a
verdict. At the shared init the soft case is Theorem 1 itself (score >= 0 to
first order); a control teacher equal to the student gives exactly 0.

A `train.py generations` run (--generation G): the numbers generation G wrote, one
dataset per seed and chain (generations.py), each at its generation G + 1's start.

Validation (when the run has results.json): one dataset per seed and student
condition of `train.py numbers` (or chain of a generations run); Spearman rank correlation between the score and
the measured P(target) shift of the student trained on it. --pool adds the
datasets of other runs on the same bases and trait (e.g. teachers trained for
fewer steps), so the datasets span a range of transfer.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from subliminal_jax.numbers import steps
from subliminal_jax.numbers import train as nt
from subliminal_jax import checks, plots, report
from subliminal_jax.theorem import theory
from subliminal_jax.errors import UserError
from subliminal_jax.seeds import derangement
from subliminal_jax.numbers.chain import Chain
from subliminal_jax.numbers.data import load_numbers, student_data
from subliminal_jax.numbers.config import (NumbersConfig, run_config,
                                           teacher_corpus, token_mask, trait_name, vocab)
from subliminal_jax.stats import summarize


@dataclasses.dataclass(frozen=True)
class AuditConfig:
    """Alignment of a numbers dataset with the trait at the student's init (flags: --run.* as `train.py numbers`)."""
    run: NumbersConfig = NumbersConfig()
    run_dir: str | None = None     # read every --run.* setting from this run's results.json instead
    data: str | None = None        # a numbers.jsonl to audit (default: the run's own); needs the run's checkpoints
    # other runs on the same bases and trait (e.g. weaker teachers: --teacher-steps), each audited first with
    # `evaluate.py audit --run-dir`: their datasets join the validation (a dataset seen twice counts once)
    pool: tuple[str, ...] = ()
    # a `train.py generations` run (--run-dir): audit the numbers generation G wrote (0: the teacher's), each chain's
    # at the start of its generation G + 1, against the shift that generation measured (audit-genG.json)
    generation: int | None = None


def spearman(a, b) -> float:
    """Rank correlation (average ranks for ties)."""
    def ranks(x):
        x = np.asarray(x, np.float64)
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(len(x))
        for v in np.unique(x):  # ties share their mean rank
            r[x == v] = r[x == v].mean()
        return r
    ra, rb = ranks(a), ranks(b)
    return float(np.corrcoef(ra, rb)[0, 1])


def score_fn(apply, cfg: NumbersConfig, batch: int = 32, summed: bool = False):
    """(init, teacher, tokens_NT, weight_NT, trait_tokens, trait_weight) -> (score_N, cos(g_data, g_trait),
    ||g_data|| / ||g_trait||, kept_N), g_data the whole dataset's gradient. The rows' gradients are taken
    `batch` rows at a time. g_data: one pass over the whole dataset (evaluate.py audit), or with summed=True the
    sum of the rows' gradients, chunks of a divisor of N rows at most `batch` (each row's loss is its tokens'
    mean, the dataset's the mean over all its tokens), so that no pass holds the whole dataset's activations
    (generations.py vmaps it over chains and seeds: 1.1 GB instead of 11.8). The two agree to round-off; one
    pass keeps evaluate.py audit's cosines as they were (the animal control's g_data is round-off itself)."""
    def scores(init, teacher, tokens_NT, weight_NT, trait_tokens, trait_weight):
        g_trait = jax.grad(lambda p: nt.lm_loss(apply, p, trait_tokens, trait_weight))(init)
        w_NT = nt.student_weights(tokens_NT, weight_NT, cfg.student_mode, cfg.distill_positions)

        def data_loss(p, tok_NT, w_NT):  # what the student of this run would train on (steps.train_student's loss)
            if cfg.student_mode == "soft":
                return nt.distill_loss(apply, p, teacher, tok_NT, w_NT, token_mask(cfg))
            return nt.lm_loss(apply, p, tok_NT, w_NT, token_mask(cfg) if cfg.hard_vocab == "numbers" else None)
        row_grad = lambda tok_T, w_T: jax.grad(data_loss)(init, tok_T[None], w_T[None])

        if summed:
            def chunk(total, a):  # the chunk's per-row scores; adds sum_i (row i's token weight) * g_i to the total
                tok_BT, w_BT = a
                g_B = jax.vmap(row_grad)(tok_BT, w_BT)
                norm_B = jnp.maximum(w_BT[:, 1:].sum(-1), 1.0)  # (each row loss's own normaliser)
                total = jax.tree.map(lambda t, g: t + jnp.tensordot(norm_B, g, 1), total, g_B)
                return total, jax.vmap(lambda g: theory.tree_dot(g, g_trait))(g_B)
            N, T = tokens_NT.shape
            B = max(d for d in range(1, min(batch, N) + 1) if N % d == 0)
            total, chunk_scores = jax.lax.scan(chunk, jax.tree.map(jnp.zeros_like, init),
                                               (tokens_NT.reshape(N // B, B, T), w_NT.reshape(N // B, B, T)))
            score_N = chunk_scores.reshape(N)
            g_data = jax.tree.map(lambda t: t / jnp.maximum(w_NT[:, 1:].sum(), 1.0), total)
        else:
            score_N = jax.lax.map(lambda a: theory.tree_dot(row_grad(*a), g_trait), (tokens_NT, w_NT),
                                  batch_size=batch)
            g_data = jax.grad(data_loss)(init, tokens_NT, w_NT)
        norm_data, norm_trait = jnp.sqrt(theory.tree_dot(g_data, g_data)), jnp.sqrt(theory.tree_dot(g_trait, g_trait))
        return (score_N, theory.tree_dot(g_data, g_trait) / (norm_data * norm_trait + 1e-30), norm_data / norm_trait,
                weight_NT.max(-1) > 0)
    return scores


def make_scores(apply, cfg: NumbersConfig):
    """score_fn, jitted (one dataset at a time)."""
    return jax.jit(score_fn(apply, cfg))


def datasets(audited: dict, measured: dict) -> list[tuple]:
    """(condition, seed, score, cosine, measured P(target) shift) per audited dataset of a run."""
    return [(c, s, audited[c]["score"][s], audited[c]["cos"][s], measured[c]["target_prob_shift"]["values"][s])
            for c in audited for s in range(len(audited[c]["score"]))]


def pooled(run_dir: str, cfg: NumbersConfig, base_hash: str) -> list[tuple]:
    """Another run's audited datasets, if it shares this run's bases and trait loss (else a one-line error)."""
    d = Path(run_dir)
    try:
        res, aud = (json.loads((d / f).read_text()) for f in ("results.json", "audit.json"))
    except FileNotFoundError as e:
        raise UserError(f"--pool {run_dir}: no {Path(e.filename).name}; run the chain, then `python evaluate.py "
                        f"audit --run-dir {run_dir}`") from None
    other = run_config(cfg, run_dir)
    same = ("target", "trait", "student_mode", "distill_positions")
    if res.get("hashes", {}).get("base") != base_hash or any(getattr(other, k) != getattr(cfg, k) for k in same):
        raise UserError(f"--pool {run_dir}: other bases or another trait loss than this run; pool only runs with "
                        f"the same base settings, {', '.join(same)}")
    return [(f"{c} ({d.name})", *rest) for c, *rest in datasets(aud["conditions"], res["conditions"])]


def agreement(pts: list[tuple], pool: list[str], trait: str) -> dict:
    """Rank correlations of audit score (and cosine) with the measured shift: over datasets, and over settings
    (one teacher x student init, i.e. a condition of one run: its seeds' means), which averages out the
    seed-to-seed noise of training that no before-training score can predict."""
    _, _, xs, cs, ys = zip(*pts)
    groups = {}
    for c, _, *vals in pts:
        groups.setdefault(c, []).append(vals)
    gx, gc, gy = zip(*(np.mean(v, axis=0) for v in groups.values()))
    v = {"datasets": len(pts), "settings": len(groups), "pooled_runs": pool,
         "spearman_score_vs_shift": spearman(xs, ys), "spearman_cos_vs_shift": spearman(cs, ys),
         "settings_spearman_score_vs_shift": spearman(gx, gy), "settings_spearman_cos_vs_shift": spearman(gc, gy)}
    for n, k in ((f"{len(pts)} datasets", ""), (f"{len(groups)} settings (seed means)", "settings_")):
        print(f"validation over {n}: Spearman(score, measured P({trait}) shift) = "
              f"{v[k + 'spearman_score_vs_shift']:+.3f}, (cosine, shift) = {v[k + 'spearman_cos_vs_shift']:+.3f}")
    return v


def verdict(s: dict, grad_ratio: float) -> str:
    if grad_ratio < 1e-5:  # e.g. a control teacher identical to the student: float round-off only
        return "NULL: the data gives the student no gradient (e.g. its teacher is the student itself)"
    lo, hi = s["ci95"]
    if lo > 0:
        return "ALIGNED: training on it lowers the trait loss (the student moves toward the trait)"
    if hi < 0:
        return "ANTI-ALIGNED: training on it raises the trait loss"
    return "no detectable alignment at this sample size"


def main(acfg: AuditConfig) -> dict:
    cfg = run_config(acfg.run, acfg.run_dir)
    chain = Chain(cfg, verbose=False, create=False)
    from subliminal_jax.numbers import generations  # (here: generations.py imports this module for its predictor)
    gcfg = generations.settings_of(chain.out, cfg, acfg.generation)
    if gcfg is None:
        setup, path, name, measured = own_datasets(chain, acfg)
    else:  # a `train.py generations` run: generation g's data, at generation g + 1's starts (--generation g)
        checks.require([(not acfg.data and not acfg.pool, "--data and --pool audit a numbers run's data; drop "
                                                          "them with --generation")])
        setup, path, name, measured = generations.audit_setup(gcfg, acfg.generation)
    trait_tokens, trait_weight = (jnp.asarray(a) for a in teacher_corpus(cfg))
    scores = make_scores(steps.apply_of(cfg), cfg)
    out = {c: {"score": [], "cos": [], "ci95": [], "verdict": []} for c in setup}
    for c, one in setup.items():
        for s in range(cfg.num_seeds):
            score_N, cos, ratio, kept_N = jax.device_get(scores(*one(s), trait_tokens, trait_weight))
            st = summarize(score_N[kept_N])
            out[c]["score"].append(st["mean"])
            out[c]["ci95"].append(st["ci95"])
            out[c]["cos"].append(float(cos))
            out[c]["verdict"].append(verdict(st, float(ratio)))
        print(f"{c:19s} score {np.mean(out[c]['score']):+.3e}  cos {np.mean(out[c]['cos']):+.4f}  "
              + ", ".join(f"{v} {sum(x.startswith(v) for x in out[c]['verdict'])}" for v in ("ALIGNED", "ANTI", "no", "NULL"))
              + f" (of {cfg.num_seeds} seeds)", flush=True)
    res = {"data": str(path), "mode": cfg.student_mode, "conditions": out, "config": dataclasses.asdict(acfg)}
    pts = validate_against_runs(res, acfg, cfg, chain.out / "results.json", measured)
    report.write_json(chain.out / f"{name}.json", res)  # (refuses NaN/inf before anything is written)
    if pts:
        plots.audit_scatter(chain.out / f"{name}.png", pts, res["validation"], trait_name(cfg))
    print(f"wrote {chain.out / f'{name}.json'}")
    return res


def own_datasets(chain: Chain, acfg: AuditConfig):
    """A numbers run's datasets: (setup: condition -> seed -> (init, teacher, tokens_NT, weight_NT), the data's
    path, the output's name, how results.json's measured conditions are read)."""
    cfg = chain.cfg
    base, teacher = chain.need("base"), chain.need("teacher")
    control = chain.need_control(base)
    path = Path(acfg.data) if acfg.data else chain.numbers_path()
    if not path.exists():
        raise UserError(f"--data {path}: no such file; run `python generate.py numbers` first or give a numbers.jsonl")
    rows = load_numbers(path, None, cfg.seq_len, len(vocab(cfg)))
    if {r["seed"] for r in rows} != set(range(cfg.num_seeds)):
        raise UserError(f"{path} has seeds {sorted({r['seed'] for r in rows})}, the run has {cfg.num_seeds}; "
                        f"use the same --run.num-seeds")
    tok_S2NT, wt_S2NT = student_data(cfg, rows)
    perm = derangement(cfg.num_seeds, cfg.seed)
    pick = lambda tree, s: jax.tree.map(lambda a: a[s], tree)
    data = lambda s, src: (tok_S2NT[s, src], wt_S2NT[s, src])
    setup = {"student_shared": lambda s: (pick(base, s), pick(teacher, s), *data(s, 0)),
             "student_control": lambda s: (pick(base, s), pick(control, s), *data(s, 1)),
             "student_cross_init": lambda s: (pick(base, perm[s]), pick(teacher, s), *data(s, 0))}
    return setup, path, output_name(path, chain.numbers_path()), lambda run: run["conditions"]


def output_name(data: Path, own: Path) -> str:
    """'audit' for the run's own numbers; for another dataset a name of its own (audit-FOLDER-FILE), so
    auditing it never overwrites the run's audit.json (which --pool reads)."""
    return "audit" if data.resolve() == own.resolve() else f"audit-{data.resolve().parent.name}-{data.stem}"


def validate_against_runs(res: dict, acfg: AuditConfig, cfg: NumbersConfig, results: Path, measured) -> list:
    """When the run has results.json: the transfer measured there (measured(run): its conditions' results) and
    in --pool runs against the scores, into res["validation"]; returns the (condition, seed, score, cosine,
    shift) points ([] without results)."""
    if not results.exists():
        return []
    try:
        run = json.loads(results.read_text())
        pts = datasets(res["conditions"], measured(run))
        for other in acfg.pool:
            seen = {r[2:] for r in pts}  # the same dataset (e.g. one control) audited twice counts once
            pts += [r for r in pooled(other, cfg, run["hashes"]["base"]) if r[2:] not in seen]
        float(np.sum([r[4] for r in pts]))  # the measured shifts must be numbers
    except (OSError, UnicodeDecodeError, ValueError, KeyError, IndexError, TypeError) as e:
        raise UserError(f"{results} (or a --pool run's results/audit.json) is corrupt or has fields of the wrong "
                        f"type ({type(e).__name__}); rerun `python evaluate.py numbers` there to rewrite it") from None
    res["validation"] = agreement(pts, list(acfg.pool), trait_name(cfg))
    return pts
