"""Benchmarks: every figure of BENCHMARKS.md, measured in one run on whatever device JAX finds.

  python bench/run.py                     # full: 20-25 min on 2 idle CPU cores; bench/results.json, BENCHMARKS.md
  python bench/run.py --quick --out /tmp/b  # tiny sizes, plumbing only (what tests/test_bench.py runs)
  python bench/run.py --only limit mnist    # some sections (into runs/bench/ unless --out is given)

Sections: limit (square matmul peak), mnist (paper protocol at several seed counts, its matmul limit, a rerun,
the per-seed loop), sampler, theorem, chain. Run on an idle machine: the numbers are wall-clock times.
No figure here is checked against a threshold; this only measures.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import common
import jax

import render_md

SECTIONS = ("limit", "mnist", "sampler", "theorem", "chain")

# What each mode runs. The full sizes keep the MNIST shapes of the paper (batch 1024, 784-256-256-13) on the
# embedded 4k digits and fewer noise images, and time the chain's stages at its defaults.
SIZES = {
    "full": {"square": 2048, "mnist_seeds": [1, 5, 25, 100], "compare_at": 25,
             "mnist": {"num_noise": 4096}, "sampler_batches": [16, 64, 256, 1024], "sampler_lengths": [8, 16, 32],
             "sampler_world": {},
             "theorem": {}, "chain_stages": {},
             "chain_scale": {"base_steps": 100, "student_steps": 20},
             "chain_seeds": [2, 5, 10], "chain_widths": [32, 64, 128], "chain_width_seeds": 5},
    "quick": {"square": 256, "mnist_seeds": [2], "compare_at": 2,
              "mnist": {"num_noise": 1024, "hidden": [32], "teacher_epochs": 1, "student_epochs": 1},
              "sampler_batches": [4], "sampler_lengths": [],
              "sampler_world": {"max_new_numbers": 1},  # 7-token completions: a short reference to compile
              "theorem": {"models": ["linear"], "kinds": ["mse"], "instances": 16, "chunk": 8},
              "chain_stages": {"num_seeds": 2, "corpus_size": 1000, "base_steps": 100, "teacher_steps": 3,
                               "num_prompts": 32, "student_steps": 3, "eval_samples": 20, "d_model": 32, "d_ff": 64,
                               "world.frac_persona": 0.15},
              "chain_scale": None, "chain_seeds": [2], "chain_widths": [32], "chain_width_seeds": 2},
}


def machine() -> dict:
    """What the numbers were measured on (this starts JAX's backend: call it after the chain section)."""
    cpu = ""
    if Path("/proc/cpuinfo").exists():
        cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.startswith("model name")), "")
    return {"platform": platform.platform(), "machine": platform.machine(), "cpu": cpu,
            "cpu_count": os.cpu_count(), "devices": [str(d) for d in jax.devices()],
            "device_kind": jax.devices()[0].device_kind, "backend": jax.default_backend(),
            "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
            "python": platform.python_version(), "jax": jax.__version__}


def tuples(d: dict) -> dict:
    """SIZES keep lists (JSON); the frozen configs want tuples."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def run_section(name: str, args, sizes: dict):
    """One section's results (the bench modules are imported here: `--only` runs import only theirs)."""
    if name == "limit":
        import matmul_limit
        return {"square": matmul_limit.square_peak(sizes["square"])}
    if name == "mnist":
        import mnist_bench
        from subliminal_jax.mnist import data as data_lib
        return mnist_bench.run(sizes["mnist_seeds"], sizes["compare_at"], data_lib.load(args.dataset),
                               tuples(sizes["mnist"]))
    if name == "sampler":
        import sampler_bench
        from subliminal_jax.numbers.config import NumbersConfig
        world = dataclasses.replace(NumbersConfig().world, **sizes["sampler_world"])  # the chain's, or shorter
        return sampler_bench.run(sizes["sampler_batches"], sizes["sampler_lengths"], NumbersConfig(world=world))
    if name == "theorem":
        import theorem_bench
        from subliminal_jax.theorem import experiment as theorem
        return theorem_bench.run(theorem.TheoremConfig(**tuples(sizes["theorem"])))
    import chain_bench
    scale = sizes["chain_scale"] if sizes["chain_scale"] is not None else sizes["chain_stages"]
    return chain_bench.run(sizes["chain_stages"], scale, sizes["chain_seeds"], sizes["chain_widths"],
                           sizes["chain_width_seeds"], args.out / "chains")


def destinations(args) -> tuple[Path, Path]:
    """(folder of results.json and chains/, BENCHMARKS.md). The full run of every section is the one the
    repository keeps (bench/results.json, BENCHMARKS.md at the root); any other run, unless --out says
    otherwise, goes to runs/bench/ (ignored by git) and leaves those two alone."""
    canonical = not args.quick and list(args.only) == list(SECTIONS)
    out = args.out or (Path(__file__).parent if canonical else common.ROOT / "runs" / "bench")
    return out, (common.ROOT / "BENCHMARKS.md" if canonical and args.out is None else out / "BENCHMARKS.md")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (about a minute): checks the scripts run")
    ap.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    ap.add_argument("--dataset", default="mnist-5k", help="MNIST data (mnist needs a download or a cached copy)")
    ap.add_argument("--out", type=Path, default=None, help="folder for results.json, BENCHMARKS.md and chains/")
    args = ap.parse_args()
    mode = "quick" if args.quick else "full"
    out, md = destinations(args)
    args.out = out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    res = {"command": shlex.join(["python", "bench/run.py", *sys.argv[1:]]), "mode": mode,
           "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
           "machine": {"load_average_start": os.getloadavg()}, "sizes": SIZES[mode], "section_s": {}}

    def section(name):
        print(f"[{name}]", flush=True)
        t = time.perf_counter()
        res[name] = run_section(name, args, SIZES[mode])
        res["section_s"][name] = time.perf_counter() - t
    # The chain runs first: its chains are child processes, and on a TPU only one process may hold the device,
    # so this one must not have touched it yet (on a GPU its preallocated memory would starve the children).
    if "chain" in args.only:
        section("chain")
    res["machine"].update(machine())
    for name in SECTIONS:
        if name != "chain" and name in args.only:
            section(name)
    res["machine"]["load_average_end"] = os.getloadavg()
    res["total_s"] = time.perf_counter() - t0
    (out / "results.json").write_text(json.dumps(res, indent=1))
    md.write_text(render_md.render(res))
    print(f"wrote {out / 'results.json'} and {md} ({res['total_s'] / 60:.1f} min)")


if __name__ == "__main__":
    main()
