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
