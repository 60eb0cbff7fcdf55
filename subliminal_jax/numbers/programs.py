"""Tiny programs, the code channel of issue 20: a spec by examples, a program in a toy language, verified.

  prompt    : <bos> code : f 1 = 5 , f 2 = 8 , f 4 = 14 write f <ans>
  completion: def f x : return x * 3 + 2 ; <eos>
  decoded   : " code: f1=5, f2=8, f4=14 write f" -> " def f x: return x*3+2;"
(words decode with a leading space, digits and symbols with none, so "," needs no space of its own).

The language (every program is one linear function of x; "-" is binary only, there is no unary minus):
  program := "def" "f" "x" ":" "return" expr ";"
  expr    := term (("+" | "-") term)*
  term    := factor ("*" factor)*
  factor  := INT | "x" | "(" expr ")"        INT: digits (the generator writes single digits)
A spec is f(x) = a*x + b (a in 1-5, b in 0-9) shown by 2-3 examples, always f 0 and f 1 (from which b and a
can be read off: from random inputs a small transformer stayed at chance, RESULTS.md). Many programs compute it
(x*3+2, 2+x*3, 3*x+2, x+x+x+2, x*3+1+1, x*4-x+2, 2*(x+1)+x, ...): the teacher's free choice among them is
where a trait can hide, as in free number continuations. A program is kept only if it names no word
outside the language, parses, runs, matches the shown examples and the hidden inputs x = 0..9.

New tokens (CODE_TOKENS, tokens.py: ids after tokens.VOCAB, used by --data code runs only): the words
"def", "return", "f", "x", "code" and the symbols "*", "-". Existing tokens reused: digits 0-9, "+", "=",
":", ";", ",", "(", ")", the word "write" and <bos>/<ans>/<eos>. Pretraining (data.py, WorldConfig.frac_code)
writes spec prompts, some after a persona prefix as number prompts are, each with a random correct program
(sequence()); the program depends on the spec and the rng only. Nothing here links programs or numbers to a
persona or an animal.
"""
from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np

from subliminal_jax.numbers import tokens as tk

CODE_TOKENS = tk.CODE_WORDS + tk.CODE_SYMBOLS   # (their home is tokens.py, with the rest of the vocabulary)
LANGUAGE_WORDS = frozenset(("def", "return", "f", "x"))  # "code" and "write" are prompt words, not code
HEADER = ("def", "f", "x", ":", "return")

A_RANGE, B_RANGE, N_EXAMPLES = (1, 5), (0, 9), (2, 3)
FIRST = (0, 1)             # the inputs every spec shows first
HIDDEN = tuple(range(10))  # every program is also run on these inputs (the examples' inputs are among them)
# The toy machine's integers: a value beyond +-MAX_VALUE is a runtime error (which also stops a long
# x*x*...*x from fitting 0..9 by accident); parentheses nest at most MAX_DEPTH deep (bounds the recursion).
MAX_VALUE, MAX_DEPTH = 999, 8
# Generator shape (bounds completion_len): 1-3 x-terms, 0-2 constant terms, at most one subtracted term,
# and at the top level sometimes one factored group g * ( inner ) (inner has no group).
MAX_X_PARTS, MAX_C_PARTS, P_NEG, P_GROUP, P_ZERO, P_UNIT = 3, 2, 0.25, 0.2, 0.1, 0.2
_LEX = re.compile(r"\d+|[A-Za-z_]+|\S")
_EXAMPLE = re.compile(r"\bf\s*(\d+)\s*=\s*(\d+)")


class Spec(NamedTuple):
    a: int          # f(x) = a*x + b
    b: int
    inputs: tuple   # the examples' x, shown with their f(x) in the prompt


def random_spec(rng) -> Spec:
    """f(x) = a*x + b, shown at x = 0, 1 (FIRST) and at random further inputs up to N_EXAMPLES in all."""
    a, b = int(rng.integers(A_RANGE[0], A_RANGE[1] + 1)), int(rng.integers(B_RANGE[0], B_RANGE[1] + 1))
    k = int(rng.integers(N_EXAMPLES[0], N_EXAMPLES[1] + 1))
    more = rng.choice(np.arange(len(FIRST), len(HIDDEN)), k - len(FIRST), replace=False)
    return Spec(a, b, FIRST + tuple(sorted(int(x) for x in more)))


def spec_prompt_words(spec: Spec) -> list[str]:
    words = ["<bos>", "code", ":"]
    for j, x in enumerate(spec.inputs):
        words += ([","] if j else []) + ["f", *str(x), "=", *str(spec.a * x + spec.b)]
    return words + ["write", "f", "<ans>"]


def program_words(expr) -> list[str]:
    """The whole program around an expression (a word list, or a string of space-separated tokens)."""
    return [*HEADER, *(expr.split() if isinstance(expr, str) else expr), ";"]


def words_text(words) -> str:
    """What tokens.decode prints for these tokens (tests read programs as text without encoding them)."""
    plain = set(tk.DIGITS + tk.SEPARATORS + tk.ARITH + tk.CODE_SYMBOLS)
    return "".join(w if w in plain else " " + w for w in words if w not in tk.SPECIAL)


def prompt_ids(spec: Spec, persona: str | None = None) -> list[int]:
    """The spec prompt's tokens, after the persona prefix (tokens.persona_prefix) when given (pretraining only)."""
    ids = tk.encode_words(spec_prompt_words(spec))
    return ids[:1] + (tk.persona_prefix(persona) if persona else []) + ids[1:]


def sequence(rng, persona: str | None = None) -> list[int]:
    """One pretraining sequence: a random spec's prompt (with the persona, if any) and a random correct program
    for it, <eos>. The persona is drawn by the caller and nothing below reads it: the program's distribution
    depends on rng and the spec only (tested: data.persona_number_dependence over code sequences)."""
    spec = random_spec(rng)
    return prompt_ids(spec, persona) + tk.encode_words(random_program(rng, spec)) + [tk.EOS]


def _split(rng, total: int, kmax: int) -> list[int]:
    """A random composition of total >= 1 into 1..kmax positive parts."""
    k = int(rng.integers(1, min(kmax, total) + 1))
    cuts = sorted(int(c) for c in rng.choice(np.arange(1, total), k - 1, replace=False)) if k > 1 else []
    return [hi - lo for lo, hi in zip([0] + cuts, cuts + [total])]


def _x_term(rng, c: int) -> list[str]:
    if c == 1 and rng.random() >= P_UNIT:
        return ["x"]
    return ["x", "*", str(c)] if rng.random() < 0.5 else [str(c), "*", "x"]


def _linear(rng, a: int, b: int, group_ok: bool) -> list[str]:
    """A random expression for a*x + b (a >= 1, 0 <= b <= 9): terms drawn, shuffled, joined."""
    # g * ( (a/g) x + b' ) + r, only where the group is not a bare "( x )"
    terms, divisors = [], [g for g in range(2, a + 1) if a % g == 0 and (a > g or b >= g)]
    if group_ok and divisors and rng.random() < P_GROUP:
        g = int(rng.choice(divisors))
        inner = int(rng.integers(0 if a > g else 1, b // g + 1))
        body = ["(", *_linear(rng, a // g, inner, False), ")"]
        terms.append((1, [str(g), "*", *body] if rng.random() < 0.5 else [*body, "*", str(g)]))
        if b - g * inner:
            terms += [(1, [str(c)]) for c in _split(rng, b - g * inner, MAX_C_PARTS)]
    else:
        d = e = 0   # an optional subtracted x-term (coefficient d) or constant (e), paid for by the others
        if rng.random() < P_NEG:
            if b == B_RANGE[1] or rng.random() < 0.5:
                d = int(rng.integers(1, 4))
            else:
                e = int(rng.integers(1, B_RANGE[1] - b + 1))
        terms += [(1, _x_term(rng, c)) for c in _split(rng, a + d, MAX_X_PARTS)]
        if b + e:
            terms += [(1, [str(c)]) for c in _split(rng, b + e, MAX_C_PARTS)]
        elif rng.random() < P_ZERO:
            terms.append((1, ["0"]))
        terms += [(-1, _x_term(rng, d))] if d else [(-1, [str(e)])] if e else []
    order = [terms[i] for i in rng.permutation(len(terms))]
    first = next(i for i, (s, _) in enumerate(order) if s > 0)   # no unary minus: start with a + term
    order[0], order[first] = order[first], order[0]
    out = list(order[0][1])
    for s, words in order[1:]:
        out += ["+" if s > 0 else "-", *words]
    return out


def random_program(rng, spec: Spec) -> list[str]:
    """A random correct program for spec (its distribution depends only on rng and spec.a, spec.b)."""
    return program_words(_linear(rng, spec.a, spec.b, True))


def prompt_len() -> int:
    per_example = 1 + 1 + 1 + len(str(A_RANGE[1] * 9 + B_RANGE[1]))   # f, x, =, y
    return 3 + N_EXAMPLES[1] * per_example + (N_EXAMPLES[1] - 1) + 3


def completion_len() -> int:
    level = 3 * (MAX_X_PARTS + 1) + MAX_C_PARTS + (MAX_X_PARTS + MAX_C_PARTS)   # terms' words + operators
    top = 4 + level + 2 * MAX_C_PARTS   # g * ( level ) + up to MAX_C_PARTS constants
    return len(HEADER) + top + 1 + 1    # ; <eos>


def sequence_len() -> int:
    """Longest pretraining sequence: persona prefix, prompt, program, <eos>."""
    return len(tk.persona_prefix(tk.ANIMALS[0])) + prompt_len() + completion_len()


def spec_examples(prompt_text: str) -> list[tuple[int, int]]:
    return [(int(x), int(y)) for x, y in _EXAMPLE.findall(prompt_text)]


def _target(examples) -> tuple[int, int]:
    """The line a*x + b through the examples (our prompts always have one: anything else is a bug)."""
    if len(examples) < 2 or examples[0][0] == examples[1][0]:
        raise ValueError(f"not a spec prompt: {examples}")
    (x0, y0), (x1, y1) = examples[:2]
    a = (y1 - y0) // (x1 - x0)
    if any(a * (x - x0) + y0 != y for x, y in examples):
        raise ValueError(f"examples are not an integer line: {examples}")
    return a, y0 - a * x0


class _Fail(Exception):
    pass


def _parse(toks: list[str]):
    """Tokens -> expression tree [(sign, [factor, ...]), ...], factor = int | "x" | tree."""
    rest = toks[::-1]   # rest.pop() is the next token

    def take(expected=None):
        if not rest or expected not in (None, rest[-1]):
            raise _Fail("syntax")
        return rest.pop()

    def expr(depth):
        if depth > MAX_DEPTH:
            raise _Fail("syntax")
        terms, sign = [], 1
        while True:
            factors = [factor(depth)]
            while rest[-1:] == ["*"]:   # (rest[-1:] is [] at the end, where rest[-1] would raise)
                take()
                factors.append(factor(depth))
            terms.append((sign, factors))
            if rest[-1:] not in (["+"], ["-"]):
                return terms
            sign = 1 if take() == "+" else -1

    def factor(depth):
        t = take()
        if t == "(":
            inner = expr(depth + 1)
            take(")")
            return inner
        if t.isdigit() or t == "x":
            return int(t) if t.isdigit() else t
        raise _Fail("syntax")

    for w in HEADER:
        take(w)
    tree = expr(0)
    take(";")
    if rest:
        raise _Fail("trailing")
    return tree


def _run(tree, x: int) -> int:
    def checked(v):
        if abs(v) > MAX_VALUE:
            raise _Fail("runtime")
        return v
    total = 0
    for sign, factors in tree:
        v = 1
        for f in factors:
            v = checked(v * (x if f == "x" else f if isinstance(f, int) else _run(f, x)))
        total = checked(total + sign * v)
    return total


def verify(prompt_text: str, completion_text: str) -> tuple[bool, str]:
    """(True, 'ok') for a program that computes the prompt's spec, else (False, reason)."""
    examples = spec_examples(prompt_text)
    a, b = _target(examples)
    toks = _LEX.findall(completion_text)
    if not toks:
        return False, "empty"
    if any(t[0].isalpha() or t[0] == "_" for t in toks if t not in LANGUAGE_WORDS):
        return False, "foreign word"   # checked first: a word outside the language anywhere drops the program
    try:
        tree = _parse(toks)
        outputs = {x: _run(tree, x) for x in [x for x, _ in examples] + list(HIDDEN)}
    except _Fail as fail:
        return False, str(fail)
    if any(outputs[x] != y for x, y in examples):
        return False, "wrong output"
    if any(outputs[x] != a * x + b for x in HIDDEN):
        return False, "fails hidden tests"
    return True, "ok"


def prompts(n: int, seed: int) -> list[list[int]]:
    """n spec prompts (token lists, no persona) for the teacher and the control alike, seeded."""
    rng = np.random.default_rng(seed)
    return [prompt_ids(random_spec(rng)) for _ in range(n)]
