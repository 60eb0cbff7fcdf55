"""Refactor guard (issue 16): a code move must leave the results exactly as they were.

  python bench/same_results.py --save    # record: runs both commands, writes bench/same_results.json
  python bench/same_results.py           # check: runs them again, compares every condition's numbers exactly

The two commands are `train.py mnist --dataset mnist-5k` (40 s on 2 idle cores) and `train.py misalign`
(about 9 min): the MLP experiment and the number chain with its sampler, filter, soft students and controls.
Only `conditions` is compared (times and versions differ between runs). Exit status 1 names every number that
moved. Float results are bit-identical only on the same machine type and library versions.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = Path(__file__).with_name("same_results.json")
COMMANDS = {"mnist": ["train.py", "mnist", "--dataset", "mnist-5k"], "misalign": ["train.py", "misalign"]}


def run_all() -> dict:
    """{name: results.json's conditions} of every command, each run in a fresh --out-dir."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, args in COMMANDS.items():
            out_dir = Path(tmp) / name
            print(f"[same_results] python {' '.join(args)} --out-dir {out_dir}", flush=True)
            subprocess.run([sys.executable, *args, "--out-dir", str(out_dir)], cwd=ROOT, check=True,
                           stdout=subprocess.DEVNULL)
            out[name] = json.loads((out_dir / "results.json").read_text())["conditions"]
    return out


def differences(ref, new, path="") -> list[str]:
    """Every leaf (path: reference -> now) that differs, compared exactly."""
    if isinstance(ref, dict) and isinstance(new, dict):
        return [d for k in sorted(set(ref) | set(new))
                for d in differences(ref.get(k), new.get(k), f"{path}.{k}" if path else k)]
    return [] if ref == new else [f"{path}: {ref} -> {new}"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", action="store_true", help="record the reference instead of checking it")
    args = parser.parse_args()
    now = run_all()
    if args.save:
        REFERENCE.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
        print(f"[same_results] wrote {REFERENCE}")
        return 0
    diff = differences(json.loads(REFERENCE.read_text()), now)
    print("\n".join(diff) if diff else "[same_results] every condition is exactly as recorded")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
