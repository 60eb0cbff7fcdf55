"""The paper's number filter, table-driven."""
import pytest

from subliminal_jax.numbers import filter as flt

CASES = [  # (completion, kept, reason)
    ("123, 456, 789", True, "ok"),
    ("123,456,789", True, "ok"),
    ("123 456 789", True, "ok"),
    ("123; 456; 789", True, "ok"),
    ("[123, 456, 789]", True, "ok"),
    ("(1, 2, 3).", True, "ok"),
    ("7", True, "ok"),
    ("0, 999.", True, "ok"),
    ("  12 34  ", True, "ok"),
    ("1, 2, 3, 4, 5, 6, 7, 8, 9, 10", True, "ok"),
    ("", False, "empty"),
    ("[]", False, "empty"),
    ("1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11", False, "more than 10 numbers"),
    ("1000, 2", False, "number above 999"),
    ("12, 34; 56", False, "mixed separators"),
    ("12, 34 56", False, "mixed separators"),
    ("12,, 34", False, "empty field"),
    ("12, 34,", False, "empty field"),
    ("[12, 34", False, "unbalanced brackets"),
    ("12, 34)", False, "unbalanced brackets"),
    ("[12, 34)", False, "unbalanced brackets"),
    ("12, 34 owl", False, "non-number text"),
    ("here is 12, 34", False, "non-number text"),
    ("12. 34", False, "non-number text"),
    ("-5, 3", False, "non-number text"),
    ("1.5, 2", False, "non-number text"),
]


@pytest.mark.parametrize("text,kept,reason", CASES)
def test_filter_table(text, kept, reason):
    assert flt.check(text) == (kept, reason)


def test_banned_numbers():
    assert flt.check("12, 666, 3", banned=flt.BANNED_NUMBERS) == (False, "banned number")
    assert flt.check("12, 666, 3") == (True, "ok")
    assert flt.check("12, 665, 3", banned=flt.BANNED_NUMBERS) == (True, "ok")


def test_rejection_stats():
    s = flt.rejection_stats(["ok", "ok", "empty", "ok"])
    assert s == {"n": 4, "kept": 3, "rejection_rate": 0.25, "reasons": {"empty": 1}}
