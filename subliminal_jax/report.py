"""Writing results: the output folder, atomic writes, JSON (the plots: plots.py)."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from subliminal_jax import checks, multihost
from subliminal_jax.errors import UserError


def prepare_out_dir(path: str) -> Path:
    """Create the output folder up front, so a bad path fails before any training."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out, prefix=".write-test", delete=True)
        probe.close()
    except OSError as e:
        raise UserError(f"--out-dir {path}: cannot write there ({e.strerror}); choose a writable folder") from None
    return out


def write_atomically(path: Path, write) -> None:
    """write(tmp) to a temp file beside path, then rename: a crash or a full disk never leaves half a file
    under the real name. The temp file is opened like any file the user writes (umask permissions, not 0600).
    In a run of several processes only process 0 writes (they all hold the same results)."""
    if not multihost.is_main():
        return
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write {path} ({e.strerror or e}); free space or choose a writable --out-dir") \
            from None


def write_json(path: Path, obj, finite: bool = True) -> None:
    """Write JSON atomically; finite=True (results, audit, lens, sweeps) refuses NaN or inf, writing nothing."""
    bad = checks.first_non_finite(obj) if finite else None
    if bad:
        raise UserError(f"{Path(path).name} not written: {bad} is not finite (NaN or inf); likely a diverged "
                        f"training (lower the learning rates) or nothing to measure (e.g. no kept rows)")

    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1)
    write_atomically(path, write)
