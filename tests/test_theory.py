"""Theorem 1 checker: closed form, jvp prediction, eps scaling, L_teacher decrease, different-init counterexample."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from subliminal_jax.mnist import data
from subliminal_jax.theorem import theory
from subliminal_jax.theorem import experiment as theorem
from subliminal_jax.theorem import models as theory_models
from subliminal_jax.theorem import multistep as theory_multistep
from subliminal_jax.numbers import tokens as tk
from subliminal_jax.numbers import transformer as tr
from subliminal_jax.errors import UserError

D, AUX = 20, 3  # small synthetic inputs keep compiles short; the theorem holds for any input distribution


def synthetic(n=200):
    """Teacher data: random [-1, 1] 'images' with random class labels (float64)."""
    k = jax.random.key(123)
    x = jax.random.uniform(jax.random.fold_in(k, 0), (n, D), jnp.float64, -1.0, 1.0)
    return x, jax.random.randint(jax.random.fold_in(k, 1), (n,), 0, 10)


def run(model, kinds, eps, inits=("shared", "independent"), n=64, alpha=0.1, data=None):
    with jax.enable_x64(True):
        fn = theory_models.make_batch_fn(model, kinds, alpha=alpha, chunk=32, inits=inits)
        keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(7), i))(jnp.arange(n))
        return jax.device_get(fn(keys, jnp.asarray(eps, jnp.float64), synthetic() if data is None else data))


@pytest.fixture(scope="module")
def mlp_sweep():
    eps = [1e-7, 1e-5, 1e-4, 1e-3, 1e-2]
    return eps, run(theory_models.mlp_model(D, (16, 16), AUX, "aux", 8, 8), ("mse", "softmax"), eps)


@pytest.fixture(scope="module")
def linear_run():
    return run(theory_models.linear_model(D, AUX, 8, 8), ("mse", "softmax"), [1e-7])


def test_linear_mse_closed_form():
    """<dS, dT> = alpha * eps * mean_x ||x dW + db||^2 exactly (the linear model's expansion has no eps^2 term)."""
    alpha, eps = 0.1, 1e-2
    model = theory_models.linear_model(D, AUX)
    with jax.enable_x64(True):
        x, y = synthetic()
        theta0 = model.init(jax.random.key(0))
        x_BD = jax.random.uniform(jax.random.key(1), (16, D), jnp.float64, -1.0, 1.0)
        batch = (x[:32], y[:32])
        teacher_loss = theory_models.class_ce(model.apply)
        mask = jnp.array(model.mask_K)
        r = theory.one_step(model.apply, teacher_loss, theta0, theta0, batch, x_BD, mask, kind="mse", eps=eps,
                            alpha=alpha)
        dT = jax.tree.map(jnp.negative, jax.grad(teacher_loss)(theta0, batch))
        closed = alpha * eps * np.mean(np.sum(np.asarray(x_BD @ dT["w"] + dT["b"]) ** 2, -1))
    assert r["inner"].dtype == jnp.float64
    assert closed > 0
    np.testing.assert_allclose(float(r["inner"]), closed, rtol=1e-12)
    np.testing.assert_allclose(float(r["pred"]), closed, rtol=1e-12)


@pytest.mark.parametrize("which", ["linear", "mlp"])
def test_softmax_matches_jvp_prediction(which, linear_run, mlp_sweep):
    out = (linear_run if which == "linear" else mlp_sweep[1])["softmax"]["shared"]
    inner, pred = out["inner"][:, 0], out["pred"][:, 0]  # eps = 1e-7
    assert inner.dtype == np.float64
    assert np.all(pred > 0) and np.all(inner > 0)                 # Theorem 1: <dS, dT> >= 0
    assert np.max(np.abs(inner - pred) / pred) < 1e-5             # first order at eps = 1e-7


def test_error_shrinks_with_eps(mlp_sweep):
    """|measured - predicted| ~ eps^2, relative error ~ eps (where round-off does not dominate)."""
    eps, out = mlp_sweep
    for kind in ("mse", "softmax"):
        r = out[kind]["shared"]
        abs_err = np.median(np.abs(r["inner"] - r["pred"]), 0)
        rel = np.median(np.abs(r["inner"] - r["pred"]) / r["pred"], 0)
        s_abs = np.polyfit(np.log(eps[1:]), np.log(abs_err[1:]), 1)[0]  # eps >= 1e-5: above round-off
        s_rel = np.polyfit(np.log(eps[1:]), np.log(rel[1:]), 1)[0]
        assert 1.7 < s_abs < 2.3 and 0.7 < s_rel < 1.3, (kind, s_abs, s_rel)
        assert rel[0] < 1e-5 and rel[-1] > 1e-4  # first order holds at 1e-7, visibly degrades by 1e-2


def test_teacher_loss_decreases_at_shared_init(mlp_sweep):
    _, out = mlp_sweep
    for kind in ("mse", "softmax"):
        r = out[kind]["shared"]
        assert np.all(r["inner"] > 0)
        assert np.all(r["dlt"] < 0) and np.all(r["lt_after"] < r["lt_before"])
        # first order: dL_teacher = -<dS, dT> (small eps columns)
        np.testing.assert_allclose(r["dlt"][:, :2], r["dlt_pred"][:, :2], rtol=1e-3)


def test_independent_init_counterexample(mlp_sweep):
    """From an independent init the sign is not fixed: some inner products are negative."""
    _, out = mlp_sweep
    for kind in ("mse", "softmax"):
        r = out[kind]["independent"]
        for key in ("inner", "inner_trait"):
            frac = np.mean(r[key] < 0)
            assert 0.05 < frac < 0.95, (kind, key, frac)


def test_permuted_init_obeys_theorem_after_transport():
    """Student at P theta0 (hidden units permuted: the same function): the raw <dS, dT> has either sign,
    as from an independent init, but <dS, P dT> is Theorem 1's inner product: always > 0, equal to its
    first-order prediction, and L_teacher falls on every instance. Parameters need not coincide, up to symmetry."""
    out = run(theory_models.mlp_model(D, (16, 16), AUX, "aux", 8, 8), ("mse", "softmax"), [1e-7], inits=("permuted",))
    for kind in ("mse", "softmax"):
        r = {k: v[:, 0] for k, v in out[kind]["permuted"].items()}
        assert 0.05 < np.mean(r["inner"] < 0) < 0.95, kind
        assert np.all(r["inner_transported"] > 0) and np.all(r["dlt"] < 0), kind
        np.testing.assert_allclose(r["inner_transported"], r["pred_transported"], rtol=1e-4)
        np.testing.assert_allclose(r["dlt"], r["dlt_pred"], rtol=1e-3)


def test_linear_trait_part_is_init_independent(linear_run):
    """Linear model: J does not depend on the params, so dS(eps) - dS(0) keeps the PSD form even from an
    independent init (only the raw step, dominated by dS(0), changes sign)."""
    for kind in ("mse", "softmax"):
        out = linear_run[kind]["independent"]
        assert np.all(out["inner_trait"] > 0)
        assert 0.05 < np.mean(out["inner"] < 0) < 0.95


def test_transformer_instances():
    """The chain's transformer: teacher step = learn 'owl' on animal questions; the student imitates only
    the number tokens on number sequences. Theorem 1 still holds at the shared init, exactly to first order."""
    mcfg = tr.ModelConfig(vocab=tk.V, d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=12, param_dtype="float64")
    with jax.enable_x64(True):
        data_ = theory_models.transformer_data(12, "owl", pool=64)
        out = run(theory_models.transformer_model(mcfg, 2, 2), ("softmax",), [1e-7], n=32, data=data_,
                  inits=("shared", "independent", "permuted"))
    for kind in ("softmax",):  # mse is the cheaper case, covered by the linear and MLP tests (compile time)
        s, i, p = out[kind]["shared"], out[kind]["independent"], out[kind]["permuted"]
        assert np.all(p["inner_transported"] > 0) and np.all(p["dlt"] < 0)  # heads and MLP units permuted
        assert np.max(np.abs(p["inner_transported"] - p["pred_transported"]) / p["pred_transported"]) < 1e-4
        assert s["inner"].dtype == np.float64
        assert np.all(s["inner"] > 0) and np.all(s["dlt"] < 0)
        assert np.max(np.abs(s["inner"] - s["pred"]) / s["pred"]) < 1e-4   # float32 anywhere would give ~1e-2
        assert 0.05 < np.mean(i["inner"] < 0) < 0.95, kind
    with pytest.raises(UserError, match="seq-len"):
        theory_models.transformer_data(4)


def test_float64_is_scoped():
    f = jax.jit(lambda a: a * 2.0)
    assert f(jnp.ones(2)).dtype == jnp.float32
    with jax.enable_x64(True):
        model = theory_models.mlp_model(D, (4,), AUX)
        p = model.init(jax.random.key(0))
        assert all(a.dtype == jnp.float64 for a in jax.tree.leaves(p))
        assert model.apply(p, jnp.ones((2, D))).dtype == jnp.float64
        assert f(jnp.ones(2)).dtype == jnp.float64
    assert jnp.ones(2).dtype == jnp.float32 and f(jnp.ones(2)).dtype == jnp.float32


def test_bad_input_raises_user_error():
    with pytest.raises(UserError):
        theory.distill_loss("l1", jnp.zeros((1, 2)), jnp.zeros((1, 2)), jnp.ones(2, bool))
    with pytest.raises(UserError):
        theorem.validate(theorem.TheoremConfig(eps=0.0))
    with pytest.raises(UserError):
        theory_multistep.validate(theory_multistep.MultistepConfig(steps=0))


def test_cli_writes_theorem_json(tmp_path):
    cfg = theorem.TheoremConfig(models=("linear",), kinds=("softmax",), instances=64, independent_instances=64,
                                   sweep_instances=16, eps_sweep=(1e-6, 1e-4, 1e-2), chunk=32, skip_multistep=True,
                                   out_dir=str(tmp_path))
    theorem.main(cfg)
    res = json.loads((tmp_path / "theorem.json").read_text())
    r = res["models"]["linear"]["softmax"]
    assert r["instances"] == 64 and r["violations_shared"] == 0 and r["lt_increases_shared"] == 0
    assert r["max_rel_error_first_order"] < 1e-3 and r["fraction_negative_independent"] > 0
    for png in ("inner_distribution.png", "measured_vs_predicted.png", "error_vs_eps.png"):
        assert (tmp_path / png).stat().st_size > 1000


def test_multistep_smoke():
    ds = data.load("mnist-5k")
    cfg = theory_multistep.MultistepConfig(seeds=1, hidden=(16,), teacher_epochs=1, num_noise=256, steps=6,
                                           batch=32, trait_batch=32, liminal_steps=3)
    small = type(ds)(ds.name, ds.source, ds.x_train[:512], ds.y_train[:512], ds.x_test[:200], ds.y_test[:200], ds.sha256)
    res = theory_multistep.run(cfg, small)
    assert set(res["cos_curve"]) == set(theory_multistep.CONDITIONS)
    assert all(len(c) == 6 and np.all(np.isfinite(c)) and np.all(np.abs(c) <= 1 + 1e-5) for c in res["cos_curve"].values())
    assert all(np.all(np.isfinite(c)) for c in res["distill_loss_curve"].values())
