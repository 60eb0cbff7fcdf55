"""What every bench module shares: the repository root, a compile counter, and a wall-clock timer. The package
itself is imported as installed (`pip install -r requirements.txt` installs it editable)."""
from __future__ import annotations

import contextlib
import importlib.util
import time
from pathlib import Path

import jax
from jax import monitoring

if importlib.util.find_spec("subliminal_jax") is None:
    raise SystemExit("bench: the package subliminal_jax is not installed: run `pip install -e .` (or "
                     "`pip install -r requirements.txt`) in the repository root")

ROOT = Path(__file__).resolve().parents[1]  # the checkout: train.py, BENCHMARKS.md, runs/

_COMPILES: list[float] = []  # one entry per XLA backend compile in this process (seconds it took)
monitoring.register_event_duration_secs_listener(
    lambda event, secs, **kw: _COMPILES.append(secs) if event == "/jax/core/compile/backend_compile_duration" else None)


def compile_count() -> int:
    """XLA compiles so far in this process."""
    return len(_COMPILES)


@contextlib.contextmanager
def count_compiles():
    """with count_compiles() as n: ...; then n() is the number of XLA compiles inside the block (also
    the small ones jnp helpers trigger: a rerun that counts 0 compiled nothing at all)."""
    start, end = len(_COMPILES), [None]
    try:
        yield lambda: (len(_COMPILES) if end[0] is None else end[0]) - start
    finally:
        end[0] = len(_COMPILES)


def timed(fn, *args):
    """(fn(*args) with every output ready, wall seconds): dispatch is asynchronous, so wait for the result."""
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - t0


def best_time(fn, *args, min_total_s: float = 0.3, max_reps: int = 20) -> float:
    """Fastest of several calls after a warm-up call (the warm-up compiles): at least 2 calls, more while
    their total stays under min_total_s. The fastest is the one least disturbed by other processes."""
    timed(fn, *args)
    times = [timed(fn, *args)[1]]
    while len(times) < 2 or (sum(times) < min_total_s and len(times) < max_reps):
        times.append(timed(fn, *args)[1])
    return min(times)
