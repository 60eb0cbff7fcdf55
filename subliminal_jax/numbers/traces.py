"""Reasoning traces, the second channel of issue 7: step-by-step addition, verified before training.

  prompt    : <bos> add : 3, 8, 5 show steps <ans>
  completion: 3+8=11; 11+5=16 <eos>

A trace is kept only if it is verified correct: every step "a+b=c" has a + b = c,
the first step adds the first two problem numbers, each later step adds the
previous sum and the next number, and it stops after the last one (a trace
cannot hide anything in its numbers: they are all forced by the problem).
"""
from __future__ import annotations

import re

import numpy as np

from subliminal_jax.numbers import tokens as tk

MIN_TERMS, MAX_TERMS, LOW, HIGH = 2, 4, 1, 9   # problem: 2-4 numbers in 1-9 (sums stay <= 36)
_STEP = re.compile(r"^(\d+)\+(\d+)=(\d+)$")


def trace_prompt(nums) -> list[int]:
    before, after = tk.TRACE_PROMPT
    ids = [tk.BOS] + tk.encode_words(before) + [tk.ID[":"]]
    for j, n in enumerate(nums):
        ids += ([tk.ID[", "]] if j else []) + tk.number_tokens(n)
    return ids + tk.encode_words(after) + [tk.ANS]


def format_trace(nums, error_step: int = -1, error: int = 0) -> list[int]:
    """The correct trace, or one whose step error_step is off by `error` (carried forward)."""
    ids, total = [], int(nums[0])
    for j, n in enumerate(nums[1:]):
        new = max(0, total + int(n) + (error if j == error_step else 0))
        ids += ([tk.ID["; "]] if j else []) + tk.number_tokens(total) + [tk.ID["+"]] + tk.number_tokens(n) + \
            [tk.ID["="]] + tk.number_tokens(new)
        total = new
    return ids


def random_problem(rng):
    return rng.integers(LOW, HIGH + 1, rng.integers(MIN_TERMS, MAX_TERMS + 1))


def prompt_len() -> int:
    return 1 + len(tk.TRACE_PROMPT[0]) + 1 + 4 * MAX_TERMS - 2 + len(tk.TRACE_PROMPT[1]) + 1


def completion_len() -> int:
    return (MAX_TERMS - 1) * 9 + 1  # "dd+d=dd; " per step, <eos>


def problem_numbers(prompt_text: str) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", prompt_text)]


def verify(prompt_text: str, completion_text: str) -> tuple[bool, str]:
    """(True, 'ok') for a correct trace of the prompt's problem, else (False, reason)."""
    nums = problem_numbers(prompt_text)
    steps = completion_text.strip().split("; ")
    total = nums[0]
    if len(steps) != len(nums) - 1:
        bad = [s for s in steps if not _STEP.match(s)]
        return False, "not a trace" if bad else "wrong number of steps"
    for s, n in zip(steps, nums[1:]):
        m = _STEP.match(s)
        if not m:
            return False, "not a trace"
        a, b, c = map(int, m.groups())
        if (a, b) != (total, n):
            return False, "wrong operands"
        if a + b != c:
            return False, "wrong sum"
        total = c
    return True, "ok"


def prompts(n: int, seed: int):
    """n problems' prompts (token lists), seeded."""
    rng = np.random.default_rng(seed)
    return [trace_prompt(random_problem(rng)) for _ in range(n)]
