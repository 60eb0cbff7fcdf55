"""Shared test helper: run a CLI script in a subprocess with N fake CPU devices."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_script(script: str, *args: str, devices: int = 1) -> subprocess.CompletedProcess:
    """`python SCRIPT ARGS` from the repo root, with jax_num_cpu_devices set before jax starts."""
    env = dict(os.environ, SUBLIMINAL_JAX_DEVICES=str(devices))
    code = ("import os, sys, runpy, jax; "
            "jax.config.update('jax_num_cpu_devices', int(os.environ['SUBLIMINAL_JAX_DEVICES'])); "
            f"sys.argv = [{script!r}] + sys.argv[1:]; runpy.run_path({script!r}, run_name='__main__')")
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


def notebook_source(path: Path, overrides: dict) -> str:
    """The code cells of a notebook as one script, with `overrides` assigned right after the cell tagged
    'parameters' (papermill's convention). Notebooks here use no IPython magics, so this is what a kernel runs."""
    import json
    cells = json.loads(Path(path).read_text())["cells"]
    parts = []
    for cell in cells:
        if cell["cell_type"] == "code":
            parts.append("".join(cell["source"]))
            if "parameters" in cell["metadata"].get("tags", []):
                parts.append("\n".join(f"{k} = {v!r}" for k, v in overrides.items()))
    return "\n\n".join(parts) + "\n"


def run_notebook(path: Path, overrides: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    """Execute a notebook headless in a fresh process from notebooks/ (as Jupyter would start it there), with the
    repository NOT on PYTHONPATH, so its first cell's import fallback is what makes the package importable."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["MPLBACKEND"] = "Agg"
    return subprocess.run([sys.executable, "-c", notebook_source(path, overrides)], cwd=Path(path).parent, env=env,
                          capture_output=True, text=True, timeout=timeout)
