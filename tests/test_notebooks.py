"""The notebooks run top to bottom with small settings, produce their figures, and are committed without outputs."""
import json

import pytest

from helpers import ROOT, notebook_source, run_notebook

NB = ROOT / "notebooks"
SMALL = {
    "01_theorem.ipynb": ({"INSTANCES": 200, "SWEEP_INSTANCES": 16, "EPS_SWEEP": (1e-7, 1e-5, 1e-3, 1e-1)},
                         ("inner_distribution.png", "measured_vs_predicted.png", "error_vs_eps.png")),
    "02_mnist_aux_logits.ipynb": ({"NUM_SEEDS": 2, "NUM_NOISE": 1000, "EPOCHS": 1, "HIDDEN": (32, 32),
                                   "ABLATIONS": ("fc1=random",), "LAMBDAS": (0.0, 1.0)},
                                  ("accuracy.png", "ablation.png", "init_distance.png")),
    "03_numbers.ipynb": ({"NUM_SEEDS": 2, "CORPUS_SIZE": 1000, "BASE_STEPS": 100, "NUM_PROMPTS": 32,
                          "STUDENT_STEPS": 3, "EVAL_SAMPLES": 20, "D_MODEL": 32, "D_FF": 64},
                         ("trait_rate.png",)),
}


def test_every_notebook_is_tested():
    assert sorted(p.name for p in NB.glob("*.ipynb")) == sorted(SMALL)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_committed_without_outputs_or_magics(name):
    nb = json.loads((NB / name).read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    assert sum("parameters" in c["metadata"].get("tags", []) for c in code) == 1
    src = notebook_source(NB / name, {})
    assert not any(line.lstrip().startswith(("%", "!")) for line in src.splitlines())  # plain Python only
    assert "import subliminal_jax" in "".join(code[0]["source"])                    # the Colab/local setup cell


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMALL))
def test_notebook_runs(name, tmp_path):
    """Headless, from notebooks/, within 5 minutes (run_notebook's timeout)."""
    overrides, figures = SMALL[name]
    r = run_notebook(NB / name, {**overrides, "OUT_DIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr[-3000:]
    for png in figures:
        assert (tmp_path / png).stat().st_size > 1000, png
