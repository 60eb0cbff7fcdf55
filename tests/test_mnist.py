"""The MNIST auxiliary-logit experiment: derangement, vmap == loop, devices, the phenomenon."""
import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from subliminal_jax import inits, losses, seeds
from subliminal_jax.mnist import data
from subliminal_jax.mnist import mlp
from subliminal_jax.mnist import experiment as mnist
from subliminal_jax.errors import UserError
from helpers import run_script

TINY = mnist.MnistConfig(num_seeds=4, hidden=(32,), num_noise=512, teacher_epochs=2, student_epochs=2,
                         teacher_batch=128, student_batch=128, student_lr=1e-3)


@pytest.fixture(scope="module")
def digits():
    return data.load("mnist-5k")


def small(ds, n_train=1024, n_test=500):
    return dataclasses.replace(ds, x_train=ds.x_train[:n_train], y_train=ds.y_train[:n_train],
                               x_test=ds.x_test[:n_test], y_test=ds.y_test[:n_test])


@pytest.mark.parametrize("n", [2, 3, 5, 25, 100])
def test_derangement_has_no_fixed_point(n):
    for seed in range(20):
        p = seeds.derangement(n, seed)
        assert sorted(p) == list(range(n)) and not np.any(p == np.arange(n))
    with pytest.raises(UserError):
        seeds.derangement(1, 0)


def test_losses_ignore_unselected_logits():
    z_s, z_t = jax.random.normal(jax.random.key(0), (2, 5, 13))
    aux = jnp.arange(13) >= 10
    for kind in ("kl", "mse"):
        base = losses.distill_loss_B(z_s, z_t, aux, kind, 1.0)
        moved = losses.distill_loss_B(z_s.at[:, :10].add(3.0), z_t.at[:, :10].add(-2.0), aux, kind, 1.0)
        np.testing.assert_allclose(base, moved, rtol=1e-5)
        assert jnp.all(base >= 0) and jnp.allclose(losses.distill_loss_B(z_t, z_t, aux, kind, 1.0), 0, atol=1e-6)
    # KL on the aux logits equals the plain KL of their softmaxes
    p, q = jax.nn.softmax(z_t[:, 10:]), jax.nn.softmax(z_s[:, 10:])
    np.testing.assert_allclose(losses.distill_loss_B(z_s, z_t, aux, "kl", 1.0),
                               jnp.sum(p * (jnp.log(p) - jnp.log(q)), -1), rtol=1e-5)


def test_student_init_surgery():
    a = mlp.init_params(jax.random.key(0), 784, (16, 16), 3)
    b = mlp.init_params(jax.random.key(1), 784, (16, 16), 3)
    same = inits.student_init(a, b, {n: "shared" for n in a}, 0.0)
    assert all(jnp.array_equal(x, y) for x, y in zip(jax.tree.leaves(same), jax.tree.leaves(a)))
    mixed = inits.student_init(a, b, {**{n: "shared" for n in a}, "fc1": "random"}, 0.0)
    assert jnp.array_equal(mixed["fc1"]["kernel"], b["fc1"]["kernel"])
    assert jnp.array_equal(mixed["fc2"]["kernel"], a["fc2"]["kernel"])
    far = inits.student_init(a, b, {n: "shared" for n in a}, 1.0)
    np.testing.assert_allclose(far["fc1"]["kernel"], b["fc1"]["kernel"], atol=1e-6)
    with pytest.raises(UserError):
        inits.parse_student_init("fc9=random", mlp.layer_names(2))


def test_vmapped_program_equals_per_seed_loop(digits):
    ds = small(digits)
    cfg = TINY
    res = mnist.run(cfg, ds, verbose=False)
    x_tr, x_te = data.scale(ds.x_train), data.scale(ds.x_test)
    parts = mnist.make_parts(cfg, 784, len(x_tr))
    root = jax.random.key(cfg.seed)
    setup = jax.jit(parts.setup)
    per_seed = [setup(jax.random.fold_in(root, s), x_tr, ds.y_train) for s in range(cfg.num_seeds)]
    perm = np.array(res["derangement"])
    for s in range(cfg.num_seeds):
        theta0, indep, teacher, _, k_student = per_seed[s]
        start = parts.start(theta0, indep, 0.0, None)
        starts = jax.tree.map(lambda a, b: jnp.stack([a, a, b, b]), start, per_seed[perm[s]][0])
        students, _ = jax.jit(parts.students)(starts, teacher, k_student)
        acc = {"reference": parts.accuracy(theta0, x_te, ds.y_test), "teacher": parts.accuracy(teacher, x_te, ds.y_test)}
        for i, c in enumerate(mnist.STUDENT_CONDITIONS):
            acc[c] = parts.accuracy(jax.tree.map(lambda a: a[i], students), x_te, ds.y_test)
        for c in mnist.CONDITIONS:  # one test example = 0.002; allow float-rounding flips of <= 1
            assert abs(float(acc[c]) - res["conditions"][c]["values"][s]) <= 0.0021, (c, s)


def test_phenomenon_on_embedded_subset(digits):
    """The shared-init student learns digits from noise; the cross-init one does not.
    (Defaults, but narrower and less noise to fit the test budget; transfer falls with width.)"""
    cfg = dataclasses.replace(mnist.MnistConfig(), num_seeds=8, hidden=(64, 64), num_noise=8192)
    res = mnist.run(cfg, digits, verbose=False)["conditions"]
    aux, cross = res["student_aux"], res["cross_aux"]
    assert res["teacher"]["mean"] >= 0.85
    assert cross["mean"] <= 0.2
    assert aux["mean"] >= 2.5 * cross["mean"]
    assert aux["ci95"][0] > cross["ci95"][1]  # non-overlapping 95% CIs over seeds
    assert res["student_all"]["mean"] > res["cross_all"]["mean"]


def run_cli(*args, devices=1):
    return run_script("train.py", *args, devices=devices)


TINY_FLAGS = ["--dataset", "mnist-5k", "--hidden", "32", "--num-noise", "512", "--teacher-epochs", "1",
              "--student-epochs", "1"]


def test_four_devices_match_one(mnist_one_device, tmp_path):
    r = run_cli("mnist", *TINY_FLAGS, "--num-seeds", "4", "--out-dir", str(tmp_path / "d4"), devices=4)
    assert r.returncode == 0, r.stderr[-2000:]
    outs = {n: json.loads((d / "results.json").read_text()) for n, d in ((1, mnist_one_device), (4, tmp_path / "d4"))}
    assert len(outs[4]["devices"]) == 4 and len(outs[1]["devices"]) == 1
    for c in mnist.CONDITIONS:
        np.testing.assert_allclose(outs[4]["conditions"][c]["values"], outs[1]["conditions"][c]["values"],
                                   atol=0.0011, err_msg=c)
    assert (tmp_path / "d4" / "accuracy.png").stat().st_size > 10_000


def test_cli_errors_are_one_line(tmp_path):
    r = run_cli("mnist", *TINY_FLAGS, "--num-seeds", "6", "--out-dir", str(tmp_path), devices=4)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
    assert "--num-seeds 6 is not divisible by the 4 devices" in r.stderr
    r = run_cli("mnist", "--data-dir", str(tmp_path / "missing"), "--out-dir", str(tmp_path))
    assert r.returncode == 2 and "not a directory" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("mnist", *TINY_FLAGS, "--student-init", "fc1=maybe", "--out-dir", str(tmp_path))
    assert r.returncode == 2 and "PART=shared|random" in r.stderr


def test_lambda_sweep_reuses_one_executable(tmp_path, digits):
    cfg = dataclasses.replace(TINY, num_seeds=2, teacher_epochs=1, student_epochs=1, sweep="lambda",
                              sweep_values=(0.0, 0.5, 1.0), out_dir=str(tmp_path))
    mnist._COMPILED.clear()
    sweep = mnist.main(dataclasses.replace(cfg, dataset="mnist-5k"))
    assert len(mnist._COMPILED) == 1
    dist = [p["init_distance"]["student"]["mean"] for p in sweep["points"]]
    assert dist[0] == 0.0  # lambda = 0 is exactly the shared init, also inside jit
    np.testing.assert_allclose(dist[1:], [2 * np.sin(np.pi / 8), np.sqrt(2)], rtol=0.02)  # E|mix - shared|
    np.testing.assert_allclose([p["init_distance"]["cross"]["mean"] for p in sweep["points"]], np.sqrt(2), rtol=0.02)
    assert (tmp_path / "sweep.png").stat().st_size > 10_000 and (tmp_path / "sweep.json").exists()
