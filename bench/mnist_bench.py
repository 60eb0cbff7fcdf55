"""Benchmark: the MNIST paper protocol (teacher + 4 student conditions) at several seed counts.

Prints a table and writes JSON: compile and run time, seeds per second, achieved
FLOP/s (analytic count of the MLP's forward and backward passes, below), and the
number of XLA compilations (a second run of the same config must add none).

  python bench/mnist_bench.py --seeds 1 5 25 100 --dataset mnist --out bench/mnist.json
  python bench/mnist_bench.py --seeds 1 5 --dataset fashion-mnist   # full-size data offline (Debian package)

No timing asserts: this only measures.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

import jax  # noqa: E402
from jax import monitoring  # noqa: E402

from subliminal_jax import data as data_lib  # noqa: E402
from subliminal_jax import mlp, mnist  # noqa: E402

COMPILES = []
monitoring.register_event_duration_secs_listener(
    lambda event, secs, **kw: COMPILES.append(secs) if event == "/jax/core/compile/backend_compile_duration" else None)


def mlp_flops_per_example(d_in: int, hidden: tuple[int, ...], m: int) -> int:
    """Multiply-adds x 2 of one forward pass."""
    dims = (d_in, *hidden, mlp.NUM_CLASSES + m)
    return 2 * sum(a * b for a, b in zip(dims[:-1], dims[1:]))


def protocol_flops(cfg: mnist.MnistConfig, n_train: int, n_test: int, d_in: int) -> float:
    """Teacher: fwd+bwd (3x fwd) per example; students: 4 conditions x fwd+bwd, plus one
    shared teacher forward per noise example; evaluation: 6 models x forward on the test set."""
    f = mlp_flops_per_example(d_in, cfg.hidden, cfg.m)
    pad = lambda n, b: -(-n // b) * b  # padded rows are computed too
    teacher = 3 * f * pad(n_train, cfg.teacher_batch) * cfg.teacher_epochs
    students = (4 * 3 + 1) * f * pad(cfg.num_noise, cfg.student_batch) * cfg.student_epochs
    evaluation = 6 * f * n_test
    return cfg.num_seeds * (teacher + students + evaluation)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 5, 25, 100])
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--peak-tflops", type=float, default=None, help="device peak (fp32) for the utilization column")
    ap.add_argument("--out", default="bench/mnist.json")
    args = ap.parse_args()
    dataset = data_lib.load(args.dataset, args.data_dir)
    rows = []
    print(f"{'seeds':>6} {'compile s':>10} {'run s':>8} {'seeds/s':>8} {'TFLOP/s':>8} {'util':>6} {'compiles':>9} {'recompiles':>10}")
    for s in args.seeds:
        s_eff = max(s, 2)  # cross-model students need two seeds
        cfg = dataclasses.replace(mnist.PAPER, num_seeds=s_eff)
        before = len(COMPILES)
        res = mnist.run(cfg, dataset, verbose=False)
        mid = len(COMPILES)
        again = mnist.run(cfg, dataset, verbose=False)  # same config: must not compile again
        flops = protocol_flops(cfg, len(dataset.y_train), len(dataset.y_test), dataset.x_train.shape[1])
        row = {"seeds": s_eff, "compile_s": res["compile_time_s"], "run_s": res["run_time_s"],
               "rerun_s": again["run_time_s"], "seeds_per_s": s_eff / res["run_time_s"],
               "tflops": flops / res["run_time_s"] / 1e12, "flops": flops,
               "compiles_first_run": mid - before, "compiles_rerun": len(COMPILES) - mid,
               "student_aux": res["conditions"]["student_aux"]["mean"],
               "cross_aux": res["conditions"]["cross_aux"]["mean"],
               "teacher": res["conditions"]["teacher"]["mean"]}
        row["util"] = row["tflops"] / args.peak_tflops if args.peak_tflops else None
        rows.append(row)
        util = f"{row['util']:.1%}" if row["util"] is not None else "-"
        print(f"{s_eff:>6} {row['compile_s']:>10.1f} {row['run_s']:>8.1f} {row['seeds_per_s']:>8.2f} "
              f"{row['tflops']:>8.3f} {util:>6} {row['compiles_first_run']:>9} {row['compiles_rerun']:>10}", flush=True)
    out = {"rows": rows, "data": dataset.provenance(), "device": str(jax.devices()[0]),
           "device_count": jax.device_count(), "jax": jax.__version__, "python": platform.python_version(),
           "config": dataclasses.asdict(mnist.PAPER)}
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
