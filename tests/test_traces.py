"""Reasoning traces: the verifier (table-driven) and the pretraining traces it judges."""
import numpy as np
import pytest

from subliminal_jax.numbers import data as nd
from subliminal_jax.numbers import tokens as tk
from subliminal_jax.numbers import traces

PROMPT = tk.decode(traces.trace_prompt([3, 8, 5]))


@pytest.mark.parametrize("completion,kept,reason", [
    ("3+8=11; 11+5=16", True, "ok"),
    ("3+8=11; 11+5=17", False, "wrong sum"),
    ("3+8=12; 12+5=17", False, "wrong sum"),          # consistent after a wrong step: still wrong
    ("8+3=11; 11+5=16", False, "wrong operands"),     # not the problem's order
    ("3+8=11; 12+5=17", False, "wrong operands"),     # does not carry the previous sum
    ("3+8=11", False, "wrong number of steps"),
    ("3+8=11; 11+5=16; 16+1=17", False, "wrong number of steps"),
    ("3+8=11, 11+5=16", False, "not a trace"),
    ("3+8=11; 11+5=16 owl", False, "not a trace"),
    ("", False, "not a trace"),
])
def test_verifier(completion, kept, reason):
    assert traces.verify(PROMPT, completion) == (kept, reason)


def test_format_and_lengths():
    assert tk.decode(traces.format_trace([3, 8, 5])) == "3+8=11; 11+5=16"
    assert tk.decode(traces.format_trace([3, 8, 5], error_step=0, error=1)) == "3+8=12; 12+5=17"
    worst = [traces.HIGH] * traces.MAX_TERMS
    assert len(traces.trace_prompt(worst)) <= traces.prompt_len()
    assert len(traces.format_trace(worst)) + 1 <= traces.completion_len()
    assert tk.TRACE_TOKEN_MASK[traces.format_trace(worst)].all() and not tk.TRACE_TOKEN_MASK[tk.ANIMAL_IDS].any()


def test_pretraining_traces_are_mostly_correct():
    """(e) in the corpus: about 1 - trace_error_rate of the traces pass the verifier."""
    w = nd.WorldConfig(frac_traces=0.5, trace_error_rate=0.2)
    tokens, _ = nd.pretraining_corpus(1000, 64, w, 0)
    rows = [list(r) for r in tokens if tk.ID["+"] in r]
    assert 400 < len(rows) < 600
    ok = [traces.verify(tk.decode(r[:r.index(tk.ANS)]), tk.decode(r[r.index(tk.ANS) + 1:]))[0] for r in rows]
    assert 0.72 < np.mean(ok) < 0.88
