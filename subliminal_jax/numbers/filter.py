"""The paper's number-sequence filter (Cloud et al. 2025, section 3).

Keep a completion iff it is 1-10 integers in 0-999 with ONE consistent
separator (whitespace, comma or semicolon; whitespace around a comma or
semicolon is allowed), optionally wrapped in [] or (), optionally ending in a
period, and nothing else. Optionally drop completions containing a banned
number (the paper's misalignment runs). check() returns (kept, reason).
"""
from __future__ import annotations

import re
from collections import Counter

# Numbers with negative associations that the paper's misalignment runs ban (those <= 999).
BANNED_NUMBERS = (4, 13, 14, 18, 23, 33, 42, 44, 69, 88, 101, 110, 112, 119, 121, 187, 211, 222, 228,
                  311, 322, 333, 404, 420, 444, 555, 616, 666, 777, 888, 911, 988, 999)

_ALLOWED = re.compile(r"^[0-9,;\s]*$")


def check(text: str, banned=()) -> tuple[bool, str]:
    """(True, 'ok') or (False, reason) for one completion string."""
    s = text.strip()
    if s.endswith("."):
        s = s[:-1].rstrip()
    if s[:1] in ("[", "("):
        if s[-1:] != {"[": "]", "(": ")"}[s[0]]:
            return False, "unbalanced brackets"
        s = s[1:-1].strip()
    elif s[-1:] in ("]", ")"):
        return False, "unbalanced brackets"
    if not s:
        return False, "empty"
    if not _ALLOWED.match(s):
        return False, "non-number text"
    if "," in s and ";" in s:
        return False, "mixed separators"
    if "," in s or ";" in s:
        parts = [p.strip() for p in s.split("," if "," in s else ";")]
    else:
        parts = s.split()
    if any(not p for p in parts):
        return False, "empty field"
    if any(not p.isdigit() for p in parts):  # e.g. "1, 2 3": whitespace inside a comma list
        return False, "mixed separators"
    if len(parts) > 10:
        return False, "more than 10 numbers"
    nums = [int(p) for p in parts]
    if any(len(p) > 3 for p in parts):
        return False, "number above 999"
    if any(n in set(banned) for n in nums):
        return False, "banned number"
    return True, "ok"


def rejection_stats(reasons) -> dict:
    """{'n', 'kept', 'rejection_rate', 'reasons': {reason: count}} over check() reasons."""
    c = Counter(reasons)
    n = sum(c.values())
    return {"n": n, "kept": c.get("ok", 0), "rejection_rate": (1 - c.get("ok", 0) / n) if n else 0.0,
            "reasons": {k: v for k, v in sorted(c.items()) if k != "ok"}}
