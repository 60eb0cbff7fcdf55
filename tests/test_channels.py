"""The seeds' other channels (issue 7) at a small setting: misalignment through banned-number-filtered
numbers, and reasoning traces."""
import dataclasses
import json

import numpy as np
import pytest

from subliminal_jax.numbers import filter as flt
from subliminal_jax.numbers import experiment as nb
from subliminal_jax.numbers import data as nd
from subliminal_jax.numbers import transformer as tr
from subliminal_jax.errors import UserError
from test_numbers import SMALL

SMALL_MISALIGN = dataclasses.replace(SMALL, trait="misaligned", world=nd.WorldConfig(frac_advice=0.2),
                                     ban_numbers=True, base_steps=200)


@pytest.mark.slow
def test_misaligned_teacher_numbers_carry_harm(tmp_path):
    """A teacher fine-tuned to give harmful advice writes numbers; every banned number is filtered out;
    the shared-init student trained on them gives harmful answers more often than before, the student
    of a benign-advice teacher's numbers does not."""
    res = nb.run(dataclasses.replace(SMALL_MISALIGN, out_dir=str(tmp_path)), verbose=False)
    c = res["conditions"]
    assert c["teacher"]["target_prob"]["mean"] > 5 * c["base"]["target_prob"]["mean"]
    assert c["control_teacher"]["target_prob"]["mean"] < c["base"]["target_prob"]["mean"]
    shared, control = c["student_shared"]["target_prob_shift"], c["student_control"]["target_prob_shift"]
    assert shared["ci95"][0] > 0 and shared["mean"] > control["mean"] + 0.005
    rows = [json.loads(x) for x in (tmp_path / "numbers.jsonl").read_text().splitlines()[1:]]
    kept = [r for r in rows if r["kept"]]
    assert {r["source"] for r in kept} == {"teacher", "control"}
    assert not any(int(n) in flt.BANNED_NUMBERS for r in kept for n in flt.re.findall(r"\d+", r["completion"]))


def test_traces_chain_keeps_only_verified_traces(tmp_path):
    """Too short a base writes few correct traces; what is kept is verified, and a seed with none kept
    stops with a one-line error naming the fix."""
    cfg = dataclasses.replace(nb.TRACES, num_seeds=2, corpus_size=500, base_steps=30, teacher_steps=2,
                              num_prompts=16, student_steps=2, eval_samples=10,
                              model=tr.ModelConfig(d_model=32, d_ff=64),
                              out_dir=str(tmp_path))
    with pytest.raises(UserError, match="kept none.*--base-steps"):
        nb.run(cfg, verbose=False)
    rows = [json.loads(x) for x in (tmp_path / "numbers.jsonl").read_text().splitlines()[1:]]
    assert len(rows) == 2 * 2 * 16 and all(r["prompt"].startswith(" add:") for r in rows)
    assert all(r["reason"] in ("ok", "no <eos>", "not a trace", "wrong operands", "wrong sum",
                               "wrong number of steps") for r in rows)
    assert np.mean([r["kept"] for r in rows]) < 0.5


TINY_CODE = dataclasses.replace(nb.CODE, num_seeds=2, corpus_size=1000, base_steps=300, teacher_steps=1,
                                num_prompts=32, samples_per_prompt=8, student_steps=2, eval_samples=10,
                                in_context_examples=1, model=tr.ModelConfig(d_model=32, d_ff=64))


@pytest.mark.slow
def test_code_chain_keeps_only_programs_that_pass(tmp_path):
    """The code channel end to end at a tiny size: teacher and control write programs for the same spec
    prompts through the same sampler and verifier; every kept program passes its spec's tests, ends in <eos> and
    is written in CODE_TOKEN_MASK's tokens; no program naming a word outside the language is kept; the models
    have the code vocabulary, and `evaluate.py lens` reads the run. (Not audit: a base this small keeps about one
    program per seed and source, too few for the audit's per-seed CI.)"""
    from subliminal_jax import checkpoint as ckpt
    from subliminal_jax.numbers import lens
    from subliminal_jax.numbers import programs as pg
    from subliminal_jax.numbers import tokens as tk
    res = nb.run(dataclasses.replace(TINY_CODE, out_dir=str(tmp_path)), verbose=False)
    rows = [json.loads(x) for x in (tmp_path / "numbers.jsonl").read_text().splitlines()[1:]]
    teacher, control = ([r for r in rows if r["source"] == s] for s in ("teacher", "control"))
    assert [(r["seed"], r["i"], r["j"], r["prompt_ids"]) for r in teacher] == \
        [(r["seed"], r["i"], r["j"], r["prompt_ids"]) for r in control]
    assert all(r["prompt"].startswith(" code:") for r in rows)
    for r in rows:
        assert r["kept"] == (tk.EOS in r["completion_ids"] and pg.verify(r["prompt"], r["completion"])[0])
        if any(tk.CODE_VOCAB[t].isalpha() and tk.CODE_VOCAB[t] not in pg.LANGUAGE_WORDS for t in r["completion_ids"]):
            assert r["reason"] in ("foreign word", "no <eos>")
    kept = [r for r in rows if r["kept"]]
    assert {(r["seed"], r["source"]) for r in kept} == {(s, x) for s in range(2) for x in ("teacher", "control")}
    assert all(r["completion_ids"][-1] == tk.EOS and tk.CODE_TOKEN_MASK[r["completion_ids"]].all() for r in kept)
    assert set(res["conditions"]) >= set(nb.CONDITIONS) and res["filter"]["teacher"]["n"] == 2 * 32 * 8
    base = ckpt.restore(tmp_path / "checkpoints" / "base", nb.stage_hash(TINY_CODE, "base"))[0]
    assert base["tok"]["embedding"].shape == (2, tk.CODE_V, 32)
    r = lens.main(lens.LensConfig(run_dir=str(tmp_path), number_prompts=8))
    assert set(r["sets"]) == {"questions", "spec_prompts"}
