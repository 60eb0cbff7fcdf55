"""Models and instance batches for the Theorem 1 checker (theory.py).

A Model is any (init(key) -> params, apply(params, x_BD) -> logits_BK) pair whose
first 10 logits are class logits; a transformer or CNN plugs in the same way.
`make_batch_fn` turns one into ONE jit-compiled function that draws thousands of
(init, teacher data, distillation inputs) triples and runs theory.one_step on each,
vmapped in chunks (lax.map(batch_size=...)) so memory stays bounded.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from subliminal_jax import mlp, theory

NUM_CLASSES = mlp.NUM_CLASSES


class Model(NamedTuple):
    name: str
    init: Callable       # key -> params (float64 when called under jax.enable_x64)
    apply: Callable      # params, x_BD -> logits_BK
    num_logits: int      # K = 10 class logits + auxiliary ones
    mask_K: tuple        # which logits the student imitates (bools, static)


def _as_default_float(params):
    """nnx params are float32 by default; cast to the default float (float64 under x64)."""
    return jax.tree.map(lambda a: a.astype(jnp.result_type(float)), params)


def linear_model(d_in: int, m: int) -> Model:
    """f(W, b; x) = x W + b with 10 + m outputs; W ~ N(0, 1/d_in), b = 0 (the MLP's init rule).
    Distills on ALL logits: the class-CE step dT is zero on the aux columns, so an
    aux-only linear student could receive nothing (J dT = 0 there)."""
    k = NUM_CLASSES + m

    def init(key):
        w = jax.random.normal(key, (d_in, k), jnp.result_type(float)) * d_in ** -0.5
        return {"w": w, "b": jnp.zeros(k, w.dtype)}
    return Model("linear", init, lambda p, x: x @ p["w"] + p["b"], k, (True,) * k)


def mlp_model(d_in: int, hidden: tuple[int, ...], m: int, logits: str = "aux") -> Model:
    """The MNIST aux-logit MLP (subliminal_jax.mlp), distilling on the aux logits (or all)."""
    k = NUM_CLASSES + m
    mask = tuple(i >= NUM_CLASSES or logits == "all" for i in range(k))
    return Model("mlp", lambda key: _as_default_float(mlp.init_params(key, d_in, hidden, m)),
                 mlp.make_apply(d_in, hidden, m), k, mask)


def class_ce(apply):
    """L_T: cross-entropy of the 10 class logits on a digit batch (the MNIST teacher's loss)."""
    def loss_T(params, batch):
        x_BD, y_B = batch
        return optax.softmax_cross_entropy_with_integer_labels(apply(params, x_BD)[:, :NUM_CLASSES], y_B).mean()
    return loss_T


def make_batch_fn(model: Model, kinds: tuple[str, ...], *, teacher_batch: int, distill_batch: int,
                  alpha: float, chunk: int, inits: tuple[str, ...] = ("shared", "independent")):
    """jit(keys_I, eps_E, x_ND, y_N) -> {kind: {"shared"|"independent": {metric: (I, E)}}}.

    Instance i uses key i: theta0 = init(fold_in(key, 0)); theta_S = init(fold_in(key, 1))
    (independent draw); teacher data = teacher_batch real digits drawn with replacement
    (fold_in 2); distillation inputs = distill_batch uniform [-1, 1] noise images (fold_in 3),
    unrelated to the digits. Every kind, init and eps reuses the same triple.
    """
    loss_T, mask_K = class_ce(model.apply), jnp.array(model.mask_K)

    def instance(key, eps_E, x_ND, y_N):
        k0, k_s, k_t, k_d = (jax.random.fold_in(key, i) for i in range(4))
        theta0, theta_s = model.init(k0), model.init(k_s)
        idx_B = jax.random.randint(k_t, (teacher_batch,), 0, x_ND.shape[0])
        batch_T = (x_ND[idx_B], y_N[idx_B])
        x_BD = jax.random.uniform(k_d, (distill_batch, x_ND.shape[1]), x_ND.dtype, -1.0, 1.0)
        out = {}
        for kind in kinds:
            out[kind] = {}
            for init_name in inits:
                start = theta0 if init_name == "shared" else theta_s  # `is theta0` -> one_step's shared path
                step = lambda eps: theory.one_step(model.apply, loss_T, theta0, start, batch_T, x_BD, mask_K,
                                                   kind=kind, eps=eps, alpha=alpha)
                out[kind][init_name] = jax.vmap(step)(eps_E)
        return out

    def batch_fn(keys_I, eps_E, x_ND, y_N):
        return jax.lax.map(lambda k: instance(k, eps_E, x_ND, y_N), keys_I, batch_size=chunk)
    return jax.jit(batch_fn)
