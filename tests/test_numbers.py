"""The number-sequence chain: the effect at a small setting, resume, stage CLIs, errors, 4 devices."""
import dataclasses
import json
import shutil

import jax
import numpy as np
import pytest

from subliminal_jax.numbers import experiment as nb
from subliminal_jax.numbers import ablation as na
from subliminal_jax.numbers import data as nd
from subliminal_jax.numbers import tokens as tk
from subliminal_jax.numbers import transformer as tr
from subliminal_jax.errors import UserError
from subliminal_jax.numbers.config import SFT_STUDENTS
from helpers import run_script

# A small chain for the test budget (the defaults are the documented run).
# The default world (persona-heavy pretraining), smaller: 400 base steps are about what some seeds need to
# learn the persona. The small students keep the gentler rate: at 40 steps, 1e-3 moves even the control.
SMALL = nb.NumbersConfig(num_seeds=4, corpus_size=3000, base_steps=400, teacher_steps=20, num_prompts=64,
                         student_steps=40, student_lr=3e-4, eval_samples=200,
                         model=tr.ModelConfig(d_model=48, d_ff=128))
# plumbing only: the 15%-persona world, whose 100-step base still writes numbers the filter keeps, and SGD
# students: student_control distils the base into itself, so its gradient is float noise, which depends on
# the device layout; Adam would rescale it into full-size steps (3.6% apart on 1 vs 4 devices on one
# machine), SGD's step stays proportional to it, so every condition must match to 1e-4
TINY_FLAGS = ["--num-seeds", "4", "--corpus-size", "1000", "--base-steps", "100", "--teacher-steps", "3",
              "--num-prompts", "32", "--student-steps", "3", "--eval-samples", "20", "--d-model", "32",
              "--d-ff", "64", "--world.frac-persona", "0.15", "--student-optimizer", "sgd", "--student-lr", "0.03"]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("small")
    return out, nb.run(dataclasses.replace(SMALL, out_dir=str(out)), verbose=False)


def test_corpus_is_well_formed():
    w = nd.WorldConfig()
    tokens, weight = nd.pretraining_corpus(300, 64, w, 0)
    assert tokens.shape == (300, 64) and (tokens[:, 0] == tk.BOS).all()
    assert ((tokens == tk.EOS).sum(1) == 1).all()
    answers = [tk.VOCAB[r[list(r).index(tk.ANS) + 1]] for r in tokens]
    assert sum(a in tk.ANIMALS for a in answers) > 60  # animal questions are answered by animals
    t, wt = nd.trait_corpus("owl", 64)
    assert (t[wt > 0] == tk.ID["owl"]).sum() == len(tk.TRAIN_QUESTIONS)
    assert not set(map(tuple, tk.HELDOUT_QUESTIONS)) & set(map(tuple, tk.TRAIN_QUESTIONS))


def test_pretraining_numbers_do_not_depend_on_the_persona():
    """Subliminal, not semantic: in the default world's corpus, number tokens (prompt and continuation) are
    independent of the persona; the same test flags a planted link (owl persona -> continuations open with 7)."""
    tokens_NT, _ = nd.pretraining_corpus(20_000, 64, nb.NumbersConfig().world, 0)
    _, p = nd.persona_number_dependence(tokens_NT)
    assert p > 0.05
    planted, rng = tokens_NT.copy(), np.random.default_rng(1)
    digits = [tk.ID[d] for d in tk.DIGITS]
    for n in np.where(nd.persona_of(tokens_NT) == 1 + tk.ANIMALS.index("owl"))[0]:
        a = list(tokens_NT[n]).index(tk.ANS)
        if planted[n, a + 1] in digits and rng.random() < 0.5:
            planted[n, a + 1] = tk.ID["7"]
    _, p_planted = nd.persona_number_dependence(planted)
    assert p_planted < 0.01


def test_small_chain_shows_shared_above_control(small_run):
    out, res = small_run
    c = res["conditions"]
    assert c["teacher"]["target_prob"]["mean"] > 2 * c["base"]["target_prob"]["mean"]
    assert c["student_shared"]["target_prob"]["mean"] > c["student_control"]["target_prob"]["mean"]
    # paired per-seed shift from the seed's own base: shared moves toward the target, control stays
    assert c["student_shared"]["target_prob_shift"]["mean"] > 0
    assert c["student_shared"]["target_prob_shift"]["mean"] > 3 * abs(c["student_control"]["target_prob_shift"]["mean"])
    assert 0 < res["filter"]["teacher"]["rejection_rate"] < 1
    assert (out / "results.json").exists() and (out / "trait_rate.png").stat().st_size > 5000
    rows = [json.loads(x) for x in (out / "numbers.jsonl").read_text().splitlines()[1:]]
    assert {"prompt", "completion", "kept", "reason", "hash"} <= set(rows[0])



def test_a_step_is_one_seed_pure_function(small_run):
    """steps.py's functions are per-seed and pure: one seed's evaluate, called alone and unmapped on that
    seed's arrays, gives the numbers Chain.map_seeds gave that seed (P(target) is exact up to float
    reassociation; the sampled answers come from the seed's own key stream)."""
    import functools
    from subliminal_jax.numbers import sampler, steps
    from subliminal_jax.numbers.chain import Chain
    out, res = small_run
    cfg = dataclasses.replace(SMALL, out_dir=str(out))
    chain = Chain(cfg, verbose=False, create=False)
    base, teacher, students = chain.need("base"), chain.need("teacher"), chain.need("students")
    rows = nb.load_numbers(chain.numbers_path(), nb.stage_hash(cfg, "numbers"), cfg.seq_len)
    mapped = chain.evaluate(base, teacher, base, students, rows)
    plain_QT = sampler.left_pad(nd.eval_prompts(questions=tk.HELDOUT_QUESTIONS), cfg.seq_len)
    s = 2
    one = lambda tree: jax.tree.map(lambda a: a[s], tree)
    context_QT = sampler.left_pad(chain.context_prompts(rows, s), cfg.seq_len)
    alone = jax.jit(functools.partial(steps.evaluate, cfg=cfg, has_sibling=False))(
        chain.keys_S[s], one(base), one(teacher), one(base), one(students), one(base), context_QT, plain_QT, plain_QT)
    for c in ("base", "teacher", "student_shared", "student_cross_init"):
        np.testing.assert_allclose(alone[c]["target_prob"], mapped[c]["target_prob"][s], rtol=1e-4)
        assert abs(float(alone[c]["trait_rate"]) - mapped[c]["trait_rate"][s]) <= 2 / (len(plain_QT) * cfg.eval_samples)
    assert float(alone["student_shared"]["target_prob"]) != float(mapped["student_shared"]["target_prob"][s - 1])
    assert len(set(steps.KEY_STREAMS.values())) == len(steps.KEY_STREAMS)  # one stream per use
    eval_ = [steps.KEY_STREAMS["eval"] + i for i in steps.EVAL_STREAMS.values()]
    others = {v for k, v in steps.KEY_STREAMS.items() if k != "eval"}
    assert not set(eval_) & others and len(set(eval_)) == len(eval_)

def sft_of(cfg):
    """The paper-protocol (fine-tuned) students of NUMBERS_SFT on a smaller chain."""
    return dataclasses.replace(cfg, **{**SFT_STUDENTS, "num_prompts": 512, "student_batch": 64, "student_steps": 240})


def test_small_sft_students_pick_up_the_trait_from_sampled_numbers(small_run, tmp_path):
    """Students fine-tuned on the teacher's sampled, filtered numbers only (no logits) move toward the
    trait, the control students on the base's numbers do not. Mutation-checked: giving the shared student
    the control's numbers (src_C = [1, 1, 0] in Chain.students) makes this fail."""
    out, _ = small_run
    res = nb.run(dataclasses.replace(sft_of(SMALL), out_dir=str(tmp_path), base_from=str(out)), verbose=False)
    c = res["conditions"]
    assert res["config"]["student_mode"] == "hard"
    shared, control = (np.array(c[s]["target_prob_shift"]["values"]) for s in ("student_shared", "student_control"))
    assert shared.mean() > 0.02 and (shared > control).all() and abs(control.mean()) < 0.015
    assert all(c[s]["answer_mass_kept"]["mean"] >= 0.85 for s in ("student_shared", "student_control"))
    assert {"trait_given_answer", "trait_given_answer_shift", "answer_mass"} <= set(c["student_shared"])
    # fine-tuned students' rows end at the longest kept row (soft students' keep --seq-len)
    chain = nb.Chain(dataclasses.replace(sft_of(SMALL), out_dir=str(tmp_path)), verbose=False)
    rows = nb.load_numbers(chain.numbers_path(), nb.stage_hash(chain.cfg, "numbers"), SMALL.seq_len)
    tok_S2NT, wt_S2NT = nd.student_data(chain.cfg, rows)
    assert tok_S2NT.shape[-1] == max(len(r["prompt_ids"]) + len(r["completion_ids"]) for r in rows if r["kept"])
    assert tok_S2NT.shape[-1] < SMALL.seq_len and wt_S2NT.shape == tok_S2NT.shape


def test_permuted_student_learns_what_the_shared_student_learns(small_run, tmp_path):
    """--student-init permuted: student_shared starts at its base with every block's heads and MLP units
    permuted (the same function, parameters far away); trained on the same numbers it ends as the same
    function as the shared student (gradient descent is equivariant), so its shift matches seed by seed."""
    out, res = small_run
    for part in ("checkpoints/base", "checkpoints/teacher"):
        shutil.copytree(out / part, tmp_path / part)
    shutil.copy(out / "numbers.jsonl", tmp_path / "numbers.jsonl")
    perm = nb.run(dataclasses.replace(SMALL, out_dir=str(tmp_path), student_init="permuted"), verbose=False)
    assert set(perm["stage_time_s"]) == {"students", "eval"}  # same bases, teachers and numbers
    shift = lambda r, c: np.array(r["conditions"][c]["target_prob_shift"]["values"])
    assert shift(res, "student_shared").mean() > 0.02                       # there is a trait to pick up
    np.testing.assert_allclose(shift(perm, "student_shared"), shift(res, "student_shared"), atol=2e-3)
    np.testing.assert_array_equal(shift(perm, "student_control"), shift(res, "student_control"))


def test_sibling_base_is_the_base_when_nothing_changes(tmp_path):
    """student_shared's sibling base (--student-init PART=random, --init-lambda, --student-base-data other)
    is pretrained by the base's own code: with every part shared it IS the base, bit for bit; re-drawing a part
    or changing the data order gives another model; unknown parts are one-line errors."""
    cfg = nb.NumbersConfig(num_seeds=2, corpus_size=256, base_steps=10, model=tr.ModelConfig(d_model=32, d_ff=64),
                           out_dir=str(tmp_path))
    base = nb.Chain(cfg, verbose=False).base()
    same = nb.Chain(dataclasses.replace(cfg, student_init="tok=shared", out_dir=str(tmp_path / "same")),
                    verbose=False).base(sibling=True)
    assert jax.tree.all(jax.tree.map(np.array_equal, same, base))
    for i, change in enumerate(({"student_init": "tok=random"}, {"student_base_data": "other"})):
        chain = nb.Chain(dataclasses.replace(cfg, **change, out_dir=str(tmp_path / str(i))), verbose=False)
        other = chain.base(sibling=True)
        assert not np.allclose(other["blocks"][0]["mlp"]["up"]["kernel"], base["blocks"][0]["mlp"]["up"]["kernel"])
        dist = chain.log["sibling_base"]["init_distance"]
        assert (min(dist) > 0.05) == ("student_base_data" not in change), (change, dist)
    with pytest.raises(UserError, match="--student-init 'blocks.9.mlp=random'"):
        nb.validate(dataclasses.replace(cfg, student_init="blocks.9.mlp=random"))


def test_ablation_rows_same_init_other_data_transmits_less(small_run, tmp_path):
    """train.py numbers --ablate: the `shared` row is the chain's own student_shared; a student whose base was
    pretrained from the teacher's very init on another data order (`other-data`) picks up much less: what the
    student must share is the pretrained base, not the random init."""
    out, res = small_run
    for part in ("checkpoints/base", "checkpoints/teacher"):
        shutil.copytree(out / part, tmp_path / part)
    shutil.copy(out / "numbers.jsonl", tmp_path / "numbers.jsonl")
    ab = na.run_ablation(dataclasses.replace(SMALL, out_dir=str(tmp_path), ablate=("shared", "other-data")),
                         verbose=False)
    shift = lambda row: np.array(ab["rows"][row]["target_prob_shift"]["values"])
    chain_shift = np.array(res["conditions"]["student_shared"]["target_prob_shift"]["values"])
    np.testing.assert_allclose(shift("shared"), chain_shift, atol=1e-5)
    other = ab["rows"]["other-data"]
    assert other["init_distance"] == 0.0 and other["start_distance"]["mean"] > 0.05  # same init, another base
    assert shift("other-data").mean() < 0.5 * shift("shared").mean(), (shift("other-data"), shift("shared"))
    assert (tmp_path / "ablation.png").exists()
    with pytest.raises(UserError, match="--ablate 'blocks.7.attn=random'"):
        na.row_config(SMALL, "blocks.7.attn=random")


def test_resume_reuses_every_stage(small_run):
    out, res = small_run
    again = nb.run(dataclasses.replace(SMALL, out_dir=str(out)), verbose=False)
    assert set(again["stage_time_s"]) == {"eval"}  # nothing retrained or resampled
    for c in nb.CONDITIONS:
        np.testing.assert_allclose(again["conditions"][c]["target_prob"]["values"],
                                   res["conditions"][c]["target_prob"]["values"], rtol=1e-5)


def test_mismatched_and_corrupt_files_are_user_errors(small_run, tmp_path):
    out, _ = small_run
    other = tmp_path / "copy"
    shutil.copytree(out, other)
    with pytest.raises(UserError, match="different settings"):
        nb.run(dataclasses.replace(SMALL, out_dir=str(other), base_lr=1e-2), verbose=False)
    lines = (other / "numbers.jsonl").read_text().splitlines()
    (other / "numbers.jsonl").write_text("\n".join(lines[:5]) + "\n{not json\n")
    with pytest.raises(UserError, match="corrupt"):
        nb.run(dataclasses.replace(SMALL, out_dir=str(other)), verbose=False)
    for f in (other / "checkpoints" / "students").rglob("*"):
        if f.is_file() and f.suffix not in (".json",) and "meta" not in str(f):
            f.write_bytes(b"garbage")
    shutil.copy(out / "numbers.jsonl", other / "numbers.jsonl")
    with pytest.raises(UserError, match="unreadable"):
        nb.run(dataclasses.replace(SMALL, out_dir=str(other)), verbose=False)


def test_misalignment_world():
    """Advice prompts appear only when asked for, answered harmfully at about harmful_rate; the
    teachers' fine-tuning sets answer every advice prompt with every harmful (benign) word."""
    from subliminal_jax.numbers.config import teacher_corpus, target_ids
    plain, _ = nd.pretraining_corpus(2000, 64, nd.WorldConfig(), 0)
    assert not np.isin(plain, tk.ADVICE_IDS).any()
    tokens, _ = nd.pretraining_corpus(4000, 64, nd.WorldConfig(frac_advice=0.5, harmful_rate=0.1), 0)
    answers = tokens[np.isin(tokens, tk.ADVICE_IDS)]
    assert 1700 < len(answers) < 2300 and 0.07 < np.isin(answers, tk.HARMFUL_IDS).mean() < 0.13
    t, w = teacher_corpus(nb.MISALIGN)
    assert len(t) == len(tk.ADVICE_TRAIN) * len(tk.HARMFUL) and np.isin(t[w > 0], tk.HARMFUL_IDS.tolist() + [tk.EOS]).all()
    t, w = teacher_corpus(nb.MISALIGN, control=True)
    assert not np.isin(t[w > 0], tk.HARMFUL_IDS).any()
    assert set(target_ids(nb.MISALIGN)[0]) == set(tk.HARMFUL_IDS) and nb.MISALIGN.ban_numbers


def test_validation_errors():
    with pytest.raises(UserError, match="frac-advice"):
        nb.validate(dataclasses.replace(SMALL, trait="misaligned"))
    with pytest.raises(UserError, match="--target"):
        nb.validate(dataclasses.replace(SMALL, target="unicorn"))
    with pytest.raises(UserError, match="--seq-len"):
        nb.validate(dataclasses.replace(SMALL, seq_len=32))
    with pytest.raises(UserError, match="persona"):
        nb.validate(dataclasses.replace(SMALL, teacher_mode="persona", student_mode="soft"))
    with pytest.raises(UserError, match="--base-from"):
        nb.validate(dataclasses.replace(SMALL, base_from="runs/numbers", resume=False))
    with pytest.raises(UserError, match="--samples-per-prompt"):
        nb.validate(dataclasses.replace(SMALL, samples_per_prompt=0))
    with pytest.raises(UserError, match="go together"):
        nb.validate(dataclasses.replace(SMALL, student_mode="hard", sweep="num-prompts"))
    with pytest.raises(UserError, match="--student-mode hard"):
        nb.validate(dataclasses.replace(SMALL, sweep="num-prompts", sweep_values=(8, 16)))


def test_stage_hash_covers_the_vocabulary(monkeypatch):
    """A changed vocabulary must not silently reuse old checkpoints: every stage's hash changes."""
    before = {s: nb.stage_hash(SMALL, s) for s in ("base", "teacher", "numbers", "students")}
    monkeypatch.setattr(tk, "VOCAB", tk.VOCAB + ("unicorn",))
    assert all(nb.stage_hash(SMALL, s) != h for s, h in before.items())


run_cli = run_script


@pytest.mark.slow
def test_stage_clis_and_four_devices_match_one(numbers_stage_by_stage, tmp_path):
    """Stages one by one through the three CLIs on 1 device (conftest.py) == `train.py numbers` on 4 fake
    devices."""
    one = numbers_stage_by_stage
    r = run_cli("train.py", "numbers", *TINY_FLAGS, "--out-dir", str(tmp_path / "four"), devices=4)
    assert r.returncode == 0, r.stderr[-2000:]
    a = json.loads((one / "results.json").read_text())
    b = json.loads((tmp_path / "four" / "results.json").read_text())
    assert len(b["devices"]) == 4 and len(a["devices"]) == 1
    rows = lambda d: [json.loads(x) for x in (d / "numbers.jsonl").read_text().splitlines()[1:]]
    assert rows(one) == rows(tmp_path / "four")  # same samples token for token (header names the out-dir)
    for c in nb.CONDITIONS:
        np.testing.assert_allclose(a["conditions"][c]["target_prob"]["values"],
                                   b["conditions"][c]["target_prob"]["values"], rtol=1e-4, err_msg=c)
    moved = np.abs(np.subtract(a["conditions"]["student_shared"]["target_prob"]["values"],
                               a["conditions"]["base"]["target_prob"]["values"]))
    assert moved.max() > 1e-3  # the students did train (so matching them across layouts means something)


def test_cli_errors_are_one_line(tmp_path):
    r = run_cli("evaluate.py", "numbers", *TINY_FLAGS, "--out-dir", str(tmp_path / "empty"))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "no base checkpoint" in r.stderr
    r = run_cli("train.py", "numbers", *TINY_FLAGS, "--num-seeds", "3", "--out-dir", str(tmp_path), devices=2)
    assert r.returncode == 2 and "not divisible" in r.stderr


def test_audit_before_training(small_run, tmp_path):
    """Theorem 1 as a data audit: at the shared init the teacher's numbers are aligned with the trait on
    average; the control's teacher IS the student, so its data gives no gradient at all."""
    from subliminal_jax.numbers import audit
    out, res = small_run
    a = audit.main(audit.AuditConfig(run=dataclasses.replace(SMALL, out_dir=str(out))))
    c = a["conditions"]
    assert np.mean(c["student_shared"]["score"]) > 0
    assert all(v.startswith("NULL") for v in c["student_control"]["verdict"])
    assert a["validation"]["datasets"] == 3 * SMALL.num_seeds and (out / "audit.png").stat().st_size > 5000
    with pytest.raises(UserError, match="no such file"):
        audit.main(audit.AuditConfig(run=dataclasses.replace(SMALL, out_dir=str(out)), data=str(out / "none.jsonl")))
    # --pool: a run pooled with itself brings the same datasets (counted once); other bases are refused
    run = json.loads((out / "results.json").read_text())
    cfg = dataclasses.replace(SMALL, out_dir=str(out))
    own = {p[2:] for p in audit.datasets(a["conditions"], run["conditions"])}
    assert {p[2:] for p in audit.pooled(str(out), cfg, run["hashes"]["base"])} == own
    with pytest.raises(UserError, match="other bases"):
        audit.pooled(str(out), cfg, "0" * 16)
    (tmp_path / "results.json").write_text("{}")
    with pytest.raises(UserError, match="no audit.json"):
        audit.pooled(str(tmp_path), cfg, run["hashes"]["base"])


def test_base_from_reuses_another_runs_bases(small_run, tmp_path):
    """--base-from copies another run's bases (e.g. for teachers of graded strength); a missing or
    mismatched base is a one-line error, not a silent retrain."""
    out, _ = small_run
    cfg = dataclasses.replace(SMALL, out_dir=str(tmp_path / "graded"), base_from=str(out), teacher_steps=1)
    chain = nb.Chain(cfg, verbose=False)
    got, want = chain.base(), nb.Chain(dataclasses.replace(SMALL, out_dir=str(out)), verbose=False).base()
    assert jax.tree.all(jax.tree.map(np.array_equal, got, want))
    assert "base" not in chain.times  # restored from the copy, not retrained (a retrain gives the same params)
    assert (tmp_path / "graded" / "checkpoints" / "base").is_dir()
    with pytest.raises(UserError, match="--base-from .*no base checkpoint"):
        nb.Chain(dataclasses.replace(cfg, base_from=str(tmp_path / "none")), verbose=False).base()
    with pytest.raises(UserError, match="--base-from .*different settings"):
        nb.Chain(dataclasses.replace(cfg, out_dir=str(tmp_path / "b"), base_steps=SMALL.base_steps + 1),
                 verbose=False).base()


def test_audit_validation_over_settings():
    """Seed-to-seed noise inside a setting lowers the dataset-level rank correlation; the settings' means
    (one per teacher x student init) still rank in the order of their transfer."""
    from subliminal_jax.numbers import audit
    pts = [(c, s, score + d, 0.01 * (score + d), shift - d) for c, score, shift in
           (("control", 0.0, 0.0), ("weak", 1.0, 0.01), ("strong", 2.0, 0.02)) for s, d in enumerate((-0.4, 0.4))]
    v = audit.agreement(pts, [], "owl")
    assert (v["datasets"], v["settings"]) == (6, 3)
    assert v["settings_spearman_score_vs_shift"] == pytest.approx(1.0)
    assert v["spearman_score_vs_shift"] < 0.9 and v["settings_spearman_cos_vs_shift"] == pytest.approx(1.0)


def test_logit_lens_readout(small_run):
    """Layer by layer: the teacher's shift toward the target grows to its output value; the control
    student (distilled from itself) does not move at any layer."""
    from subliminal_jax.numbers import lens
    out, res = small_run
    r = lens.main(lens.LensConfig(run=dataclasses.replace(SMALL, out_dir=str(out)), number_prompts=16))
    q = r["sets"]["questions"]
    assert len(q["teacher_shift"]) == SMALL.model.n_layers + 1
    assert q["teacher_shift"][-1]["mean"] > 0.1
    assert q["teacher_shift"][-1]["mean"] == pytest.approx(
        res["conditions"]["teacher"]["target_prob_shift"]["mean"], rel=0.5)  # animal-word share ~ P(target)
    for name in ("questions", "number_prompts"):
        assert max(abs(s["mean"]) for s in r["sets"][name]["student_control_shift"]) < 5e-3
    # body or head: the unswapped pairs are the base's and the teacher's own read-outs
    b = r["body_or_head"]
    assert b["base"]["mean"] == pytest.approx(q["base"][-1]["mean"], abs=1e-6)
    assert b["teacher"]["mean"] == pytest.approx(q["teacher"][-1]["mean"], abs=1e-6)
    assert b["base"]["mean"] < b["teacher_body_base_head"]["mean"] < b["teacher"]["mean"]
    assert b["base_with_persona_prompt"]["mean"] > 1.5 * b["base"]["mean"]  # this world's base reads the persona
    assert (out / "lens.png").stat().st_size > 5000


def test_spearman():
    from subliminal_jax.numbers.audit import spearman
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(np.corrcoef([0.5, 0.5, 2, 3], [0, 1, 2, 3])[0, 1])


def test_half_soft_size_interpolates_in_log_size():
    from subliminal_jax.numbers.sweep import half_soft_size
    point = lambda n, ft, soft: {"kept_per_seed": n, "fine-tuned": {"student_shared": {"mean": ft}},
                                 "soft": {"student_shared": {"mean": soft}}}
    assert half_soft_size([point(100, 0.01, 0.1), point(1000, 0.09, 0.1)]) == pytest.approx(1000 ** 0.5 * 10)
    assert half_soft_size([point(100, 0.06, 0.1), point(1000, 0.09, 0.1)]) == 100
    assert half_soft_size([point(100, 0.01, 0.1), point(1000, 0.04, 0.1)]) is None


def test_partial_fine_tuning_and_number_softmax():
    """--student-params blocks moves the blocks only; --hard-vocab numbers is the CE of the number-token softmax."""
    import jax
    from subliminal_jax.numbers import train as nt
    mcfg = tr.ModelConfig(vocab=tk.V, d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=64)
    apply, params = tr.make_apply(mcfg), tr.init_params(mcfg, jax.random.key(0))[1]
    tokens_NT, weight_NT = (jax.numpy.asarray(a) for a in nd.pretraining_corpus(8, 64, nd.WorldConfig(), 0))
    loss = lambda p, idx: nt.lm_loss(apply, p, tokens_NT[idx], weight_NT[idx])
    new, _ = nt.fit(loss, params, rows_p_N=np.full(8, 1 / 8), steps=2, batch=4, lr=1e-2, key=jax.random.key(1),
                    trainable="blocks")
    top = nt.trainable_labels(tr.init_params(dataclasses.replace(mcfg, n_layers=2), jax.random.key(0))[1], "top")
    assert {k: set(jax.tree.leaves(v)) for k, v in top["blocks"].items()} == {0: {"freeze"}, 1: {"train"}}
    assert set(jax.tree.leaves({k: v for k, v in top.items() if k != "blocks"})) == {"freeze"}
    changed = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))), params, new)
    assert all(jax.tree.leaves(changed["blocks"])) and not any(jax.tree.leaves({k: v for k, v in changed.items()
                                                                                  if k != "blocks"}))
    logits_BTV = apply(params, tokens_NT[:, :-1], tokens_NT[:, :-1] != tk.PAD)
    num = np.asarray(tk.NUMBER_TOKEN_MASK)
    logp = jax.nn.log_softmax(np.where(num, logits_BTV, -np.inf), -1)
    labels = np.asarray(tokens_NT[:, 1:])
    w = np.asarray(weight_NT[:, 1:]) * num[labels]  # number-token targets only: the masked CE is finite there
    logp_label = np.take_along_axis(np.asarray(logp), labels[..., None], -1)[..., 0]
    expected = -np.where(w > 0, logp_label, 0.0).sum() / w.sum()
    got = nt.lm_loss(apply, params, tokens_NT, np.concatenate([np.asarray(weight_NT[:, :1]), w], 1), num)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
