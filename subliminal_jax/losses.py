"""The losses, on a subset of the logits (class logits, aux logits, number tokens): one home for each.

The distillation loss of all three experiments is `distill_loss_B` (MNIST students, the number chain's soft
students per position, Theorem 1's softmax case); Theorem 1's squared-error case sums `squared_error_B`.
"""
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


def squared_error_B(z_BK, t_BK, mask_K):
    """Per row, the squared error of z against t summed over the logits mask_K selects."""
    return jnp.sum(jnp.where(mask_K, (z_BK - t_BK) ** 2, 0.0), -1)


def distill_loss_B(z_student_BK, z_teacher_BK, mask_K, kind: str, temperature: float = 1.0):
    """Per row (any leading axes: examples, positions), the student's distillation loss on the logits mask_K
    selects, between the softmaxes p_teacher, p_student at `temperature` or the logits themselves:
      "kl"   KL(p_teacher || p_student) (the paper's MNIST loss; the number chain's soft students)
      "ce"   the soft-label cross-entropy -sum p_teacher log p_student = KL + the teacher's entropy: the same
             gradient in exact arithmetic, rounded differently (Theorem 1's softmax case was measured with it)
      "mse"  the squared error averaged over the selected logits (Priesemann's)
    The caller stops the teacher's gradient where the teacher has parameters."""
    if kind in ("kl", "ce"):
        logp = masked_log_softmax(z_teacher_BK / temperature, mask_K)
        logq = masked_log_softmax(z_student_BK / temperature, mask_K)
        if kind == "kl":
            return masked_kl(logp, logq, mask_K)
        return -jnp.sum(jnp.where(mask_K, jnp.exp(logp) * logq, 0.0), -1)
    if kind == "mse":
        return squared_error_B(z_student_BK, z_teacher_BK, mask_K) / mask_K.sum()
    raise ValueError(f"distillation loss {kind!r}: use 'kl', 'ce' or 'mse'")
