"""The docs point at the code they describe: docs/theorem.md's `theory.py:N` lands on the line that computes its
equation, and no tracked file keeps a merge's conflict markers (one reached docs/theorem.md once)."""
import re
import subprocess

from helpers import ROOT


def test_theorem_doc_points_at_each_equations_line():
    code = (ROOT / "subliminal_jax/theorem/theory.py").read_text().splitlines()
    rows = [line for line in (ROOT / "docs/theorem.md").read_text().splitlines() if line.startswith("| (E")]
    assert [row[2:6] for row in rows] == ["(E1)", "(E2)", "(E3)", "(E4)", "(E5)"]
    for row in rows:
        eq = row[2:6]
        first = int(re.search(r"theory\.py:(\d+)", row).group(1))  # the equation's own line (E2: its def)
        line = code[first - 1]
        assert eq in line or (eq == "(E2)" and "def distill_loss" in line), (eq, first, line)


def test_no_conflict_markers_in_tracked_files():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    marked = [f for f in files if f.endswith((".py", ".md", ".toml", ".txt", ".ipynb", ".json"))
              and re.search(r"^(<<<<<<<|>>>>>>>) ", (ROOT / f).read_text(errors="replace"), re.M)]
    assert marked == []
