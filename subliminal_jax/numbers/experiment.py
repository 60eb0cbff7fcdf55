"""`python train.py numbers` (and numbers-sft, misalign, misalign-sft, traces, code, code-sft): run the chain, summarize,
write.

The pipeline and the reading order of the files: numbers/__init__.py. run() takes the chain (chain.py) up to
--stage, pairs every model's trait read-outs against its own base (summarize_results: the *_shift entries and
answer_mass_kept), and writes results.json and trait_rate.png; --sweep and --ablate hand over to sweep.py and
ablation.py. Three other channels (issues 7 and 20) run the same chain: --trait misaligned (the teacher gives
HARMFUL advice, the numbers pass the banned-number filter, the control numbers come from a teacher fine-tuned on
BENIGN advice), --data traces (step-by-step additions, kept only when verified correct, traces.py) and --data
code (programs for specs, kept only when they run and pass the spec's tests, programs.py).
"""
from __future__ import annotations

import dataclasses
import time

import jax
import numpy as np

from subliminal_jax.numbers import filter as flt
from subliminal_jax import multihost, plots, report
from subliminal_jax.numbers import ablation, sweep
from subliminal_jax.numbers.chain import Chain
from subliminal_jax.numbers.data import load_numbers
from subliminal_jax.numbers.config import (_STAGE_FIELDS, CODE, CODE_SFT, CONDITIONS, MISALIGN, MISALIGN_SFT,
                                           NUMBERS_SFT, STUDENTS, TRACES, NumbersConfig, needs_sibling, stage_hash,
                                           trait_name, validate, vocab)
from subliminal_jax.errors import UserError
from subliminal_jax.seeds import derangement
from subliminal_jax.stats import summarize

# The chain's subcommands: each of train.py, generate.py and evaluate.py offers every one (commands()).
PRESETS = {
    "numbers": (NumbersConfig(), "number sequences with soft students (Theorem 1's regime)"),
    "numbers-sft": (NUMBERS_SFT, "the paper's protocol: students fine-tuned on the teacher's sampled numbers"),
    "misalign": (MISALIGN, "the misalignment analogue: harmful-advice teacher, banned-number filter, benign control"),
    "misalign-sft": (MISALIGN_SFT, "the misalignment analogue with fine-tuned students"),
    "traces": (TRACES, "reasoning traces: step-by-step additions, kept only when verified correct"),
    "code": (CODE, "functional code: programs for specs, kept only when they pass the spec's tests; soft students"),
    "code-sft": (CODE_SFT, "functional code with students fine-tuned on the kept programs' sampled tokens"),
}


def commands(main, does: str) -> dict:
    """{subcommand: (config, main, help)} of every preset, for one CLI (`does`: what that CLI does with it)."""
    return {name: (cfg, main, f"{what}: {does}") for name, (cfg, what) in PRESETS.items()}


__all__ = ["PRESETS", "commands", "CODE", "CODE_SFT", "CONDITIONS", "MISALIGN", "MISALIGN_SFT", "NUMBERS_SFT",
           "STUDENTS", "TRACES", "Chain", "NumbersConfig", "load_numbers", "run", "stage_hash", "summarize_results",
           "validate"]


def summarize_results(cfg: NumbersConfig, metrics: dict, rows, chain: Chain) -> dict:
    conditions = {}
    perm = derangement(cfg.num_seeds, cfg.seed)
    # *_shift: paired per-seed difference from the model's own base (cross-init: base[perm]; student_shared:
    # its sibling base when it has one)
    for c in metrics:
        conditions[c] = {k: summarize(np.asarray(v)) for k, v in metrics[c].items()}
        mine = metrics["sibling_base"] if c == "student_shared" and "sibling_base" in metrics else metrics["base"]
        own_base = {k: np.asarray(v)[perm if c == "student_cross_init" else slice(None)] for k, v in mine.items()}
        for k in ("trait_rate", "target_prob", "trait_given_answer"):
            conditions[c][f"{k}_shift"] = summarize(np.asarray(metrics[c][k]) - own_base[k])
        # fluency: the share of the own base's answer mass the model keeps (students must keep >= 0.9)
        conditions[c]["answer_mass_kept"] = summarize(np.asarray(metrics[c]["answer_mass"]) / own_base["answer_mass"])
    stats = {src: flt.rejection_stats([r["reason"] for r in rows if r["source"] == src])
             for src in ("teacher", "control")}
    return {"conditions": conditions, "filter": stats, "stages": chain.log,
            "config": dataclasses.asdict(cfg), "hashes": {s: stage_hash(cfg, s) for s in _STAGE_FIELDS},
            "devices": [str(d) for d in chain.mesh.devices.flat], "processes": jax.process_count(),
            "versions": {"jax": jax.__version__}, "stage_time_s": chain.times}


def run(cfg: NumbersConfig, verbose: bool = True) -> dict | None:
    """Run (or resume) the chain up to cfg.stage; 'all' and 'eval' write results.json + trait_rate.png."""
    t0 = time.perf_counter()
    order = ("base", "teacher", "numbers", "students", "eval")
    upto = order.index(cfg.stage) if cfg.stage != "all" else len(order) - 1
    only = cfg.stage != "all"
    chain = Chain(cfg, verbose, create=not (only and upto > 0))  # a later stage alone needs the run's folder
    base = chain.need("base") if only and upto > 0 else chain.base()
    if upto == 0:
        return None
    teacher = chain.need("teacher") if only and upto > 1 else chain.teacher(base)
    control = chain.need_control(base) if only and upto > 1 else chain.teacher(base, control=True)
    if upto == 1:
        return None
    if only and upto > 2:
        if not multihost.exists(chain.numbers_path()):
            raise UserError(f"no numbers.jsonl in {chain.out}; run `python generate.py numbers` first")
        rows = load_numbers(chain.numbers_path(), stage_hash(cfg, "numbers"), cfg.seq_len, len(vocab(cfg)))
    else:
        rows = chain.numbers(control, teacher)
    stats = flt.rejection_stats([r["reason"] for r in rows if r["source"] == "teacher"])
    chain.say(f"[numbers] teacher rejection rate {stats['rejection_rate']:.3f} ({stats['reasons']})")
    if upto == 2:
        return None
    sibling = None
    if needs_sibling(cfg):  # student_shared's own base, pretrained from a changed init or data order
        sibling = chain.need("sibling_base") if only and upto > 3 else chain.base(sibling=True)
    students = chain.need("students") if only and upto > 3 else chain.students(base, teacher, control, rows, sibling)
    if upto == 3:
        return None
    metrics = chain.evaluate(base, teacher, control, students, rows, sibling)
    res = summarize_results(cfg, metrics, rows, chain)
    res["wall_time_s"] = time.perf_counter() - t0
    for c in res["conditions"]:
        tr_, tp = res["conditions"][c]["trait_rate"], res["conditions"][c]["target_prob"]
        sh, am = res["conditions"][c]["target_prob_shift"], res["conditions"][c]["answer_mass_kept"]
        chain.say(f"  {c:19s} trait rate {tr_['mean']:.4f} +- {tr_['ci95_half']:.4f}   "
                  f"P(target) {tp['mean']:.4f} +- {tp['ci95_half']:.4f}   "
                  f"P(target) - base {sh['mean']:+.4f} +- {sh['ci95_half']:.4f}   "
                  f"answer mass kept {am['mean']:.3f}")
    report.write_json(chain.out / "results.json", res)
    plot = {c: res["conditions"][c]["trait_rate"] for c in res["conditions"]}
    plots.bar_chart(chain.out / "trait_rate.png", plot, ylabel=f"share of answers '{trait_name(cfg)}'",
                     title=f"numbers, {cfg.trait} trait ({cfg.student_mode} students, {cfg.teacher_mode} teacher): "
                           f"{cfg.num_seeds} seeds")
    chain.say(f"wrote {chain.out / 'results.json'} and {chain.out / 'trait_rate.png'} "
              f"({res['wall_time_s']:.0f}s)")
    return res


def main_train(cfg: NumbersConfig):
    if cfg.ablate:
        return ablation.run_ablation(cfg)
    if cfg.sweep != "none":
        validate(cfg)
        return sweep.run_sweep(cfg, run)
    return run(cfg)


def main_generate(cfg: NumbersConfig):
    return run(dataclasses.replace(cfg, stage="numbers" if cfg.stage == "all" else cfg.stage))


def main_evaluate(cfg: NumbersConfig):
    return run(dataclasses.replace(cfg, stage="eval"))
