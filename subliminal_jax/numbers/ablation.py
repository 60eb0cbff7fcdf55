"""What must be shared (issue 18): student_shared re-started from changed inits, one row each, on one run's numbers.

`python train.py numbers --ablate ROW [ROW ...]` (numbers-sft alike) runs the chain in --out-dir up to its numbers
(every stage reused when its checkpoint is there), then for each ROW, under --out-dir/ablation/ROW/:
  sibling_base    the teacher's init changed as ROW says, pretrained on the same corpus and data order
                  (chain.Chain.base(sibling=True), the base's own code)
  student_shared  trained from it on the teacher's kept numbers exactly as the chain's student_shared (same
                  loss, steps and data order, key stream 5), soft or fine-tuned as the config says
  eval            P(target) on the held-out questions; the shift is paired per seed against the student's own
                  starting base (the sibling base; the teacher's base for `shared` and `permuted`)
ROW is one of
  shared          the teacher's base itself: the chain's student_shared, recomputed (the reference row)
  PART=random,... --student-init: those parts of the teacher's init re-drawn (inits.transformer_parts)
  permuted        --student-init permuted: the base with every block's heads and MLP units permuted
  lambda=X        --init-lambda X: the whole init mixed with an independent draw (X = 1: independent)
  other-data      --student-base-data other: the teacher's very init, pretrained on another data order
Only student_shared is trained per row: the control and cross-init students do not depend on the student's
init (the chain's own results.json has them). --base-from RUN also takes RUN's sibling bases
(RUN/ablation/ROW/checkpoints/sibling_base, e.g. the soft rows' for the fine-tuned ones: the same settings hash).
Writes ablation.json and ablation.png (the shift against the init distance and against the distance between
the pretrained bases).
"""
from __future__ import annotations

import dataclasses
import functools
import shutil
import time
from pathlib import Path

import numpy as np

from subliminal_jax import inits, multihost, plots, report
from subliminal_jax.errors import UserError
from subliminal_jax.numbers import data as nd
from subliminal_jax.numbers import sampler, steps
from subliminal_jax.numbers.chain import Chain
from subliminal_jax.numbers.config import NumbersConfig, eval_questions, needs_sibling, validate
from subliminal_jax.stats import summarize


def row_config(cfg: NumbersConfig, row: str) -> NumbersConfig:
    """The config whose student_shared a ROW describes (validated: an unknown part is one line)."""
    if row == "shared":
        change = {}
    elif row == "other-data":
        change = {"student_base_data": "other"}
    elif row.startswith("lambda="):
        try:
            change = {"init_lambda": float(row.removeprefix("lambda="))}
        except ValueError:
            raise UserError(f"--ablate {row!r}: lambda=X needs a number in [0, 1], e.g. lambda=0.1") from None
    else:
        change = {"student_init": row}
    sub = dataclasses.replace(cfg, **change, ablate=(), sweep="none", sweep_values=(),
                              out_dir=str(Path(cfg.out_dir) / "ablation" / row), base_from="")
    try:
        validate(sub)
    except UserError as e:
        raise UserError(f"--ablate {row!r}: {e}") from None
    return sub


def run_ablation(cfg: NumbersConfig, verbose: bool = True) -> dict:
    t0 = time.perf_counter()
    validate(cfg)
    subs = {row: row_config(cfg, row) for row in cfg.ablate}  # every row checked before any compute or folder
    chain = Chain(dataclasses.replace(cfg, ablate=()), verbose)
    base = chain.base()
    teacher, control = chain.teacher(base), chain.teacher(base, control=True)
    tok_S2NT, wt_S2NT = nd.student_data(cfg, chain.numbers(control, teacher))
    plain_QP = sampler.left_pad(nd.eval_prompts(questions=eval_questions(cfg)), cfg.seq_len)

    # the chain's own student_shared step (source 0, the "students" key stream) and start permutation, so that
    # the `shared` row retrains exactly the chain's student_shared; one function object each, so that every row
    # reuses the first row's compiled programs
    def train_shared(key, start, teacher, tokens_2NT, weights_2NT):
        return steps.train_student(start, teacher, tokens_2NT[0], weights_2NT[0], steps.stream(key, "students"),
                                   cfg=cfg)

    def permute(key, base):
        return inits.permute_transformer(base, steps.stream(key, "permute"), cfg.model.n_heads)[0]

    def evaluate(key, student, start, base, plain_QP, start_model):
        return {"student": steps.trait(student, plain_QP, key, "student_shared", cfg=cfg),
                "start": steps.trait(start, plain_QP, key, start_model, cfg=cfg),
                "start_distance": inits.relative_distance(start, base)}

    rows = {}
    for row, sub_cfg in subs.items():
        chain.say(f"--- ablation row {row}")
        sub = Chain(sub_cfg, verbose)
        src = Path(cfg.base_from) / "ablation" / row / "checkpoints" / "sibling_base"
        dst = sub.out / "checkpoints" / "sibling_base"
        if cfg.base_from and multihost.exists(src) and not multihost.exists(dst):
            multihost.main_only(shutil.copytree, src, dst)
        sibling = sub.base(sibling=True) if needs_sibling(sub_cfg) else None
        start = base if sibling is None else sibling
        if sub_cfg.student_init == "permuted":
            start = sub.map_seeds("permute", permute, seeded=dict(key=sub.keys_S, base=base))

        def compute():
            params, loss_SU = sub.map_seeds("student_shared", train_shared,
                                            seeded=dict(key=sub.keys_S, start=start, teacher=teacher,
                                                        tokens_2NT=tok_S2NT, weights_2NT=wt_S2NT))
            return params, {"loss_first": float(loss_SU[:, :10].mean()), "loss_last": float(loss_SU[:, -20:].mean())}
        student = sub.cached("student_shared", compute)
        start_model = "base" if sibling is None else "sibling_base"
        got = sub.map_seeds("eval", functools.partial(evaluate, start_model=start_model),
                            seeded=dict(key=sub.keys_S, student=student, start=start, base=base),
                            shared=dict(plain_QP=plain_QP))
        rows[row] = {**summarize_row(got, sub), "stage_time_s": sub.times}
        r = rows[row]
        init = "-" if r["init_distance"] is None else f"{r['init_distance']:.3f}"
        chain.say(f"  {row}: P(target) shift {r['target_prob_shift']['mean']:+.4f} "
                  f"[{r['target_prob_shift']['ci95'][0]:+.4f}, {r['target_prob_shift']['ci95'][1]:+.4f}], "
                  f"init distance {init}, start distance {r['start_distance']['mean']:.3f}")
    out = {"rows": rows, "config": dataclasses.asdict(cfg), "stage_time_s": chain.times,
           "wall_time_s": time.perf_counter() - t0}
    report.write_json(chain.out / "ablation.json", out)
    plots.ablation_plot(chain.out / "ablation.png", out)
    chain.say(f"wrote {chain.out / 'ablation.json'} and {chain.out / 'ablation.png'} ({out['wall_time_s']:.0f}s)")
    return out


def summarize_row(got: dict, sub: Chain) -> dict:
    """Per seed: the student's trait metrics paired against its starting base's, and the two distances."""
    student, start = ({k: np.asarray(v) for k, v in got[m].items()} for m in ("student", "start"))
    init = sub.log.get("sibling_base", {}).get("init_distance")
    return {"student_init": sub.cfg.student_init, "init_lambda": sub.cfg.init_lambda,
            "student_base_data": sub.cfg.student_base_data,
            # the init's distance from the teacher's init before pretraining (None: `permuted` moves the base itself)
            "init_distance": float(np.mean(init)) if init else (None if sub.cfg.student_init == "permuted" else 0.0),
            "start_distance": summarize(got["start_distance"]),  # the student's start vs the teacher's base
            "trait_rate": summarize(student["trait_rate"]), "start_trait_rate": summarize(start["trait_rate"]),
            **{f"{k}_shift": summarize(student[k] - start[k]) for k in ("target_prob", "trait_rate")},
            "answer_mass_kept": summarize(student["answer_mass"] / start["answer_mass"]),
            "loss": sub.log.get("student_shared", {})}
