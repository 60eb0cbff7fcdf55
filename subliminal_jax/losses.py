"""Softmax losses restricted to a subset of the logits (class logits, aux logits, number tokens)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def class_ce_B(logits_BK, y_B, num_classes: int):
    """Per-example cross-entropy of the first num_classes logits (the digit classes; the MNIST teacher's
    loss, L_teacher of Theorem 1's MLP and of the multi-step run) against integer labels."""
    return optax.softmax_cross_entropy_with_integer_labels(logits_BK[:, :num_classes], y_B)


def masked_log_softmax(z_BK, mask_K):
    """log softmax over the logits mask_K selects; the others get probability exactly 0.
    (A finite fill, not -inf: no NaN in gradients through jnp.where.)"""
    return jax.nn.log_softmax(jnp.where(mask_K, z_BK, -1e9), axis=-1)


def masked_kl(logp_BK, logq_BK, mask_K):
    """KL(p || q) per row, summed over the selected logits, from masked log-probabilities."""
    return jnp.sum(jnp.where(mask_K, jnp.exp(logp_BK) * (logp_BK - logq_BK), 0.0), axis=-1)
