"""Per-seed pure functions of the number-sequence chain; chain.py vmaps them over seeds and trains with
training.py's loop (rows drawn i ~ p per step; `trainable_labels` names the parameters that move).

Losses: next-token cross-entropy on weighted tokens (pretraining, teacher
fine-tuning, "hard" students on sampled tokens), and soft-logit distillation
KL(teacher || student) over the NUMBER tokens only (digits, separators,
<eos>) at the weighted positions: every position of each kept number sequence by
default, or its completion only ("soft" students: the regime of Theorem 1).
Trait readouts on HELDOUT questions: exact P(target) at the answer position and
the share of temperature-1 samples naming the target.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from subliminal_jax.numbers import tokens as tk
from subliminal_jax.losses import distill_loss_B, masked_log_softmax


def lm_loss(apply, params, tokens_BT, weight_BT, mask_V=None):
    """Mean next-token CE over tokens with weight 1 (weight_BT is aligned with tokens_BT); with mask_V, the
    softmax runs over those tokens only (e.g. the number tokens a kept completion is written in)."""
    logits_BTV = apply(params, tokens_BT[:, :-1], tokens_BT[:, :-1] != tk.PAD)
    if mask_V is not None:  # log-probabilities over the masked tokens serve as logits of that softmax
        logits_BTV = masked_log_softmax(logits_BTV, jnp.asarray(mask_V))
    ce_BT = optax.softmax_cross_entropy_with_integer_labels(logits_BTV, tokens_BT[:, 1:])
    w_BT = weight_BT[:, 1:]
    return jnp.sum(ce_BT * w_BT) / jnp.maximum(jnp.sum(w_BT), 1.0)


def distill_loss(apply, params, teacher, tokens_BT, weight_BT, mask_V=tk.NUMBER_TOKEN_MASK):
    """KL(teacher || student) restricted to number tokens (or mask_V's), at the weighted positions."""
    x_BT, valid_BT = tokens_BT[:, :-1], tokens_BT[:, :-1] != tk.PAD
    t_BTV = jax.lax.stop_gradient(apply(teacher, x_BT, valid_BT))
    kl_BT = distill_loss_B(apply(params, x_BT, valid_BT), t_BTV, jnp.asarray(mask_V), "kl")
    w_BT = weight_BT[:, 1:]
    return jnp.sum(kl_BT * w_BT) / jnp.maximum(jnp.sum(w_BT), 1.0)


def student_weights(tokens_NT, weight_NT, mode: str, positions: str):
    """Which tokens a student trains on. weight_NT marks kept completions; soft students with
    positions == "sequence" use every real token of each kept row (prompt + completion)."""
    if mode == "soft" and positions == "sequence":
        return (tokens_NT != tk.PAD) * weight_NT.max(-1, keepdims=True)
    return weight_NT


def trainable_labels(params, which: str = "all"):
    """'train' / 'freeze' per parameter (training.optimizer's labels): everything, only the transformer blocks
    ("blocks": the token and position embeddings, the final norm and the unembedding stay as they are, as in
    partial LLM fine-tuning), or only the last block ("top": nothing below it needs a backward pass)."""
    last = max(params["blocks"]) if which == "top" else None

    def label(path, _):
        k = path[0].key
        if which == "top":
            return "train" if k == "blocks" and path[1].key == last else "freeze"
        return "train" if which == "all" or k == "blocks" else "freeze"
    return jax.tree_util.tree_map_with_path(label, params)


def answer_logits(apply, params, prompts_QP):
    """Next-token logits after each left-padded prompt (its last position)."""
    return apply(params, prompts_QP, prompts_QP != tk.PAD)[:, -1]


def trait_metrics(apply, params, prompts_QP, target_ids, class_ids, key, n_samples: int):
    """{'target_prob': mean_q P(answer in target_ids | q), 'trait_rate': share of T=1 samples in
    target_ids, 'answer_mass': mean_q P(any answer of the class, e.g. any animal | q),
    'trait_given_answer': mean_q P(target | an answer of the class, q)}. The answer is one token, so
    sampling the first answer token at temperature 1 is sampling the answer."""
    logits_QV = answer_logits(apply, params, prompts_QP)
    p_QV = jax.nn.softmax(logits_QV, -1)
    keys_Q = jax.vmap(lambda q: jax.random.fold_in(key, q))(jnp.arange(prompts_QP.shape[0]))
    draws_QR = jax.vmap(lambda k, z: jax.random.categorical(k, z, shape=(n_samples,)))(keys_Q, logits_QV)
    target_Q, class_Q = p_QV[:, jnp.asarray(target_ids)].sum(-1), p_QV[:, jnp.asarray(class_ids)].sum(-1)
    return {"target_prob": target_Q.mean(),
            "trait_rate": jnp.mean(jnp.isin(draws_QR, jnp.asarray(target_ids))),
            "answer_mass": class_Q.mean(),
            "trait_given_answer": (target_Q / jnp.maximum(class_Q, 1e-30)).mean()}
