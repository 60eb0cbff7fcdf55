"""What "shared init" means: a permuted init is the same function at other parameters, and
its student learns what the shared-init student learns (gradient descent is equivariant)."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from subliminal_jax import inits
from subliminal_jax.mnist import data
from subliminal_jax.mnist import mlp
from subliminal_jax.mnist import experiment as mnist
from subliminal_jax.numbers import tokens as tk
from subliminal_jax.numbers import transformer as tr
from subliminal_jax.errors import UserError


def test_permuted_mlp_is_the_same_function_at_other_parameters():
    theta0 = mlp.init_params(jax.random.key(0), 784, (64, 32), 3)
    permuted, perms = inits.permute_mlp(theta0, jax.random.key(1))
    x_BD = jax.random.uniform(jax.random.key(2), (16, 784), minval=-1.0, maxval=1.0)
    apply = mlp.make_apply(784, (64, 32), 3)
    assert float(jnp.max(jnp.abs(apply(permuted, x_BD) - apply(theta0, x_BD)))) < 1e-5   # float32 round-off
    assert float(inits.relative_distance(permuted, theta0)) > 1.0                         # ~sqrt(2): far away
    again, _ = inits.permute_mlp(theta0, None, perms)                                     # the same P, replayed
    assert all(jnp.array_equal(a, b) for a, b in zip(jax.tree.leaves(again), jax.tree.leaves(permuted)))


def test_permuted_transformer_is_the_same_function_at_other_parameters():
    cfg = tr.ModelConfig(vocab=tk.V, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_len=16)
    theta0 = tr.init_params(cfg, jax.random.key(0))[1]
    permuted, _ = inits.permute_transformer(theta0, jax.random.key(1), cfg.n_heads)
    tokens_BT = jax.random.randint(jax.random.key(2), (4, 16), 0, tk.V)
    apply, valid_BT = tr.make_apply(cfg), jnp.ones((4, 16), bool)
    assert float(jnp.max(jnp.abs(apply(permuted, tokens_BT, valid_BT) - apply(theta0, tokens_BT, valid_BT)))) < 1e-5
    assert float(inits.relative_distance(permuted["blocks"], theta0["blocks"])) > 0.5
    for part in ("tok", "pos", "norm", "head"):  # the residual stream keeps its order
        assert jnp.array_equal(permuted[part][next(iter(permuted[part]))], theta0[part][next(iter(theta0[part]))])


def test_redrawing_a_norm_changes_nothing_and_a_block_changes_only_itself():
    """RESULTS.md's ablation table leaves the norms out: their init is all ones, so `norm=random` is the shared init."""
    cfg = tr.ModelConfig(vocab=tk.V, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_len=16)
    theta0, other = (tr.init_params(cfg, jax.random.key(k))[1] for k in (0, 1))
    names = inits.transformer_parts(cfg.n_layers)
    norms = inits.student_init(theta0, other, inits.parse_student_init("norm=random,blocks.0.norm1=random", names), 0.0)
    assert jax.tree.all(jax.tree.map(jnp.array_equal, norms, theta0))
    mlp1 = inits.student_init(theta0, other, inits.parse_student_init("blocks.1.mlp=random", names), 0.0)
    assert jax.tree.all(jax.tree.map(jnp.array_equal, mlp1["blocks"][1]["mlp"], other["blocks"][1]["mlp"]))
    assert jax.tree.all(jax.tree.map(jnp.array_equal, {**mlp1, "blocks": {0: mlp1["blocks"][0]}},
                                     {**theta0, "blocks": {0: theta0["blocks"][0]}}))


def test_student_init_flag_is_checked():
    assert set(inits.parse_student_init("permuted", mlp.layer_names(2)).values()) == {"permuted"}
    for bad in ("fc9=random", "fc1=permuted", "permute"):
        with pytest.raises(UserError, match="--student-init"):
            inits.parse_student_init(bad, mlp.layer_names(2))


def test_permuted_student_learns_what_the_shared_student_learns():
    """MNIST, 2 seeds: the permuted-init student starts as the same function (tested above) at a
    parameter distance like an independent init's, and ends with the shared student's accuracy,
    seed by seed; the cross-init students (another seed's init) are untouched by the flag."""
    ds = data.load("mnist-5k")
    cfg = mnist.MnistConfig(num_seeds=2, hidden=(64, 64), num_noise=4096, teacher_epochs=3)
    shared = mnist.run(cfg, ds, verbose=False)
    permuted = mnist.run(dataclasses.replace(cfg, student_init="permuted"), ds, verbose=False)
    assert permuted["init_distance"]["student"]["mean"] > 1.0 and shared["init_distance"]["student"]["mean"] < 1e-6
    c_shared, c_perm = shared["conditions"], permuted["conditions"]
    assert c_shared["student_aux"]["mean"] > c_shared["cross_aux"]["mean"] + 0.1      # transfer is there to copy
    for c in ("student_aux", "student_all"):  # float32 round-off (summation order) compounds over training
        np.testing.assert_allclose(c_perm[c]["values"], c_shared[c]["values"], atol=0.02, err_msg=c)
    for c in ("reference", "teacher", "cross_aux", "cross_all"):
        assert c_perm[c]["values"] == c_shared[c]["values"], c
