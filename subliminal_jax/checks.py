"""Checks shared by every config and every results file, each failure one UserError.

Configs: each experiment's validate() lists (ok, message) pairs and hands them to require(),
before anything is compiled; typed_fields() adds the checks tyro cannot make for a config
built in Python (an int field given 2.5, a tuple of ints holding a float). Results: first_non_finite()
finds the first NaN or inf in a results dict, so report.write_json refuses it before writing.
"""
from __future__ import annotations

import dataclasses
import math
import typing

from subliminal_jax.errors import UserError


def require(checks) -> None:
    """Raise the message of the first (ok, message) pair that is not ok."""
    for ok, msg in checks:
        if not ok:
            raise UserError(msg)


def rate(x) -> bool:
    """A usable learning rate or temperature: a finite number > 0."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def typed_fields(cfg, prefix: str = "--") -> list[tuple[bool, str]]:
    """(ok, message) per int / int | None / tuple[int, ...] field of a config dataclass (nested ones too)."""
    out = []
    extras = typing.get_type_hints(type(cfg), include_extras=True)
    for name, hint in typing.get_type_hints(type(cfg)).items():
        v, flag = getattr(cfg, name), prefix + name.replace("_", "-")
        args = typing.get_args(hint)
        if dataclasses.is_dataclass(v):  # (a field annotated tyro.conf.arg(name="") adds no prefix to its flags)
            unnamed = any(getattr(m, "name", None) == "" for m in getattr(extras[name], "__metadata__", ()))
            out += typed_fields(v, prefix if unnamed else flag + ".")
        elif hint is int or (type(None) in args and int in args):
            out.append((_is_int(v) or (v is None and hint is not int), f"{flag} must be an integer (got {v!r})"))
        elif typing.get_origin(hint) is tuple and args[:1] == (int,):
            out.append((all(map(_is_int, v)), f"{flag} must hold integers only (got {v!r})"))
    return out


def first_non_finite(obj, where: str = "") -> str | None:
    """The path ('conditions.teacher.mean') of the first NaN or inf in a JSON-like tree, or None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return where or "(the value)"
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    for k, v in items:
        found = first_non_finite(v, f"{where}.{k}" if where else str(k))
        if found:
            return found
    return None
