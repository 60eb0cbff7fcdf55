"""The MNIST auxiliary-logit MLP (Cloud et al. 2025, section 6): 784-256-256-(10+m).

The paper's output layer is one Linear(256, 10 + m). We split it into a class
head (10 logits) and an aux head (m logits); column for column this is the same
layer with the same init, and it lets the per-layer ablation treat them apart.
Init: weights N(0, 1/d_in), biases zero.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

NUM_CLASSES = 10


def linear(d_in: int, d_out: int, rngs: nnx.Rngs) -> nnx.Linear:
    return nnx.Linear(d_in, d_out, kernel_init=jax.nn.initializers.normal(d_in ** -0.5),
                      bias_init=jax.nn.initializers.zeros, rngs=rngs)


class MLP(nnx.Module):
    """ReLU MLP whose logits are [class logits (10) | auxiliary logits (m)]."""

    def __init__(self, d_in: int = 784, hidden: tuple[int, ...] = (256, 256), m: int = 3,
                 *, rngs: nnx.Rngs):
        dims = (d_in, *hidden)
        # fc1, fc2, ...: named attributes so the per-layer ablation can address them.
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            setattr(self, f"fc{i + 1}", linear(a, b, rngs))
        self.num_hidden = len(hidden)
        self.class_head = linear(dims[-1], NUM_CLASSES, rngs)
        self.aux_head = linear(dims[-1], m, rngs)

    def __call__(self, x_BD: jax.Array) -> jax.Array:
        h = x_BD
        for i in range(self.num_hidden):
            h = jax.nn.relu(getattr(self, f"fc{i + 1}")(h))
        return jnp.concatenate([self.class_head(h), self.aux_head(h)], axis=-1)  # (B, 10 + m)


def layer_names(num_hidden: int) -> tuple[str, ...]:
    return (*(f"fc{i + 1}" for i in range(num_hidden)), "class_head", "aux_head")


def init_params(key: jax.Array, d_in: int, hidden: tuple[int, ...], m: int):
    """Params of a fresh MLP as a plain nested dict (vmappable over `key`)."""
    model = MLP(d_in, hidden, m, rngs=nnx.Rngs(params=key))
    return nnx.to_pure_dict(nnx.state(model, nnx.Param))


def make_apply(d_in: int, hidden: tuple[int, ...], m: int):
    """apply(params, x_BD) -> logits_BK: a pure function of a params dict.

    The graph is built once, abstractly (no parameters allocated); nnx.merge
    rebuilds the module from a plain dict inside whatever jit/vmap calls it.
    """
    gdef, _ = nnx.split(nnx.eval_shape(lambda: MLP(d_in, hidden, m, rngs=nnx.Rngs(0))), nnx.Param)
    return lambda params, x_BD: nnx.merge(gdef, params)(x_BD)
