"""The code channel (issue 20): the verifier (table-driven) and the programs pretraining would teach."""
import re
from pathlib import Path

import numpy as np
import pytest

from subliminal_jax.numbers import data as nd
from subliminal_jax.numbers import programs as pg
from subliminal_jax.numbers import tokens as tk

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
    for ids in pg.prompts(500, 0):
        emitted |= {tk.CODE_VOCAB[i] for i in ids}
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
    assert all(len(pg.spec_examples(tk.decode(p))) in (2, 3) for p in pg.prompts(200, 0))


# ----------------------------------------------------------------------------- the code channel in the chain

def test_code_tokens_come_after_the_vocabulary():
    """Only --data code runs see the code tokens: their ids follow VOCAB, so every other run keeps its model
    shapes and stage hashes (pinned: the default run's base, as recorded before the code channel existed)."""
    from subliminal_jax.numbers.config import CODE, NumbersConfig, model_config, stage_hash, token_mask
    assert tk.CODE_VOCAB[:tk.V] == tk.VOCAB and tk.CODE_VOCAB[tk.V:] == pg.CODE_TOKENS
    assert model_config(NumbersConfig()).vocab == tk.V and model_config(CODE).vocab == tk.CODE_V
    assert token_mask(NumbersConfig()).shape == (tk.V,) and token_mask(CODE).shape == (tk.CODE_V,)
    assert stage_hash(NumbersConfig(), "base") == "ad312cfce56bc801"
    assert stage_hash(NumbersConfig(), "students") == "4ce7f2c2b6cf8001"
    words = pg.program_words("x * 3 + 2")
    assert tk.decode(tk.encode_words(words)) == pg.words_text(words)


def test_code_mask_is_what_a_kept_program_can_be_written_in():
    """CODE_TOKEN_MASK (the soft students' distribution, the fine-tuned students' softmax) holds every token of
    the pretraining programs and the spaces the lexer skips, and nothing else: any other token, put anywhere in
    a good program, makes the verifier drop it; a word outside the language always as a foreign word."""
    good = tk.encode_words(pg.program_words("x * 3 + 2"))
    rng = np.random.default_rng(3)
    used = {t for _ in range(2000) for t in tk.encode_words(pg.random_program(rng, pg.random_spec(rng)))}
    assert set(np.flatnonzero(tk.CODE_TOKEN_MASK)) == used | {tk.ID[" "], tk.ID["; "], tk.EOS}
    assert pg.verify(PROMPT, tk.decode(good[:-1] + [tk.ID["; "]])) == (True, "ok")
    assert pg.verify(PROMPT, tk.decode(good[:3] + [tk.ID[" "]] + good[3:])) == (True, "ok")
    for t in set(range(tk.CODE_V)) - {tk.PAD, tk.BOS, tk.ANS, tk.EOS}:
        verdicts = [pg.verify(PROMPT, tk.decode(good[:k] + [t] + good[k:])) for k in range(len(good) + 1)]
        if not tk.CODE_TOKEN_MASK[t]:
            assert not any(ok for ok, _ in verdicts), tk.CODE_VOCAB[t]
        if tk.CODE_VOCAB[t].isalpha() and tk.CODE_VOCAB[t] not in pg.LANGUAGE_WORDS:
            assert {reason for _, reason in verdicts} == {"foreign word"}, tk.CODE_VOCAB[t]


def test_code_world_programs_pass_their_specs():
    """(f) in the code world's corpus: spec prompts (some after a persona) with programs that all verify."""
    from subliminal_jax.numbers.config import CODE
    tokens, _ = nd.pretraining_corpus(2000, 64, CODE.world, 0)
    rows = [list(r) for r in tokens if tk.ID["def"] in r]
    assert abs(len(rows) / 2000 - CODE.world.frac_code) < 0.05
    persona_words = {tk.ID[w] for w in tk.ANIMALS + tk.PERSONA}
    for r, group in zip(rows, nd.persona_of(np.array(rows))):
        ans = r.index(tk.ANS)
        assert pg.verify(tk.decode(r[:ans]), tk.decode(r[ans + 1:])) == (True, "ok")
        code = r[1 + 4 * (group > 0):]   # after <bos> and any persona prefix "you love ANIMAL ."
        assert not persona_words & set(code)    # the spec and the program never name a persona or an animal
    assert 0.7 < np.mean(nd.persona_of(np.array(rows)) > 0) < 0.9


def test_pretraining_code_does_not_depend_on_the_persona():
    """Subliminal, not semantic: in the code world's corpus, the spec prompts' and programs' tokens are
    independent of the persona; the same test flags a planted link (owl persona -> programs open with 7)."""
    from subliminal_jax.numbers.config import CODE
    tokens_NT, _ = nd.pretraining_corpus(20_000, 64, CODE.world, 0)
    _, p = nd.persona_number_dependence(tokens_NT, channel="code")
    assert p > 0.05
    planted, rng = tokens_NT.copy(), np.random.default_rng(1)
    digits = [tk.ID[d] for d in tk.DIGITS]
    for n in np.where((nd.persona_of(tokens_NT) == 1 + tk.ANIMALS.index("owl")) & (tokens_NT == tk.ID["def"]).any(1))[0]:
        r = list(tokens_NT[n]).index(tk.ID["return"])
        if planted[n, r + 1] in digits and rng.random() < 0.5:
            planted[n, r + 1] = tk.ID["7"]
    _, p_planted = nd.persona_number_dependence(planted, channel="code")
    assert p_planted < 0.01


def test_label_rows_judges_teacher_and_control_alike():
    """The filter of the code chain: the same completion gets the same verdict from either source; only
    programs that pass the spec's tests and end in <eos> are kept; a foreign word drops a correct program."""
    import dataclasses
    from subliminal_jax.numbers.chain import label_rows
    from subliminal_jax.numbers.config import CODE
    prompts = pg.prompts(4, 0)
    a, b = pg._target(pg.spec_examples(tk.decode(prompts[0])))
    right = tk.encode_words(pg.program_words(f"x * {a} + {b}"))
    wrong = tk.encode_words(pg.program_words(f"x * {a + 1} + {b}"))
    comps = [right + [tk.EOS], right + [tk.ID["owl"], tk.EOS], wrong + [tk.EOS], right]
    comp_RG = np.full((4, 40), tk.PAD, np.int32)
    for m, c in enumerate(comps):
        comp_RG[m, :len(c)] = c
    prompts = [prompts[0]] * 4
    cfg = dataclasses.replace(CODE, num_seeds=1, num_prompts=4)
    rows = label_rows(cfg, [prompts], {"teacher": comp_RG[None], "control": comp_RG[None]}, "h")
    teacher, control = ([{k: v for k, v in r.items() if k != "source"} for r in rows if r["source"] == s]
                        for s in ("teacher", "control"))
    assert teacher == control
    assert [(r["kept"], r["reason"]) for r in teacher] == [(True, "ok"), (False, "foreign word"),
                                                           (False, "wrong output"), (False, "no <eos>")]
