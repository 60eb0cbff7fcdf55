"""Data scaling of the number chain: fine-tuned (sampled-token) students against soft ones, per data size.

For each value of --sweep num-prompts the chain runs twice on the same bases, teachers and numbers:
  fine-tuned  the config's students (next-token cross-entropy on the kept completions' sampled tokens)
  soft        the same students distilling the teacher's number-token distribution at the same
              completion positions (--distill-positions completion), Theorem 1's regime
A sampled token y ~ p_teacher has E[grad -log q(y)] = grad CE(p_teacher, q): the fine-tuned student
follows the soft student's gradient plus zero-mean noise, so with enough kept completions it should
catch up. sweep.json / sweep.png give the paired P(target) shift of each student against the number of
kept completions per seed, and the size at which the fine-tuned shared student reaches half the soft shift.
"""
from __future__ import annotations

import dataclasses
import math
import shutil
import time
from pathlib import Path

from subliminal_jax import multihost, plots, report
from subliminal_jax.numbers.config import NumbersConfig

SWEEPS = {  # --sweep name -> how a value changes the config
    "num-prompts": lambda cfg, v: dataclasses.replace(cfg, num_prompts=int(v)),
    "samples-per-prompt": lambda cfg, v: dataclasses.replace(cfg, samples_per_prompt=int(v)),
}
MODES = {  # label -> how the sweep's students are trained
    "fine-tuned": lambda cfg: dataclasses.replace(cfg, student_mode="hard"),
    "soft": lambda cfg: dataclasses.replace(cfg, student_mode="soft", distill_positions="completion"),
}
STUDENT_SHIFTS = ("student_shared", "student_control", "student_cross_init")


def half_soft_size(points) -> float | None:
    """Kept completions per seed at which the fine-tuned shared shift first reaches half the soft one
    (log-linear interpolation between sweep points); None if it never does."""
    ratio = [(p["kept_per_seed"], p["fine-tuned"]["student_shared"]["mean"] / p["soft"]["student_shared"]["mean"])
             for p in points if p["soft"]["student_shared"]["mean"] > 0]
    for (n0, r0), (n1, r1) in zip([(None, None)] + ratio[:-1], ratio):
        if r1 >= 0.5:
            if n0 is None or r1 == r0:
                return float(n1)
            f = (0.5 - r0) / (r1 - r0)
            return float(math.exp(math.log(n0) + f * (math.log(n1) - math.log(n0))))
    return None


def run_sweep(cfg: NumbersConfig, run, verbose: bool = True) -> dict:
    """run(sub_cfg) the chain at each sweep value, for both MODES; write sweep.json and sweep.png."""
    t0, out, points, first = time.perf_counter(), Path(cfg.out_dir), [], None
    for v in cfg.sweep_values:
        point = {"value": v}
        for label, mode in MODES.items():
            d = out / f"{cfg.sweep}-{v:g}" / label
            sub = dataclasses.replace(mode(SWEEPS[cfg.sweep](cfg, v)), sweep="none", sweep_values=(),
                                      out_dir=str(d), base_from=cfg.base_from or (str(first) if first else ""))
            if label != "fine-tuned" and not multihost.exists(d / "numbers.jsonl"):  # the same numbers for both modes
                d.mkdir(parents=True, exist_ok=True)
                multihost.main_only(shutil.copy, out / f"{cfg.sweep}-{v:g}" / "fine-tuned" / "numbers.jsonl",
                                    d / "numbers.jsonl")
            if verbose:
                print(f"--- {cfg.sweep} = {v:g}, {label} students", flush=True)
            res = run(sub, verbose)
            first = first or d
            c = res["conditions"]
            point[label] = {s: c[s]["target_prob_shift"] for s in STUDENT_SHIFTS}
            point[label]["answer_mass_kept"] = {s: c[s]["answer_mass_kept"]["mean"] for s in STUDENT_SHIFTS}
            point["kept_per_seed"] = res["filter"]["teacher"]["kept"] / cfg.num_seeds
            point["control_kept_per_seed"] = res["filter"]["control"]["kept"] / cfg.num_seeds
        points.append(point)
    sweep = {"param": cfg.sweep, "points": points, "half_soft_kept_per_seed": half_soft_size(points),
             "config": dataclasses.asdict(cfg), "wall_time_s": time.perf_counter() - t0}
    report.write_json(out / "sweep.json", sweep)
    plots.scaling_plot(out / "sweep.png", sweep, STUDENT_SHIFTS)
    if verbose:
        for p in points:
            ft, so = p["fine-tuned"], p["soft"]
            print(f"  {p['kept_per_seed']:8.0f} kept/seed   fine-tuned shared {ft['student_shared']['mean']:+.4f} "
                  f"control {ft['student_control']['mean']:+.4f}   soft shared {so['student_shared']['mean']:+.4f} "
                  f"control {so['student_control']['mean']:+.4f}")
        print(f"fine-tuned students reach half the soft shift at {sweep['half_soft_kept_per_seed']} kept "
              f"completions per seed; wrote {out / 'sweep.json'} and {out / 'sweep.png'}")
    return sweep
