"""Progress lines from inside a compiled training loop, and a Ctrl-C-friendly wait for its results.

A long stage is one jit (vmapped over seeds and conditions), so Python sees nothing until it ends. `report`
puts a host callback in the scan body, taken every `total // REPORTS` steps under a lax.cond on the
UNBATCHED step index: under vmap the predicate stays unbatched, so it remains a real branch (a batched
predicate would refuse an effectful branch). vmap unrolls the callback into one call per seed / condition
(on one device: jax.debug.callback is not partitioned, so with several processes process 0 gets every model's);
the host `Reporter` averages those calls per step and prints at most one line every `every_s` seconds:

    [base] step 120/600, loss 2.31 (mean of 10 models), 40 s elapsed, ~2.1 min left

The callback only reads the loss, and it is compiled in only while a `stage` is active (verbose runs), so a
quiet run is the same program as before; with and without it the numbers are bit-identical (tested). As the
choice is made at trace time, jit a new function object per run (jit reuses the trace of one it has seen):
numbers/chain.py builds its stage functions afresh, mnist keys its cache of executables on `active()`.
"""
from __future__ import annotations

import contextlib
import functools
import threading
import time

import jax
import numpy as np

from subliminal_jax import multihost

REPORTS = 100  # callbacks per scan at most: ~2 s apart in a 3-minute stage, < 1% of its time (measured)
EVERY_S = 5.0  # seconds between printed lines at least (tests set 0 to see every report)

_ACTIVE: "Reporter | None" = None  # read at trace time (compile the callback in?) and by the callbacks


def _duration(s: float) -> str:
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.1f} min"


class Reporter:
    """Host side: collects the per-model calls of each reported step, prints a throttled line."""

    def __init__(self, name: str, every_s: float, out=print):
        self.name, self.every_s, self.out = name, every_s, out
        self.lock = threading.Lock()  # callbacks run on XLA's threads
        self.t0 = self.last_print = time.perf_counter()
        self.pending = None   # (label, step, total): the step whose per-model losses are being collected
        self.sum, self.count = 0.0, 0
        self.anchor = None    # (label, step, time) of the first report of a phase: the rate excludes compiling

    def update(self, label: str, step: int, total: int, loss: float, what: str = "loss") -> None:
        with self.lock:
            if self.pending != (label, step, total, what):
                self._finish()
                self.pending, self.sum, self.count = (label, step, total, what), 0.0, 0
            self.sum, self.count = self.sum + loss, self.count + 1

    def _finish(self) -> None:
        """The pending step has all its calls (a later step arrived): start a phase or maybe print it."""
        if self.pending is None:
            return
        label, step, total, what = self.pending
        now = time.perf_counter()
        if self.anchor is None or self.anchor[0] != label:
            self.anchor = (label, step, now)
            return
        if now - self.last_print < self.every_s:
            return
        self.last_print = now
        rate = (now - self.anchor[2]) / max(step - self.anchor[1], 1)  # seconds per step
        name = f"{self.name} {label}".strip()
        models = f" (mean of {self.count} models)" if self.count > 1 else ""
        self.out(f"[{name}] step {step}/{total}, {what} {self.sum / self.count:.4g}{models}, "
                 f"{_duration(now - self.t0)} elapsed, ~{_duration(rate * (total - step))} left", flush=True)


@contextlib.contextmanager
def stage(name: str, enabled: bool = True, every_s: float | None = None, out=print):
    """While active, programs traced here report their progress as `[name ...]` lines (quiet if not enabled)."""
    global _ACTIVE
    if not enabled:
        yield None
        return
    prev, _ACTIVE = _ACTIVE, Reporter(name, EVERY_S if every_s is None else every_s, out)
    try:
        yield _ACTIVE
    finally:
        _ACTIVE = prev


def active() -> bool:
    """Whether programs traced now get the callback (a cache of compiled programs must key on it)."""
    return _ACTIVE is not None


def _host(step, loss, *, label: str, total: int, what: str) -> None:
    reporter = _ACTIVE  # None once the stage has ended (e.g. a program left running after Ctrl-C)
    if reporter is not None:
        reporter.update(label, int(step), total, float(np.mean(loss)), what)


def report(step, total: int, loss, label: str = "", what: str = "loss") -> None:
    """In a scan body: `step` (1-based, an unbatched index) of `total` is done with this loss (or with the
    value `what` names, e.g. the sampler's share of rows ended)."""
    if _ACTIVE is None:
        return
    every = max(1, total // REPORTS)
    host = functools.partial(_host, label=label, total=total, what=what)
    callback = lambda s, l: jax.debug.callback(host, s, l)
    jax.lax.cond(step % every == 0, callback, lambda s, l: None, step, loss)


def interruptible(f, *args):
    """multihost.to_host(f(*args)) (jax.device_get in one process), computed in a worker thread while this one
    waits in Python: Ctrl-C then raises KeyboardInterrupt at once instead of when the compiled program ends.
    (A program with host callbacks runs synchronously in its caller on CPU, so waiting for its arrays is no
    alternative.) XLA cannot be stopped mid-program: the worker finishes on its own, or cli.py exits 130
    without tearing it down."""
    box = {}

    def work():
        try:
            box["out"] = multihost.to_host(f(*args))
        except BaseException as e:  # re-raised in the caller's thread
            box["error"] = e
    worker = threading.Thread(target=work, name="compiled-stage", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.1)
    if "error" in box:
        raise box["error"]
    return box["out"]
