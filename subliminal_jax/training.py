"""The training loop shared by the experiments: Adam over shuffled epochs, all inside jit."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from subliminal_jax import progress


def train(loss_fn, params, *, n: int, batch: int, epochs: int, lr: float, key, label: str = ""):
    """Adam over `epochs` shuffled passes of n examples (last batch partial, as PyTorch).

    loss_fn(params, idx_B, w_B) -> scalar, with w_B = 1 for real rows, 0 for padding.
    Returns the trained params and the mean loss of each epoch; `label` names it in progress lines.
    """
    opt = optax.adam(lr)
    steps = -(-n // batch)

    def epoch(carry, e):
        def step(carry, t_idx_w):
            t, idx_B, w_B = t_idx_w  # t: an unbatched scan index (the progress report's branch needs one)
            params, opt_state = carry
            loss, grads = jax.value_and_grad(loss_fn)(params, idx_B, w_B)
            updates, opt_state = opt.update(grads, opt_state, params)
            progress.report(e * steps + t + 1, epochs * steps, loss, label)
            return (optax.apply_updates(params, updates), opt_state), loss

        perm = jax.random.permutation(jax.random.fold_in(key, e), n)
        pad = steps * batch - n
        idx_UB = jnp.concatenate([perm, perm[:pad]]).reshape(steps, batch)
        w_UB = (jnp.arange(steps * batch) < n).astype(jnp.float32).reshape(steps, batch)
        carry, losses_U = jax.lax.scan(step, carry, (jnp.arange(steps), idx_UB, w_UB))
        return carry, losses_U.mean()

    (params, _), losses_Y = jax.lax.scan(epoch, (params, opt.init(params)), jnp.arange(epochs))
    return params, losses_Y


def weighted_mean(l_B, w_B):
    return jnp.sum(l_B * w_B) / jnp.sum(w_B)
