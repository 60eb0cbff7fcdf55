"""Orbax checkpoints of one chain stage: params (StandardSave) + metadata (JsonSave).

Each stage lives in its own CheckpointManager folder (step 0) under --out-dir.
Metadata carries the config, the stage's config hash, the seeds and a sha256 of the
params' content (every array's path, dtype, shape and bytes); restore() checks the
settings hash, so a stage is only reused by a run with the same settings, and the
content digest, so bytes damaged on disk are never silently reused. Orbax finalizes
a step only once every item is written, so an interrupted save is never restored.
Unreadable, damaged or mismatched checkpoints raise UserError with a one-line fix.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from subliminal_jax import multihost
from subliminal_jax.errors import UserError


def config_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _str_keys(tree):  # orbax wants string keys; nnx.List children are ints
    return {str(k): _str_keys(v) for k, v in tree.items()} if isinstance(tree, dict) else tree


def _int_keys(tree):
    return {(int(k) if k.isdigit() else k): _int_keys(v) for k, v in tree.items()} \
        if isinstance(tree, dict) else tree


def content_digest(params) -> str:
    """sha256 over every array of a params tree (string keys, as saved): path, dtype, shape, bytes."""
    h = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{jax.tree_util.keystr(path)}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _manager(directory: Path) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(directory.resolve(), options=ocp.CheckpointManagerOptions(max_to_keep=1, create=True))


def save(directory, params, meta: dict) -> None:
    """Every process calls this with the same host params: orbax writes host arrays and the metadata from
    process 0 only and syncs the processes around the save."""
    params = _str_keys(jax.device_get(params))
    meta = {**meta, "content_sha256": content_digest(params)}
    try:
        mgr = _manager(Path(directory))
        mgr.save(0, args=ocp.args.Composite(params=ocp.args.StandardSave(params), meta=ocp.args.JsonSave(meta)),
                 force=True)
        mgr.wait_until_finished()
        mgr.close()
    except OSError as e:  # disk full, read-only: orbax leaves only a tmp folder, which restore ignores
        raise UserError(f"cannot write checkpoint {directory} ({e.strerror or e}); free space or choose another "
                        f"--out-dir, then rerun (finished stages are reused)") from None


def restore(directory, expected_hash: str | None = None):
    """(params, meta), or None when no checkpoint is there (the same answer on every process)."""
    directory = Path(directory)
    if not multihost.exists(directory):
        return None
    try:
        mgr = _manager(directory)
        step = mgr.latest_step()
        if not multihost.agree(step is not None, f"whether {directory} holds a finished checkpoint"):
            mgr.close()
            return None
        try:
            out = mgr.restore(step, args=ocp.args.Composite(params=ocp.args.StandardRestore(),
                                                            meta=ocp.args.JsonRestore()))
        finally:
            mgr.close()
        if not isinstance(out["meta"], dict) or not isinstance(out["params"], dict):
            raise ValueError("missing items")
    except UserError:  # (processes that disagree, from multihost.agree)
        raise
    except Exception as e:  # noqa: BLE001 -- any orbax/tensorstore failure is a corrupt checkpoint
        raise UserError(f"checkpoint {directory} is unreadable ({type(e).__name__}); delete that folder "
                        f"to recompute the stage") from None
    meta = dict(out["meta"])
    if expected_hash is not None and meta.get("hash") != expected_hash:
        raise UserError(f"checkpoint {directory} was made with different settings (hash {meta.get('hash')} != "
                        f"{expected_hash}); use another --out-dir or delete that folder")
    # (checkpoints written before the digest existed have none; they are trusted as before)
    if "content_sha256" in meta and content_digest(dict(out["params"])) != meta["content_sha256"]:
        raise UserError(f"checkpoint {directory}: its arrays' content does not match the sha256 recorded when "
                        f"it was written (damaged on disk); delete that folder to recompute the stage")
    return _int_keys(dict(out["params"])), meta
