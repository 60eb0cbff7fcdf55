"""Several processes, one global mesh: JAX's multi-controller runtime (jax.distributed).

`--distributed` (cli.py) calls `initialize` before anything touches a device. Every process then runs the same
program on the same inputs; the mesh (parallel.py) spans all processes' devices, so the seeds are split over
them, and each compiled stage's outputs are gathered back whole on every process (`to_host`). Only process 0
prints (the others' stdout goes to /dev/null) and writes files (report.py, numbers/data.py); checkpoints go
through orbax, which writes host arrays from process 0 only and syncs the processes around each save.

Where the processes are: on Cloud TPU, Slurm and Open MPI jax.distributed finds them itself. Elsewhere every
process gets JAX_COORDINATOR_ADDRESS (host:port of process 0, read by JAX itself), JAX_NUM_PROCESSES and
JAX_PROCESS_ID (named after the first; JAX 0.10 itself does not read them, this module does).
On CPU the cross-process collectives are gloo's (JAX 0.10's default for jax_cpu_collectives_implementation).
"""
from __future__ import annotations

import json
import os
import socket
import sys
import threading
import zlib
from pathlib import Path

import jax
import numpy as np
from jax.experimental import multihost_utils

from subliminal_jax.errors import UserError

ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
TIMEOUT_ENV = "SUBLIMINAL_JAX_INIT_TIMEOUT_S"  # seconds for all processes to connect (default: JAX's 300)


def _settings(environ) -> tuple[str | None, int | None, int | None]:
    """(coordinator, num_processes, process_id) from the environment; all None: let JAX detect the cluster."""
    addr, n, pid = (environ.get(k) or None for k in ENV)
    if n is None and pid is None:
        return addr, None, None
    if None in (addr, n, pid):
        missing = ", ".join(k for k, v in zip(ENV, (addr, n, pid)) if v is None)
        raise UserError(f"--distributed: {missing} not set; set all of {', '.join(ENV)} on every process "
                        f"(or none of the last two on Cloud TPU, Slurm or Open MPI, where JAX finds them)")
    host, _, port = addr.rpartition(":")
    if not (host and port.isdigit() and n.isdigit() and pid.isdigit() and int(pid) < int(n)):
        raise UserError(f"--distributed: need JAX_COORDINATOR_ADDRESS=host:port and 0 <= JAX_PROCESS_ID < "
                        f"JAX_NUM_PROCESSES (got {addr!r}, {n!r}, {pid!r})")
    return addr, int(n), int(pid)


def _check_port_free(addr: str) -> None:
    """Process 0 serves the coordinator on addr's port: XLA crashes (SIGSEGV) when it is taken, so ask first."""
    port = int(addr.rpartition(":")[2])
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("", port))
    except OSError as e:
        raise UserError(f"--distributed: process 0 cannot serve the coordinator on port {port} ({e.strerror}); "
                        f"choose a free port in JAX_COORDINATOR_ADDRESS on every process") from None


def check_not_requested(environ=os.environ) -> None:
    """Without --distributed, refuse the variables that ask for it: N copies of a one-process run would each
    train everything and write the same files."""
    if any(environ.get(k) for k in ENV[1:]):
        raise UserError(f"{' / '.join(ENV[1:])} set but --distributed not given; add --distributed (or unset them)")


def initialize(environ=os.environ) -> None:
    """jax.distributed.initialize from the environment; every way it cannot connect is one line (exit 2)."""
    addr, n, pid = _settings(environ)
    timeout = int(environ.get(TIMEOUT_ENV, "300"))
    if pid == 0:
        _check_port_free(addr)
    if jax.config.jax_cpu_collectives_implementation is None:  # CPU programs spanning processes need one
        jax.config.update("jax_cpu_collectives_implementation", "gloo")

    def give_up():  # JAX itself aborts the process (a fatal C++ log) when the connection times out
        print(f"error: --distributed: not all processes connected to the coordinator {addr or '(auto-detected)'} "
              f"within {timeout} s; start every process with the same JAX_COORDINATOR_ADDRESS and "
              f"JAX_NUM_PROCESSES and its own JAX_PROCESS_ID ({TIMEOUT_ENV} sets the wait)", file=sys.stderr, flush=True)
        os._exit(2)
    watchdog = threading.Timer(timeout, give_up)  # (connecting releases the GIL, so this thread runs)
    watchdog.daemon = True
    watchdog.start()
    try:
        jax.distributed.initialize(addr, n, pid, initialization_timeout=timeout + 30)
    except (ValueError, RuntimeError) as e:  # no cluster detected, or a JAX backend already started
        why = "JAX detected no cluster (Cloud TPU, Slurm, Open MPI)" if n is None else str(e).splitlines()[0]
        raise UserError(f"--distributed: {why}; set {', '.join(ENV)} on every process") from None
    finally:
        watchdog.cancel()
    if jax.process_index() != 0:  # one copy of every printed line (Python's and the C++ libraries'), process 0's
        sys.stdout.flush()
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def is_main() -> bool:
    """Whether this process writes files (always true in a one-process run)."""
    return jax.process_index() == 0


def main_only(fn, *args) -> None:
    """fn(*args) (a file copy) on process 0 only; the others wait until it is done, as they read its result next."""
    if is_main():
        fn(*args)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(f"main_only {fn.__name__}")


def to_host(tree):
    """Host (numpy) copies of a tree's arrays, whole on every process: a result spanning several processes'
    devices is gathered (a collective every process makes, in the same order)."""
    if jax.process_count() == 1:
        return jax.device_get(tree)

    def whole(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return multihost_utils.process_allgather(x, tiled=True)
        return jax.device_get(x)
    return jax.tree.map(whole, tree)


SHARED_DIR = "--out-dir must be one folder every process sees (a shared filesystem)"


def agree(value: int, what: str, fix: str = SHARED_DIR) -> int:
    """value (a bool or a 31-bit int), after checking every process has the same: a process that took another
    branch (resume here, recompute there; other data) would wait forever in the next collective or compute
    something else."""
    if jax.process_count() == 1:
        return value
    values = np.asarray(multihost_utils.process_allgather(np.int32(value)))
    if values.min() != values.max():
        raise UserError(f"processes disagree on {what} ({values.tolist()} by process); {fix}")
    return value


def exists(path: Path) -> bool:
    """path.exists(), the same on every process (see agree)."""
    return bool(agree(Path(path).exists(), f"whether {path} exists"))


def same_data(digests: dict) -> None:
    """Every process read the same files (one offline host would otherwise train on the embedded subset)."""
    agree(zlib.crc32(json.dumps(digests, sort_keys=True).encode()) & 0x7FFFFFFF, "the dataset's files (sha256)",
          "give every process the same files (--data-dir on a shared folder, or --dataset mnist-5k)")
