"""bench/run.py --quick: every section runs on tiny sizes and is written out; no timing is checked."""
import json
import subprocess
import sys

import pytest

from helpers import ROOT


@pytest.mark.slow
def test_quick_bench_writes_every_section(tmp_path):
    proc = subprocess.run([sys.executable, "bench/run.py", "--quick", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((tmp_path / "results.json").read_text())
    assert {"machine", "limit", "mnist", "sampler", "theorem", "chain"} <= set(res)
    assert {"rows", "rerun", "per_seed_loop"} <= set(res["mnist"])
    assert {"stages", "rerun", "seeds", "widths"} <= set(res["chain"])
    # a rerun in the same process compiles nothing: the MNIST program, the loop's steps, the sampler at a new
    # temperature (a traced input)
    assert res["mnist"]["rerun"]["compiles"] == 0
    assert res["mnist"]["per_seed_loop"]["compiles_while_running"] == 0
    assert res["sampler"]["rerun"]["compiles"] == 0
    assert all(r["same_tokens"] for r in res["sampler"]["rows"])  # scan, Python loop and reference agree
    md = (tmp_path / "BENCHMARKS.md").read_text()
    for heading in ("Matrix-multiply limit", "MNIST paper protocol", "per-seed loop", "Sampler", "Theorem 1 checker",
                    "Number chain", "Reruns", "Accelerators"):
        assert f"## {heading}" in md or heading in md, heading
    assert "python bench/run.py --quick" in md
    assert res["machine"]["backend"] != "cpu" or "not measured here" in md
