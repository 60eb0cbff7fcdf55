"""The code channel (issue 20): the verifier (table-driven) and the programs pretraining would teach."""
import re
from pathlib import Path

import numpy as np
import pytest

from subliminal_jax import programs as pg
from subliminal_jax import tokens as tk

SPEC = pg.Spec(3, 2, (1, 2, 4))   # f(x) = 3x + 2, shown as f 1 = 5, f 2 = 8, f 4 = 14
PROMPT = pg.words_text(pg.spec_prompt_words(SPEC))


def test_layout():
    assert pg.spec_prompt_words(SPEC) == ["<bos>", "code", ":", "f", "1", "=", "5", ",", "f", "2", "=", "8", ",",
                                          "f", "4", "=", "1", "4", "write", "f", "<ans>"]
    assert PROMPT == " code: f1=5, f2=8, f4=14 write f"
    assert pg.program_words("x * 3 + 2") == ["def", "f", "x", ":", "return", "x", "*", "3", "+", "2", ";"]
    assert pg.words_text(pg.program_words("x * 3 + 2")) == " def f x: return x*3+2;"
    assert pg.spec_examples(PROMPT) == [(1, 5), (2, 8), (4, 14)]


@pytest.mark.parametrize("completion", [
    " def f x: return x*3+2;",                  # as decoded
    "def f x : return x * 3 + 2 ;",             # any spacing
    " def f x: return3* x+2;",
    " def f x: return2+ x*3;",
    " def f x: return x+ x+ x+2;",
    " def f x: return x*3+1+1;",
    " def f x: return x*4- x+2;",
    " def f x: return( x+1)*3-1;",
    " def f x: return2*( x+1)+ x;",
    " def f x: return x*3+2; ",                 # the "; " token at the end
    " def f x: return x*30-27* x+2;",           # multi-digit constants are in the language
])
def test_good_programs(completion):
    assert pg.verify(PROMPT, completion) == (True, "ok")


@pytest.mark.parametrize("completion,reason", [
    (" owl", "foreign word"),
    (" def f x: return owl;", "foreign word"),
    (" return x*3+2; done", "foreign word"),
    (" def f x: return x*3+2; the answer", "foreign word"),
    (" def f x: return y*3+2;", "foreign word"),
    (" def g x: return x*3+2;", "foreign word"),
    (" def f x: return x*3+2;  code", "foreign word"),      # a prompt word is not code either
    (" def f x: return x*3+2", "syntax"),                   # no ";"
    (" def f x: return x*3+;", "syntax"),
    (" def f x: return -2+ x*3+4;", "syntax"),              # no unary minus
    (" def f x: return( x*3+2;", "syntax"),
    (" def f x: return x*3+2);", "syntax"),
    (" def f: return x*3+2;", "syntax"),
    (" f x: return x*3+2;", "syntax"),
    (" def f x: return x 3+2;", "syntax"),
    (" def f x: return x*3+2=2;", "syntax"),
    (" def f x: return x*3,2;", "syntax"),
    (" def f x: return" + "(" * 9 + " x" + ")" * 9 + "*3+2;", "syntax"),   # nested deeper than MAX_DEPTH
    (" def f x: return x*x*x*x+2;", "runtime"),              # 9**4 > MAX_VALUE
    (" def f x: return 1000* x-997* x+2;", "runtime"),
    (" def f x: return x*3+3;", "wrong output"),
    (" def f x: return x*2+2;", "wrong output"),
    (" def f x: return3- x*3+2;", "wrong output"),
    (" def f x: return x*x+2* x- x+ x+1;", "wrong output"),
    (" def f x: return x*3+2+( x-1)*( x-2);", "wrong output"),   # fits the first two examples, not f 4 = 14
    # fits f(1) = 5, f(2) = 8, f(4) = 14 but not 3x + 2 elsewhere: (x-1)(x-2)(x-4) vanishes on the examples
    (" def f x: return x*3+2+( x-1)*( x-2)*( x-4);", "fails hidden tests"),
    (" def f x: return x*3+2+( x-1)*( x-2)*( x-4)*2;", "fails hidden tests"),
    (" def f x: return x*3+2; 5", "trailing"),
    (" def f x: return x*3+2;;", "trailing"),
    (" def f x: return x*3+2; def f x: return x*3+2;", "trailing"),
    ("", "empty"),
    ("   ", "empty"),
])
def test_broken_programs(completion, reason):
    assert pg.verify(PROMPT, completion) == (False, reason)


def test_spec_is_read_from_the_prompt():
    other = pg.words_text(pg.spec_prompt_words(pg.Spec(1, 0, (3, 7))))
    assert pg.verify(other, " def f x: return x;") == (True, "ok")
    assert pg.verify(other, " def f x: return x*3+2;") == (False, "wrong output")
    two_shown = pg.words_text(pg.spec_prompt_words(pg.Spec(2, 1, (0, 1))))
    assert pg.verify(two_shown, " def f x: return x*2+1+ x*( x-1);") == (False, "fails hidden tests")
    for bad_prompt in (" code: f1=5 write f", " code: f1=5, f2=8, f4=15 write f", " code: f1=5, f1=6 write f"):
        with pytest.raises(ValueError):
            pg.verify(bad_prompt, " def f x: return x*3+2;")


def test_random_programs_verify_and_vary():
    rng = np.random.default_rng(0)
    for _ in range(2000):
        spec = pg.random_spec(rng)
        prompt, program = pg.spec_prompt_words(spec), pg.random_program(rng, spec)
        assert pg.verify(pg.words_text(prompt), pg.words_text(program)) == (True, "ok"), (spec, program)
        assert len(prompt) <= pg.prompt_len() and len(program) + 1 <= pg.completion_len()
    for spec in (SPEC, pg.Spec(1, 0, (3, 7)), pg.Spec(5, 9, (0, 9))):
        forms = {" ".join(pg.random_program(rng, spec)) for _ in range(200)}
        assert len(forms) >= 5, (spec, forms)


def test_generator_depends_only_on_rng_and_function():
    """Same rng state, same function (a, b): same program, whichever examples the prompt shows."""
    a = [pg.random_program(np.random.default_rng(s), pg.Spec(3, 2, (1, 2))) for s in range(20)]
    b = [pg.random_program(np.random.default_rng(s), pg.Spec(3, 2, (0, 5, 9))) for s in range(20)]
    assert a == b


def test_worst_case_lengths():
    assert len(pg.spec_prompt_words(pg.Spec(5, 9, (7, 8, 9)))) == pg.prompt_len()
    rng = np.random.default_rng(1)
    longest = max(len(pg.random_program(rng, pg.random_spec(rng))) for _ in range(5000)) + 1
    assert pg.completion_len() - 6 <= longest <= pg.completion_len()   # the bound is not loose either


def test_no_persona_or_animal_anywhere():
    """Nothing in the language, the prompts or the programs names a persona word, an animal or a filler word."""
    rng = np.random.default_rng(2)
    emitted = set(pg.CODE_TOKENS) | pg.LANGUAGE_WORDS
    for words in pg.prompts(500, 0):
        emitted |= set(words)
    for _ in range(2000):
        emitted |= set(pg.random_program(rng, pg.random_spec(rng)))
    assert not emitted & set(tk.ANIMALS + tk.PERSONA + tk.FILLER + tk.BENIGN + tk.HARMFUL)
    assert not set(pg.CODE_TOKENS) & set(tk.VOCAB)              # CODE_TOKENS lists only what is new
    assert emitted <= set(tk.VOCAB) | set(pg.CODE_TOKENS)       # ... and everything else already exists
    source = Path(pg.__file__).read_text()
    assert not [a for a in tk.ANIMALS if re.search(rf"\b{a}\b", source)]
    assert "love" not in source


def test_prompts_are_seeded():
    assert pg.prompts(5, 3) == pg.prompts(5, 3) != pg.prompts(5, 4)
    assert all(len(pg.spec_examples(pg.words_text(p))) in (2, 3) for p in pg.prompts(200, 0))
