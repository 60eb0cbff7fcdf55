"""Progress lines from inside compiled loops: same numbers with and without, one line per report, quiet runs."""
import dataclasses
import re
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from subliminal_jax import progress, training
from subliminal_jax.mnist import data
from subliminal_jax.mnist import experiment as mnist
from subliminal_jax.numbers import chain as nc
from subliminal_jax.numbers import transformer as tr
from test_mnist import TINY, small
from test_numbers import SMALL
from helpers import ROOT

LINE = re.compile(r"\[(.+)\] step (\d+)/(\d+), loss (\S+) \(mean of (\d+) models\), \d+ s elapsed, ~\S+ \S+ left")


def tiny_train(steps=300):
    """4 least-squares models vmapped: the training loop's scan with a batched carry and an unbatched step index."""
    x_ND = jax.random.normal(jax.random.key(1), (64, 8))
    y_N = x_ND @ jnp.arange(8.0)

    def one(key):
        loss = lambda w_D, idx_B: jnp.mean((x_ND[idx_B] @ w_D - y_N[idx_B]) ** 2)
        return training.train(loss, jax.random.normal(key, (8,)), training.optimizer("adam", 1e-2),
                              training.sampled_rows(key, jnp.full(64, 1 / 64), 8, steps))
    return jax.vmap(one), jax.random.split(jax.random.key(0), 4)


def test_training_is_bit_identical_with_progress_and_reports_the_mean_loss():
    fn, keys_S = tiny_train()
    quiet = jax.device_get(jax.jit(fn)(keys_S))
    fn, _ = tiny_train()  # a new function object: jit would reuse the quiet trace of the old one
    lines = []
    with progress.stage("t", every_s=0.0, out=lambda line, **_: lines.append(line)):
        # the report's branch stays a cond under vmap (a select would run the callback every step)
        assert str(jax.make_jaxpr(fn)(keys_S)).count("cond[") == 1
        params_S, loss_SU = progress.interruptible(jax.jit(fn), keys_S)
    assert not progress.active()
    np.testing.assert_array_equal(params_S, quiet[0])
    np.testing.assert_array_equal(loss_SU, quiet[1])
    got = [LINE.fullmatch(line).groups() for line in lines]
    # every 300 // REPORTS = 3 steps; the first report anchors the rate, the last is never superseded
    assert [int(g[1]) for g in got] == list(range(6, 298, 3))
    for name, step, total, loss, models in got:
        assert (name, total, models) == ("t", "300", "4")
        np.testing.assert_allclose(float(loss), loss_SU[:, int(step) - 1].mean(), rtol=1e-3)


def test_quiet_runs_compile_no_callback():
    fn, keys_S = tiny_train()
    with progress.stage("t", enabled=False):
        assert not progress.active() and "cond[" not in str(jax.make_jaxpr(fn)(keys_S))


def test_chain_stage_prints_progress(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(progress, "EVERY_S", 0.0)
    cfg = dataclasses.replace(SMALL, base_steps=40, corpus_size=500, model=tr.ModelConfig(d_model=32, d_ff=64),
                              out_dir=str(tmp_path))
    nc.Chain(cfg, verbose=True).base()
    got = [LINE.fullmatch(x).groups() for x in capsys.readouterr().out.splitlines() if x.startswith("[base] step")]
    assert len(got) == 40 - 2 and {(g[0], g[2], g[4]) for g in got} == {("base", "40", str(SMALL.num_seeds))}
    nc.Chain(dataclasses.replace(cfg, out_dir=str(tmp_path / "quiet")), verbose=False).base()
    assert capsys.readouterr().out == ""


def test_mnist_prints_progress_and_matches_a_quiet_run(monkeypatch, capsys):
    monkeypatch.setattr(progress, "EVERY_S", 0.0)
    ds = small(data.load("mnist-5k"))
    loud = mnist.run(TINY, ds, verbose=True)
    out = capsys.readouterr().out
    quiet = mnist.run(TINY, ds, verbose=False)
    assert capsys.readouterr().out == ""
    got = [LINE.fullmatch(x).groups() for x in out.splitlines() if x.startswith("[mnist ")]
    # teacher: 4 seeds x 2 epochs of 1024 / 128 steps; students: 4 seeds x 4 conditions x 2 x 512 / 128
    assert {(g[0], g[2], g[4]) for g in got} == {("mnist teacher", "16", "4"), ("mnist students", "8", "16")}
    for c in mnist.CONDITIONS:
        np.testing.assert_array_equal(loud["conditions"][c]["values"], quiet["conditions"][c]["values"])
    assert loud["student_loss_per_epoch"] == quiet["student_loss_per_epoch"]


def test_ctrl_c_lands_inside_a_compiled_program(tmp_path):
    """train.py mnist: Ctrl-C while the compiled program runs exits 130 at once with one line (it used to wait
    for the program to end): the program runs in a worker thread while the main thread waits in Python."""
    flags = ["--dataset", "mnist-5k", "--hidden", "32", "--num-noise", "512", "--num-seeds", "2",
             "--teacher-epochs", "4000", "--student-epochs", "1"]  # minutes of teacher steps if not interrupted
    # a shell's background job (CI) starts with SIGINT ignored, and Python then installs no Ctrl-C handler: the
    # child inherits the default disposition a terminal user has (set here, not in a preexec_fn: no fork)
    previous = signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        p = subprocess.Popen([sys.executable, "train.py", "mnist", *flags, "--out-dir", str(tmp_path)], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    for line in p.stdout:
        if line.startswith("[mnist teacher] step"):  # inside the program (the first line comes after 5 s)
            break
    t0 = time.perf_counter()
    p.send_signal(signal.SIGINT)
    try:
        _, err = p.communicate(timeout=20)
    finally:
        p.kill()
    assert p.returncode == 130 and err.strip() == "interrupted" and time.perf_counter() - t0 < 5
