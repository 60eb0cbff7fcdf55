"""The number chain (`python train.py numbers`): time per stage, memory, and how both grow with seeds and width.

Each chain runs as `train.py numbers` in a fresh process (chain_child.py), so its peak resident memory
(ru_maxrss, the whole process: Python, JAX and XLA included) is its own; stage times are the chain's own
`stage_time_s` (compile + run of each stage's one jit, as a user waits for it). Memory per seed is the slope
of that peak over the seed counts. A rerun is the same command again: every stage is reused from its
checkpoint except eval, which always runs.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import common

from subliminal_jax.numbers.config import NumbersConfig

CHILD = Path(__file__).with_name("chain_child.py")


def flags(overrides: dict) -> list[str]:
    """{"num_seeds": 5, "world.frac_persona": 0.15} -> ["--num-seeds", "5", "--world.frac-persona", "0.15"]."""
    return [x for k, v in overrides.items() for x in (f"--{k.replace('_', '-')}", str(v))]


def run_chain(overrides: dict, out_dir: Path) -> dict:
    """One `train.py numbers` process: its stage times, wall time, compiles and peak memory."""
    stats = out_dir.with_name(out_dir.name + ".stats.json")
    t0 = time.perf_counter()
    # one device, as the MNIST rows: on an 8-core TPU, 2, 5 or 10 seeds would not divide the devices
    proc = subprocess.run([sys.executable, str(CHILD), str(stats), "numbers", "--out-dir", str(out_dir),
                           "--num-devices", "1", *flags(overrides)], cwd=common.ROOT, capture_output=True, text=True)
    process_s = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"train.py numbers {' '.join(flags(overrides))} failed:\n{proc.stderr[-2000:]}")
    res, child = json.loads((out_dir / "results.json").read_text()), json.loads(stats.read_text())
    stages = res["stage_time_s"]
    return {"overrides": overrides, "seeds": res["config"]["num_seeds"], "d_model": res["config"]["model"]["d_model"],
            "stage_time_s": stages, "other_s": res["wall_time_s"] - sum(stages.values()),
            "wall_s": res["wall_time_s"], "process_s": process_s, "compiles": child["compiles"],
            "max_rss_bytes": child["max_rss_bytes"]}


class Runs:
    """Chains by their settings: a setting asked for twice (e.g. the default width among the widths) runs once."""

    def __init__(self, root: Path, say=print):
        self.root, self.say, self.done = root, say, {}

    def get(self, overrides: dict, must: bool = True) -> dict:
        """must=False: a chain that fails (e.g. a short base whose numbers the filter all rejects) becomes a row
        {"error": ...} instead of ending a bench that has run for many minutes."""
        key = json.dumps(overrides, sort_keys=True)
        if key not in self.done:
            try:
                self.done[key] = run_chain(overrides, self.root / f"chain{len(self.done)}")
            except RuntimeError as e:
                if must:
                    raise
                self.done[key] = {"overrides": overrides, "error": str(e).splitlines()[-1],
                                  "seeds": overrides.get("num_seeds", NumbersConfig().num_seeds),
                                  "d_model": overrides.get("d_model", NumbersConfig().model.d_model)}
                self.say(f"  chain {overrides}: FAILED ({self.done[key]['error']})", flush=True)
                return self.done[key]
            r = self.done[key]
            self.say(f"  chain {r['seeds']} seeds, d_model {r['d_model']}: {r['wall_s']:.0f} s "
                     f"({', '.join(f'{k} {v:.0f}' for k, v in r['stage_time_s'].items())}), "
                     f"peak {r['max_rss_bytes'] / 2**20:.0f} MiB", flush=True)
        return self.done[key]


def slope(xs, ys) -> float | None:
    """Least-squares slope of ys over xs (None with fewer than two distinct xs)."""
    if len(set(xs)) < 2:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def run(stages_cfg: dict, scale_cfg: dict, seeds, widths, width_seeds: int, root: Path, say=print) -> dict:
    """stages_cfg: the chain whose stages are timed (and rerun); scale_cfg: the shorter chain the seed and
    width rows vary (a width w sets d_model to w and d_ff in proportion, 4w at the defaults)."""
    shutil.rmtree(root, ignore_errors=True)  # an earlier bench's checkpoints would turn every run into a resume
    runs = Runs(root, say)
    stages = runs.get(stages_cfg)
    rerun = run_chain(stages_cfg, root / "chain0")  # the same command, same folder: resumes
    seed_rows = [runs.get({**scale_cfg, "num_seeds": s}, must=False) for s in seeds]
    d = NumbersConfig()
    ff_per_d = scale_cfg.get("d_ff", d.model.d_ff) / scale_cfg.get("d_model", d.model.d_model)
    width_rows = [runs.get({**scale_cfg, "num_seeds": width_seeds, "d_model": w, "d_ff": round(ff_per_d * w)},
                           must=False) for w in widths]
    ok = [r for r in seed_rows if "error" not in r]
    return {"stages": stages, "rerun": rerun, "seeds": seed_rows, "widths": width_rows,
            "memory_per_seed_bytes": slope([r["seeds"] for r in ok], [r["max_rss_bytes"] for r in ok]),
            "stages_config": stages_cfg, "scale_config": scale_cfg}
