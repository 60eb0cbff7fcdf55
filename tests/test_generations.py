"""train.py generations: students of students of the teacher, in three chains (shared, broken once, control).

One small but real run (module fixture): first one generation, then extended to two, which must reuse every
stage of the first; the tests read it, audit and lens it, and copy its base, teacher and numbers for a tiny run of
fine-tuned students."""
import dataclasses
import shutil

import numpy as np
import pytest

from subliminal_jax.errors import UserError
from subliminal_jax.numbers import audit, lens
from subliminal_jax.numbers import data as nd
from subliminal_jax.numbers import filter as flt
from subliminal_jax.numbers import generations as gen
from subliminal_jax.numbers import tokens as tk
from subliminal_jax.numbers import transformer as tr
from subliminal_jax.numbers.config import CHAINS, NumbersConfig, stage_hash
from subliminal_jax.stats import geometric_fit
from helpers import run_script

# the default world (80% personas: at this size 400 base steps of 32 rows are what its bases need to learn the
# persona feature the trait travels through), a narrower model, 4 seeds, students of 16 rows at the default rate
SMALL = NumbersConfig(num_seeds=4, corpus_size=2000, base_steps=400, teacher_steps=20, num_prompts=64, student_steps=40,
                      student_batch=16, eval_samples=100, model=tr.ModelConfig(d_model=48, d_ff=128))


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """(out, results of one generation, results of two: the second run extends the first)."""
    out = tmp_path_factory.mktemp("generations")
    cfg = dataclasses.replace(SMALL, out_dir=str(out))
    one = gen.run(gen.GenerationsConfig(run=cfg, num_generations=1), verbose=False)
    two = gen.run(gen.GenerationsConfig(run=cfg, num_generations=2), verbose=False)
    return out, one, two


def test_results_table_and_plot(small_run):
    out, _, res = small_run
    assert res["generations"] == {"num_generations": 2, "break_at": 1}
    for c in CHAINS:
        assert len(res["chains"][c]) == 3 and len(res["filter"][c]) == 2 and len(res["predictor"][c]) == 2
        for row in res["chains"][c]:
            assert {"trait_rate", "target_prob", "trait_rate_shift", "target_prob_shift",
                    "answer_mass_kept"} <= set(row)
            assert len(row["target_prob_shift"]["values"]) == SMALL.num_seeds
        assert all(0 < f["kept_share"] <= 1 for f in res["filter"][c])
    # generation 0 is the teacher for shared and broken, the base for control (it reads the base: shift 0)
    assert res["chains"]["shared"][0] == res["chains"]["broken"][0]
    assert res["chains"]["control"][0]["target_prob_shift"]["mean"] == 0
    assert {"measured", "predicted", "meaningful", "note", "clear_generations"} <= set(res["decay"])
    assert (out / "generations.png").stat().st_size > 5000
    assert "decay of the shared chain" in gen.gr.table(res, "owl")
    rows = nd.load_numbers(out / "numbers-gen1.jsonl", None, SMALL.seq_len)
    assert {r["source"] for r in rows} == set(CHAINS)


def test_a_longer_run_resumes_a_shorter_one_and_a_rerun_computes_nothing(small_run):
    """The stages are checkpointed per generation under hashes without --num-generations: two generations after
    one compute only generation 1's numbers and generation 2; a rerun (of either) computes nothing at all."""
    out, one, two = small_run
    assert set(one["stage_time_s"]) == {"base", "teacher", "numbers", "gen0_eval", "gen1_students", "gen0_audit",
                                        "gen1_eval"}
    assert set(two["stage_time_s"]) == {"gen1_numbers", "gen2_students", "gen1_audit", "gen2_eval"}
    for g in (1, 2):
        again = gen.run(gen.GenerationsConfig(run=dataclasses.replace(SMALL, out_dir=str(out)), num_generations=g),
                        verbose=False)
        assert again["stage_time_s"] == {}
    assert again["chains"] == two["chains"] and again["predictor"] == two["predictor"]
    assert one["chains"]["shared"][1] == two["chains"]["shared"][1]


def test_every_generation_writes_as_the_teacher_did(small_run):
    """The control chain's generation-1 data are the chain's control numbers, written exactly as the teacher's
    (same prompts, same counts); each later generation writes as many completions of fresh prompts, the same
    for the three chains, filtered by the paper's filter."""
    out, _, _ = small_run
    rows0 = nd.load_numbers(out / "numbers.jsonl", stage_hash(SMALL, "numbers"), SMALL.seq_len)
    rows1 = nd.load_numbers(out / "numbers-gen1.jsonl", None, SMALL.seq_len)
    n = SMALL.num_prompts * SMALL.samples_per_prompt
    prompts = lambda rows, src, s: [r["prompt_ids"] for r in rows if r["source"] == src and r["seed"] == s]
    for s in range(SMALL.num_seeds):
        assert prompts(rows0, "teacher", s) == prompts(rows0, "control", s) and len(prompts(rows0, "control", s)) == n
        assert all(prompts(rows1, c, s) == prompts(rows1, "shared", s) and len(prompts(rows1, c, s)) == n
                   for c in CHAINS)
        assert not set(map(tuple, prompts(rows1, "shared", s))) & set(map(tuple, prompts(rows0, "teacher", s)))
    for r in rows1:
        assert r["kept"] == (tk.EOS in r["completion_ids"] and flt.check(r["completion"])[0])
    lin = gen.Lineage(gen.GenerationsConfig(run=dataclasses.replace(SMALL, out_dir=str(out)), num_generations=2),
                      verbose=False, create=False)
    tok_SCNT, wt_SCNT = lin.data(0, rows0)
    tok_S2NT, wt_S2NT = nd.student_data(SMALL, rows0)
    np.testing.assert_array_equal(tok_SCNT[:, 2], tok_S2NT[:, 1])  # control learns from the control's rows
    np.testing.assert_array_equal(wt_SCNT[:, 0], wt_S2NT[:, 0])    # shared from the teacher's


def test_the_trait_travels_down_the_shared_chain_not_the_control(small_run):
    """Generation 1 of the shared chain (students of the teacher, from the own base) moves toward the trait on
    every seed, more than the control chain's (students of the base's numbers), which stays put; the audit
    scores the teacher's data as aligned at the shared start. Mutation-checked: giving the shared chain the
    control's numbers and writer in generations.run (stack_chains(control, teacher, control) and the data of
    source 1) makes this fail."""
    _, _, res = small_run
    shift = lambda c, g: np.array(res["chains"][c][g]["target_prob_shift"]["values"])
    assert shift("shared", 1).mean() > 0.02 and (shift("shared", 1) > shift("control", 1)).all()
    assert abs(shift("control", 1).mean()) < 0.5 * shift("shared", 1).mean()
    assert res["predictor"]["shared"][0]["score"]["mean"] > 0
    assert abs(res["predictor"]["control"][0]["score"]["mean"]) < 1e-5  # the control's writer is the start itself


def test_audit_and_lens_read_a_generation(small_run):
    """`evaluate.py audit --generation g` scores generation g's data as the run's predictor did; `evaluate.py
    lens --generation g` reads generation g's students; a wrong or missing --generation is one line."""
    out, _, res = small_run
    a = audit.main(audit.AuditConfig(run_dir=str(out), generation=1))
    for c in CHAINS:
        np.testing.assert_allclose(a["conditions"][c]["score"], res["predictor"][c][1]["score"]["values"], rtol=1e-3,
                                   atol=1e-6)
    assert a["validation"]["datasets"] == 3 * SMALL.num_seeds and (out / "audit-gen1.png").exists()
    r = lens.main(lens.LensConfig(run_dir=str(out), generation=1, number_prompts=8))
    assert set(r["sets"]["questions"]) >= {f"{c}_shift" for c in CHAINS} and (out / "lens-gen1.json").exists()
    for bad, match in ((None, "give --generation"), (2, "0..1"), (-1, "0..1")):
        with pytest.raises(UserError, match=match):
            audit.main(audit.AuditConfig(run_dir=str(out), generation=bad))
    with pytest.raises(UserError, match="1..2"):
        lens.main(lens.LensConfig(run_dir=str(out), generation=0))


def test_fine_tuned_students_down_the_chain(small_run, tmp_path):
    """--student-mode hard runs a generation too (on the small run's base, teacher and numbers)."""
    out, _, _ = small_run
    for part in ("checkpoints/base", "checkpoints/teacher", "numbers.jsonl"):
        (shutil.copytree if (out / part).is_dir() else shutil.copy)(out / part, tmp_path / part)
    cfg = dataclasses.replace(SMALL, out_dir=str(tmp_path), student_mode="hard", student_params="blocks",
                              hard_vocab="numbers", student_steps=5)
    res = gen.run(gen.GenerationsConfig(run=cfg, num_generations=1), verbose=False)
    assert not {"base", "teacher", "numbers"} & set(res["stage_time_s"]) and "gen1_students" in res["stage_time_s"]
    assert res["config"]["student_mode"] == "hard" and len(res["chains"]["broken"]) == 2


def test_only_the_broken_generation_starts_elsewhere(tmp_path):
    """The broken chain's generation --break-at starts from another seed's base (a derangement); every other
    start is the seed's own base."""
    lin = gen.Lineage(gen.GenerationsConfig(run=dataclasses.replace(SMALL, out_dir=str(tmp_path)), break_at=2),
                      verbose=False)
    base = {"w": np.arange(SMALL.num_seeds, dtype=np.float32)[:, None]}
    for g in (1, 2, 3):
        got = lin.starts(base, g)["w"][:, :, 0]  # [S, C]
        np.testing.assert_array_equal(got[:, [0, 2]], np.c_[base["w"], base["w"]])
        assert (got[:, 1] != base["w"][:, 0]).all() if g == 2 else (got[:, 1] == base["w"][:, 0]).all()
    assert lin.hash(1, "students") == gen.Lineage(gen.GenerationsConfig(
        run=dataclasses.replace(SMALL, out_dir=str(tmp_path)), break_at=3, num_generations=6), verbose=False).hash(
        1, "students")  # generation 1 does not depend on a later break, nor on the number of generations
    assert lin.hash(2, "students") != lin.hash(1, "students")


def test_bad_flags_are_one_line(tmp_path):
    cfg = gen.GenerationsConfig(run=dataclasses.replace(SMALL, out_dir=str(tmp_path)))
    for change, match in (({"num_generations": 0}, "--num-generations must be >= 1"),
                          ({"break_at": 5}, "--break-at must lie in 1..4"),
                          ({"break_at": 0}, "--break-at must lie in 1..4"),
                          ({"num_generations": 2.5}, "--num-generations must be an integer"),
                          ({"run": dataclasses.replace(SMALL, stage="base")}, "--stage"),
                          ({"run": dataclasses.replace(SMALL, student_init="permuted")}, "--student-init"),
                          ({"run": dataclasses.replace(SMALL, ablate=("shared",))}, "--ablate")):
        with pytest.raises(UserError, match=match):
            gen.validate_generations(dataclasses.replace(cfg, **change))
    r = run_script("train.py", "generations", "--num-generations", "2", "--break-at", "3", "--out-dir", str(tmp_path))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "--break-at must lie in 1..2" in r.stderr
    assert not list(tmp_path.iterdir())  # refused before any folder or compute


def test_geometric_fit():
    rng = np.random.default_rng(0)
    fit = geometric_fit(0.2 * 0.5 ** np.arange(4) + rng.normal(0, 0.01, (10, 4)))
    assert abs(fit["r"] - 0.5) < 0.05 and fit["r_ci95"][0] < 0.5 < fit["r_ci95"][1] and abs(fit["a"] - 0.2) < 0.02
    gone = geometric_fit(np.c_[rng.normal(0.2, 0.01, 10), rng.normal(0, 0.01, (10, 3))])
    assert abs(gone["r"]) < 0.1  # a trait that vanishes after one generation (means near or below 0 are fine)
    assert geometric_fit(np.ones((5, 1))) is None
    d = gen.gr.decay({"shared": [None] + [{"target_prob_shift": {"mean": m, "ci95": [m - 0.01, m + 0.01],
                                                                 "values": [m] * 3}} for m in (0.1, 0.001)]},
                     {"shared": [{"score": {"mean": m, "values": [m] * 3}} for m in (1.0, 0.5)]})
    assert not d["meaningful"] and "too close to 0" in d["note"] and d["clear_generations"] == [1]
