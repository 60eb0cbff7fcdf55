"""The one training loop of every experiment, all inside the caller's jit, and its two index schedules.

Every model here trains the same way: at update u a schedule names the rows of the batch, the gradient of the
loss on those rows goes through an optax optimizer. Only the schedule differs between experiments:
  shuffled_epochs  passes over the data in a fresh order each (MNIST teacher and students, PyTorch's loader)
  sampled_rows     `batch` rows drawn i ~ p at every update (the number chain: a kept row's weight is its p)
`descend` is the loop itself (a lax.scan of optimizer updates, with the progress line); `train` runs it on the
gradient of a loss at the schedule's rows; theorem/multistep.py hands `descend` its own modified gradients.

Epochs run as a scan over passes of a scan over a pass's updates, with each pass's mean loss taken inside its
pass: XLA sums a pass's losses in an order that depends on how they are laid out, so the mean of a slice of one
flat scan's losses, or of a reshape of them, differs in the last bit (measured), and slicing every pass out
statically compiles for minutes at 4000 epochs. The update itself is the same step function either way.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from subliminal_jax import progress


class Schedule(NamedTuple):
    """Which rows each update trains on: batch_at(u, x_u) -> the loss's arguments after params, at update
    u < steps, with x_u the u-th slice of xs (arrays drawn before the loop, or None). per_pass > 0: the updates
    come in passes of per_pass each, and xs has the leading axes (pass, update in the pass)."""
    steps: int
    xs: object
    batch_at: Callable
    per_pass: int = 0


def shuffled_epochs(key, n: int, batch: int, epochs: int) -> Schedule:
    """`epochs` passes over rows 0..n-1, pass e in the order of permutation(fold_in(key, e)); the loss gets
    (idx_B, w_B). A pass's last batch is partial, as PyTorch's: filled up to the static shape with the pass's
    first rows at w_B = 0. The orders are drawn once, before the loop (epochs x n indices, no sort per update)."""
    k = -(-n // batch)  # updates per pass
    perm_YN = jax.vmap(lambda e: jax.random.permutation(jax.random.fold_in(key, e), n))(jnp.arange(epochs))
    idx_YUB = jnp.concatenate([perm_YN, perm_YN[:, :k * batch - n]], 1).reshape(epochs, k, batch)
    w_YUB = jnp.broadcast_to((jnp.arange(k * batch) < n).astype(jnp.float32).reshape(k, batch), (epochs, k, batch))
    return Schedule(epochs * k, (idx_YUB, w_YUB), lambda u, idx_w: idx_w, per_pass=k)


def sampled_rows(key, rows_p_N, batch: int, steps: int) -> Schedule:
    """`steps` updates of `batch` rows i ~ rows_p_N (with replacement), update u's drawn in the loop from
    fold_in(key, u) (a draw over N per row: too big to draw all before); the loss gets (idx_B,). Rows of
    probability 0 (e.g. filtered out) are never drawn."""
    logp_N = jnp.log(rows_p_N)
    return Schedule(steps, None, lambda u, _: (jax.random.categorical(jax.random.fold_in(key, u), logp_N,
                                                                      shape=(batch,)),))


def warmup_cosine(lr: float, warmup: int, steps: int):
    """The learning rate rising linearly from 0 to lr over `warmup` updates, then falling along a cosine to
    lr / 10 at update `steps` (an optax schedule: pass it to `optimizer` as its lr)."""
    return optax.warmup_cosine_decay_schedule(0.0, lr, warmup, max(steps, warmup + 1), lr * 0.1)


def optimizer(name: str, lr, *, momentum: float | None = None, labels=None) -> optax.GradientTransformation:
    """adam(lr), or sgd(lr) with optional momentum (SGD is what Theorem 1 analyses: its step is proportional
    to the gradient, so a student distilled from its own init stays put, where Adam would rescale float
    noise into full-size steps). lr: a float or an optax schedule. labels: 'train' / 'freeze' per leaf, a tree
    shaped like the params; frozen leaves get no update (and with none frozen the optimizer is unchanged)."""
    if name == "adam" and momentum is None:
        opt = optax.adam(lr)
    elif name == "sgd":
        opt = optax.sgd(lr, momentum=momentum)
    else:
        raise ValueError(f"optimizer {name!r} (momentum {momentum}): use 'adam' or 'sgd' (momentum is sgd's)")
    if labels is not None and "freeze" in jax.tree.leaves(labels):
        opt = optax.multi_transform({"train": opt, "freeze": optax.set_to_zero()}, labels)
    return opt


def descend(step_fn, params, opt: optax.GradientTransformation, steps: int, *, xs=None, per_pass: int = 0,
            label: str = ""):
    """The training loop: `steps` updates of opt in a lax.scan. step_fn(params, u, x_u) -> (grads, loss, out)
    at update u (an unbatched scan index: the progress report's branch needs one), x_u the u-th slice of xs;
    grads go to opt, loss to the progress line (`label` names it), out is stacked over updates: out_U.
    per_pass > 0: the same updates in a scan over passes (Schedule.per_pass), out_Y the mean of each pass's outs.
    Returns the final params and out_U (or out_Y)."""
    def step(carry, u_x):
        (params, opt_state), (u, x) = carry, u_x
        grads, loss, out = step_fn(params, u, x)
        updates, opt_state = opt.update(grads, opt_state, params)
        progress.report(u + 1, steps, loss, label)
        return (optax.apply_updates(params, updates), opt_state), out

    def one_pass(carry, p_x):
        p, x_U = p_x
        carry, out_U = jax.lax.scan(step, carry, (p * per_pass + jnp.arange(per_pass), x_U))
        return carry, jax.tree.map(jnp.mean, out_U)

    carry = (params, opt.init(params))
    if per_pass:
        (params, _), out_Y = jax.lax.scan(one_pass, carry, (jnp.arange(steps // per_pass), xs))
        return params, out_Y
    (params, _), out_U = jax.lax.scan(step, carry, (jnp.arange(steps), xs))
    return params, out_U


def train(loss_fn, params, opt: optax.GradientTransformation, schedule: Schedule, *, label: str = ""):
    """`descend` on the gradient of loss_fn(params, *schedule.batch_at(u, x_u)) -> scalar. Returns the trained
    params and the loss of every update (loss_U), or for a schedule in passes the mean loss of each (loss_Y)."""
    def step(params, u, x):
        loss, grads = jax.value_and_grad(loss_fn)(params, *schedule.batch_at(u, x))
        return grads, loss, loss
    return descend(step, params, opt, schedule.steps, xs=schedule.xs, per_pass=schedule.per_pass, label=label)


def weighted_mean(l_B, w_B):
    """The mean over the real rows of a batch (shuffled_epochs' w_B: 0 for the rows that fill it up)."""
    return jnp.sum(l_B * w_B) / jnp.sum(w_B)
