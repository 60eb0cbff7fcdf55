"""Bad inputs, table-driven through the CLIs (in process, as `python train.py ...` runs them): each exits 2 with
one line on stderr; silently damaged files (a flipped checkpoint byte, an edited numbers.jsonl row) are caught.

Mutation-checked: with the digest checks in checkpoint.restore and numbers.data.load_numbers disabled, the two
silent-corruption tests fail (the runs reuse the damaged files and exit 0)."""
import dataclasses
import json
import math
import os
import runpy

import pytest

from subliminal_jax import cli, report
from subliminal_jax.numbers import experiment as nb
from subliminal_jax.numbers import transformer as tr
from subliminal_jax.numbers.audit import output_name
from subliminal_jax.errors import UserError
from helpers import ROOT
from test_data import make_dir

COMMANDS = {s: runpy.run_path(str(ROOT / s))["COMMANDS"] for s in ("train.py", "generate.py", "evaluate.py")}

# A chain small enough to build in seconds (its numbers are meaningless; only the files matter here).
TINY = dict(num_seeds=2, corpus_size=64, base_steps=2, teacher_steps=1, num_prompts=4, student_steps=1,
            eval_samples=4, batch=8)
TINY_MODEL = dict(d_model=16, n_heads=2, n_layers=1, d_ff=32)  # flags --d-model ... (NumbersConfig.model)
FLAGS = [x for k, v in {**TINY, **TINY_MODEL}.items() for x in (f"--{k.replace('_', '-')}", str(v))]
RUN_FLAGS = [f"--run.{f[2:]}" if f.startswith("--") else f for f in FLAGS]


def cli_error(capsys, script: str, *argv: str) -> str:
    """stderr of a CLI call that must exit 2 with one line (an uncaught exception fails the test instead)."""
    with pytest.raises(SystemExit) as e:
        cli.main(COMMANDS[script], "", list(argv))
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    return err


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """base, teacher and numbers.jsonl of the TINY chain."""
    out = tmp_path_factory.mktemp("tiny")
    chain = nb.Chain(nb.NumbersConfig(**TINY, model=tr.ModelConfig(**TINY_MODEL), out_dir=str(out)), verbose=False)
    base = chain.base()
    chain.numbers(base, chain.teacher(base))
    return out


def jsonl(path, rows):
    """A numbers.jsonl written by hand (no digest: a file from elsewhere)."""
    row = {"seed": 0, "source": "teacher", "i": 0, "j": 0, "prompt_ids": [1, 2], "completion_ids": [3, 2],
           "kept": True, "reason": "", "hash": ""}
    path.write_text("\n".join(json.dumps(x) for x in [{"header": {}}] + [{**row, **r} for r in rows]) + "\n")
    return str(path)


CASES = [  # (id, script, argv given tmp folder t, needle)
    ("nan-lr", "train.py", lambda t: ["numbers", *FLAGS, "--base-lr", "nan"], "learning rates must be finite"),
    ("inf-lr", "train.py", lambda t: ["numbers", *FLAGS, "--teacher-lr", "inf"], "learning rates must be finite"),
    ("negative-lr", "train.py", lambda t: ["numbers", *FLAGS, "--student-lr=-1"], "learning rates must be finite"),
    ("nan-temperature", "generate.py", lambda t: ["numbers", *FLAGS, "--temperature", "nan"], "--temperature"),
    ("negative-seed", "train.py", lambda t: ["numbers", *FLAGS, "--seed=-1"], "--seed must be >= 0"),
    ("negative-devices", "train.py", lambda t: ["numbers", *FLAGS, "--num-devices=-1"], "--num-devices must be >= 1"),
    ("batch-above-corpus", "train.py", lambda t: ["numbers", *FLAGS[:-2], "--batch", "65"], "larger than --corpus-size"),
    ("ablate-unknown-part", "train.py", lambda t: ["numbers", *FLAGS, "--ablate", "shared", "blocks.1.mlp=random"],
     "--ablate 'blocks.1.mlp=random': --student-init 'blocks.1.mlp=random'"),
    ("ablate-bad-lambda", "train.py", lambda t: ["numbers", *FLAGS, "--ablate", "lambda=half"], "lambda=X needs"),
    ("ablate-with-init", "train.py", lambda t: ["numbers", *FLAGS, "--ablate", "shared", "--init-lambda", "0.1"],
     "gives each row its own student init"),
    ("mnist-nan-lr", "train.py", lambda t: ["mnist", "--teacher-lr", "nan"], "learning rates must be finite"),
    ("mnist-fractional-sweep", "train.py", lambda t: ["mnist", "--sweep", "m", "--sweep-values", "2", "2.5"],
     "whole numbers"),
    ("mnist-batch-above-noise", "train.py", lambda t: ["mnist", "--student-batch", "30000"], "--num-noise"),
    ("mnist-batch-above-data", "train.py", lambda t: ["mnist", "--dataset", "mnist-5k", "--teacher-batch", "99999",
                                                      "--out-dir", str(t / "out")], "training images"),
    ("idx-without-images", "train.py", lambda t: ["mnist", "--data-dir", str(make_dir(t, n_train=0) and t),
                                                  "--out-dir", str(t / "out")], "no images"),
    ("generations-none", "train.py", lambda t: ["generations", *FLAGS, "--num-generations", "0"],
     "--num-generations must be >= 1"),
    ("generations-break-late", "train.py", lambda t: ["generations", *FLAGS, "--num-generations", "2", "--break-at",
                                                      "3"], "--break-at must lie in 1..2"),
    ("generations-stage", "train.py", lambda t: ["generations", *FLAGS, "--stage", "base"], "--stage"),
    ("audit-generation-of-numbers-run", "evaluate.py",
     lambda t: (t / "results.json").write_text(json.dumps({"config": dataclasses.asdict(nb.NumbersConfig())}))
     and ["audit", "--run-dir", str(t), "--generation", "0"], "not a `train.py generations` run"),
    ("theorem-nan-alpha", "evaluate.py", lambda t: ["theorem", "--alpha", "nan"], "--alpha must be finite"),
    ("lens-no-prompts", "evaluate.py", lambda t: ["lens", "--number-prompts", "0"], "--number-prompts"),
    ("audit-missing-run", "evaluate.py", lambda t: ["audit", "--run.out-dir", str(t / "out")], "no base checkpoint"),
    ("results-wrong-types", "evaluate.py",
     lambda t: (t / "results.json").write_text(json.dumps({"config": {**dataclasses.asdict(nb.NumbersConfig()),
                                                                      "num_seeds": "four"}}))
     and ["audit", "--run-dir", str(t)], "--num-seeds must be an integer"),
]


@pytest.mark.parametrize("script,argv,needle", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line(capsys, tmp_path, script, argv, needle):
    args = argv(tmp_path)
    out = [] if "--out-dir" in args or script == "evaluate.py" else ["--out-dir", str(tmp_path / "out")]
    assert needle in cli_error(capsys, script, *args, *out)
    assert not (tmp_path / "out").exists()  # refused before --out-dir was created


AUDIT_DATA = [  # (id, --data given tmp folder t, needle): another dataset audited against the tiny run
    ("directory", lambda t: str(t), "cannot read"),
    ("not-utf8", lambda t: (t / "x.jsonl").write_bytes(b"\xff\xfe{}\n") and str(t / "x.jsonl"), "corrupt"),
    ("id-outside-vocab", lambda t: jsonl(t / "x.jsonl", [{"completion_ids": [3, 10_000]}]), "outside the vocabulary"),
    ("longer-than-context", lambda t: jsonl(t / "x.jsonl", [{"prompt_ids": [1] * 80}]), "longer than the model's"),
    ("wrong-type", lambda t: jsonl(t / "x.jsonl", [{"kept": "yes"}]), "wrong type"),
]


@pytest.mark.parametrize("data,needle", [c[1:] for c in AUDIT_DATA], ids=[c[0] for c in AUDIT_DATA])
def test_bad_audit_data_is_one_line(capsys, tmp_path, tiny_run, data, needle):
    assert needle in cli_error(capsys, "evaluate.py", "audit", *RUN_FLAGS, "--run.out-dir", str(tiny_run),
                               "--data", data(tmp_path))


def base_array_file(run):
    params = run / "checkpoints" / "base" / "0" / "params"
    return max((p for p in params.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)  # the array data


def flip_middle_byte(b: bytes) -> bytes:
    return b[:len(b) // 2] + bytes([b[len(b) // 2] ^ 1]) + b[len(b) // 2 + 1:]


def mark_first_row_kept(b: bytes) -> bytes:  # the header (and its settings hash) untouched
    header, first, rest = b.split(b"\n", 2)
    return b"\n".join([header, json.dumps({**json.loads(first), "kept": True}).encode(), rest])


SILENT = [  # (id, damaged file of the tiny run, damage, what the one line must say)
    ("checkpoint-byte", base_array_file, flip_middle_byte, ("checkpoints/base", "sha256", "delete that folder")),
    ("numbers-row", lambda run: run / "numbers.jsonl", mark_first_row_kept, ("numbers.jsonl", "sha256", "delete it")),
]


@pytest.mark.parametrize("target,damage,needles", [c[1:] for c in SILENT], ids=[c[0] for c in SILENT])
def test_silent_corruption_is_caught(capsys, tiny_run, target, damage, needles):
    """Without the digests both runs reuse the damaged file and exit 0 (see the module docstring)."""
    f = target(tiny_run)
    good = f.read_bytes()
    f.write_bytes(damage(good))
    try:
        err = cli_error(capsys, "generate.py", "numbers", *FLAGS, "--out-dir", str(tiny_run))
    finally:
        f.write_bytes(good)
    assert all(n in err for n in needles), err


def test_results_are_checked_and_written_whole(tmp_path, monkeypatch):
    """NaN/inf: nothing written, the field named; a failed write: one line, no file left; umask permissions."""
    with pytest.raises(UserError, match=r"conditions\.teacher\.mean is not finite"):
        report.write_json(tmp_path / "results.json", {"conditions": {"teacher": {"mean": math.nan}}})
    report.write_json(tmp_path / "ok.json", {"a": [1.0]})
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "ok.json").stat().st_mode & 0o777 == 0o666 & ~umask
    monkeypatch.setattr(report.os, "replace", lambda *a: (_ for _ in ()).throw(OSError(28, "No space left")))
    with pytest.raises(UserError, match="cannot write .*results.json.*No space left"):
        report.write_json(tmp_path / "results.json", {"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.json"]


def test_audit_of_another_dataset_keeps_the_runs_own(tmp_path):
    own = tmp_path / "run" / "numbers.jsonl"
    assert output_name(own, own) == "audit"
    assert output_name(tmp_path / "weak" / "numbers.jsonl", own) == "audit-weak-numbers"
