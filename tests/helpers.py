"""Shared test helper: run a CLI script in a subprocess with N fake CPU devices (or as N processes)."""
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _command(script: str, args) -> list[str]:
    """`python SCRIPT ARGS`, with jax_num_cpu_devices set from $SUBLIMINAL_JAX_DEVICES before jax starts."""
    code = ("import os, sys, runpy, jax; "
            "jax.config.update('jax_num_cpu_devices', int(os.environ['SUBLIMINAL_JAX_DEVICES'])); "
            f"sys.argv = [{script!r}] + sys.argv[1:]; runpy.run_path({script!r}, run_name='__main__')")
    return [sys.executable, "-c", code, *args]


def run_script(script: str, *args: str, devices: int = 1, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python SCRIPT ARGS` from the repo root with `devices` fake CPU devices (and `env` added)."""
    env = dict(os.environ, SUBLIMINAL_JAX_DEVICES=str(devices), **(env or {}))
    return subprocess.run(_command(script, args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def run_processes(script: str, *args: str, processes: int = 2, devices: int = 1,
                  timeout: int = 600) -> list[subprocess.CompletedProcess]:
    """`python SCRIPT ARGS --distributed` as `processes` processes of `devices` fake CPU devices each, on this
    machine (coordinator on a free localhost port). Output goes to files: a full pipe would stall a process
    and, with it, the collectives of all the others."""
    base = dict(os.environ, SUBLIMINAL_JAX_DEVICES=str(devices), JAX_COORDINATOR_ADDRESS=f"localhost:{free_port()}",
                JAX_NUM_PROCESSES=str(processes), SUBLIMINAL_JAX_INIT_TIMEOUT_S="60")
    procs, files = [], []
    try:
        for i in range(processes):
            out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
            files.append((out, err))
            procs.append(subprocess.Popen(_command(script, (*args, "--distributed")), cwd=ROOT,
                                          env=dict(base, JAX_PROCESS_ID=str(i)), stdout=out, stderr=err, text=True))
        codes = [p.wait(timeout=timeout) for p in procs]
        results = []
        for p, code, (out, err) in zip(procs, codes, files):
            out.seek(0), err.seek(0)
            results.append(subprocess.CompletedProcess(p.args, code, out.read(), err.read()))
        return results
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for out, err in files:
            out.close(), err.close()


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
    repository NOT on PYTHONPATH: the package is the installed one (requirements.txt installs it), or, where it is
    not installed, the first cell's fallback installs this checkout."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["MPLBACKEND"] = "Agg"
    return subprocess.run([sys.executable, "-c", notebook_source(path, overrides)], cwd=Path(path).parent, env=env,
                          capture_output=True, text=True, timeout=timeout)
