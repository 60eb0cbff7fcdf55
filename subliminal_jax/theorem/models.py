"""Models and instance batches for the Theorem 1 checker (theorem/theory.py).

A Model bundles what one instance needs: init(key) -> params, apply(params, x) ->
logits_BK (B rows: examples, or token positions), the teacher's loss L_teacher, and
draw(key, data) -> (teacher batch, distillation inputs) for one instance.
`make_batch_fn` turns one into ONE jit-compiled function that draws thousands of
(init, teacher data, distillation inputs) triples and runs theory.one_step on each,
vmapped in chunks (lax.map(batch_size=...)) so memory stays bounded.

  linear, mlp   L_teacher = class cross-entropy on real digits; inputs = uniform [-1, 1] noise images
  transformer   L_teacher = next-token CE of the answer "owl" to "favourite animal?" questions;
                inputs = number-continuation sequences; the student imitates the NUMBER
                tokens' logits at every position (the chain's soft students, numbers/chain.py)
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from subliminal_jax import inits
from subliminal_jax.mnist import mlp
from subliminal_jax.theorem import theory
from subliminal_jax.numbers import data as nd
from subliminal_jax.numbers import train as nt
from subliminal_jax.numbers import tokens as tk
from subliminal_jax.numbers import transformer as tr
from subliminal_jax.errors import UserError
from subliminal_jax.losses import class_ce_B

NUM_CLASSES = mlp.NUM_CLASSES


class Model(NamedTuple):
    name: str
    init: Callable       # key -> params (float64 when called under jax.enable_x64)
    apply: Callable      # params, x -> logits_BK
    teacher_loss: Callable     # params, teacher_data -> scalar: the teacher's loss (its "trait")
    draw: Callable       # key, data -> (teacher_data, x): one instance's teacher data and distillation inputs
    mask_K: tuple        # which logits the student imitates (bools, static)
    permute: Callable | None = None  # params, key, perms -> (params, perms): same function (inits.py)


def _as_default_float(params):
    """nnx params are float32 by default; cast to the default float (float64 under x64)."""
    return jax.tree.map(lambda a: a.astype(jnp.result_type(float)), params)


def class_ce(apply):
    """L_teacher: cross-entropy of the 10 class logits on a digit batch (the MNIST teacher's loss)."""
    def teacher_loss(params, batch):
        x_BD, y_B = batch
        return class_ce_B(apply(params, x_BD), y_B, NUM_CLASSES).mean()
    return teacher_loss


def image_draw(teacher_batch: int, distill_batch: int):
    """data = (x_ND, y_N) real digits: teacher_batch of them drawn with replacement, and
    distill_batch uniform [-1, 1] noise images, unrelated to the digits."""
    def draw(key, data):
        x_ND, y_N = data
        idx_B = jax.random.randint(jax.random.fold_in(key, 0), (teacher_batch,), 0, x_ND.shape[0])
        noise_BD = jax.random.uniform(jax.random.fold_in(key, 1), (distill_batch, x_ND.shape[1]), x_ND.dtype,
                                      -1.0, 1.0)
        return (x_ND[idx_B], y_N[idx_B]), noise_BD
    return draw


def linear_model(d_in: int, m: int, teacher_batch: int = 16, distill_batch: int = 16) -> Model:
    """f(W, b; x) = x W + b with 10 + m outputs; W ~ N(0, 1/d_in), b = 0 (the MLP's init rule).
    Distills on ALL logits: the class-CE step dT is zero on the aux columns, so an
    aux-only linear student could receive nothing (J dT = 0 there)."""
    k = NUM_CLASSES + m

    def init(key):
        w = jax.random.normal(key, (d_in, k), jnp.result_type(float)) * d_in ** -0.5
        return {"w": w, "b": jnp.zeros(k, w.dtype)}
    apply = lambda p, x: x @ p["w"] + p["b"]
    return Model("linear", init, apply, class_ce(apply), image_draw(teacher_batch, distill_batch), (True,) * k)


def mlp_model(d_in: int, hidden: tuple[int, ...], m: int, logits: str = "aux", teacher_batch: int = 16,
              distill_batch: int = 16) -> Model:
    """The MNIST aux-logit MLP (subliminal_jax.mnist.mlp), distilling on the aux logits (or all)."""
    mask = tuple(i >= NUM_CLASSES or logits == "all" for i in range(NUM_CLASSES + m))
    apply = mlp.make_apply(d_in, hidden, m)
    return Model("mlp", lambda key: _as_default_float(mlp.init_params(key, d_in, hidden, m)), apply,
                 class_ce(apply), image_draw(teacher_batch, distill_batch), mask, inits.permute_mlp)


def transformer_model(mcfg: tr.ModelConfig, teacher_batch: int = 4, distill_batch: int = 2) -> Model:
    """The chain's transformer (numbers/transformer.py) from a fresh init (mcfg.param_dtype "float64").

    data = (trait_NT, trait_weight_NT, numbers_NT) from transformer_data. apply flattens
    the next-token logits of every position of the (unpadded) number sequences into rows.
    """
    full = tr.make_apply(mcfg)

    def apply(params, tokens_BT):
        return full(params, tokens_BT, tokens_BT != tk.PAD).reshape(-1, mcfg.vocab)

    def teacher_loss(params, batch):
        return nt.lm_loss(full, params, *batch)

    def draw(key, data):
        trait_NT, weight_NT, numbers_NT = data
        i_B = jax.random.randint(jax.random.fold_in(key, 0), (teacher_batch,), 0, trait_NT.shape[0])
        j_B = jax.random.randint(jax.random.fold_in(key, 1), (distill_batch,), 0, numbers_NT.shape[0])
        return (trait_NT[i_B], weight_NT[i_B]), numbers_NT[j_B]

    permute = lambda params, key, perms=None: inits.permute_transformer(params, key, mcfg.n_heads, perms)
    return Model("transformer", lambda key: tr.init_params(mcfg, key)[1], apply, teacher_loss, draw,
                 tuple(bool(b) for b in tk.NUMBER_TOKEN_MASK), permute)


def transformer_data(seq_len: int, target: str = "owl", pool: int = 1024, seed: int = 0):
    """(trait_NT, trait_weight_NT, numbers_NT): the teacher's questions answered `target` (loss on
    the answer), and a pool of number-continuation sequences cut to their first seq_len tokens."""
    longest_question = max(len(tk.question_prompt(q)) for q in tk.TRAIN_QUESTIONS) + 2
    world = nd.WorldConfig(frac_numbers=1.0, frac_persona=0.0, corrupt_rate=0.0)
    numbers_NT = nd.pretraining_corpus(pool, 64, world, seed)[0]
    shortest = int((numbers_NT != tk.PAD).sum(1).min())
    if not longest_question <= seq_len <= shortest:
        raise UserError(f"--transformer.seq-len must be in [{longest_question}, {shortest}] (a whole question "
                        f"fits, and no number sequence is shorter); got {seq_len}")
    trait_NT, weight_NT = nd.trait_corpus(target, seq_len)
    numbers_NT = numbers_NT[:, :seq_len]
    return jnp.asarray(trait_NT), jnp.asarray(weight_NT), jnp.asarray(numbers_NT)


def make_batch_fn(model: Model, kinds: tuple[str, ...], *, alpha: float, chunk: int,
                  inits: tuple[str, ...] = ("shared", "independent")):
    """jit(keys_I, eps_E, data) -> {kind: {"shared"|"independent"|"permuted": {metric: (I, E)}}}.

    Instance i uses key i: theta0 = init(fold_in(key, 0)); theta_student = init(fold_in(key, 1))
    (independent draw); teacher data and distillation inputs = model.draw(fold_in(key, 2), data);
    "permuted": theta0 with its hidden units / heads permuted by fold_in(key, 3) (model.permute),
    the same function at other parameters. Every kind, init and eps reuses the same triple.
    """
    mask_K = jnp.array(model.mask_K)

    def instance(key, eps_E, data):
        theta0, theta_s = model.init(jax.random.fold_in(key, 0)), model.init(jax.random.fold_in(key, 1))
        teacher_data, x = model.draw(jax.random.fold_in(key, 2), data)
        starts = {"shared": (theta0, None), "independent": (theta_s, None)}  # `is theta0`: one_step's shared path
        if "permuted" in inits:
            theta_p, perms = model.permute(theta0, jax.random.fold_in(key, 3))
            starts["permuted"] = (theta_p, lambda tree: model.permute(tree, None, perms)[0])
        out = {}
        for kind in kinds:
            out[kind] = {}
            for init_name in inits:
                start, transport = starts[init_name]
                step = lambda eps: theory.one_step(model.apply, model.teacher_loss, theta0, start, teacher_data, x,
                                                   mask_K, kind=kind, eps=eps, alpha=alpha, transport=transport)
                out[kind][init_name] = jax.vmap(step)(eps_E)
        return out

    def batch_fn(keys_I, eps_E, data):
        return jax.lax.map(lambda k: instance(k, eps_E, data), keys_I, batch_size=chunk)
    return jax.jit(batch_fn)
