"""What every bench module shares: the repository on sys.path, a compile counter, and a wall-clock timer."""
from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python bench/run.py` from a clone, without installing the package

import jax  # noqa: E402
from jax import monitoring  # noqa: E402

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
