"""Batched autoregressive sampling with a KV cache (static shapes, one lax.scan).

Prompts are LEFT-padded to a fixed length P with <pad>; positions count real
tokens. Row b, step t samples with key fold_in(fold_in(key, b), t), so a row's
tokens do not depend on the batch it is in, and the no-cache reference below
reproduces them exactly. Temperature is a traced scalar (one compile serves
every temperature); temperature <= 0 means greedy (argmax). After <eos> a row
emits <pad>.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from subliminal_jax import progress
from subliminal_jax.numbers import tokens as tk
from subliminal_jax.numbers import transformer as tr
from subliminal_jax.seeds import fold_keys


def pick(key, logits_V, temperature):
    """One token: categorical at `temperature` (traced), argmax when temperature <= 0.
    <pad>, <bos> and <ans> are never emitted (a sampled <pad> would read as padding)."""
    never_V = (jnp.arange(logits_V.shape[-1]) == tk.PAD) | (jnp.arange(logits_V.shape[-1]) == tk.BOS) | \
        (jnp.arange(logits_V.shape[-1]) == tk.ANS)
    logits_V = jnp.where(never_V, -1e30, logits_V)
    t = jnp.maximum(temperature, 1e-6)
    return jnp.where(temperature > 0, jax.random.categorical(key, logits_V / t), jnp.argmax(logits_V))


def _step_keys(row_keys_B, t):
    return jax.vmap(lambda k: jax.random.fold_in(k, t))(row_keys_B)


def prefill(model: tr.Transformer, prompt_BP, max_new: int):
    """The whole prompt in one pass, writing cache slots 0..P-1: the decode carry (caches, last logits_BV,
    valid_BM slots, next positions pos_B, done_B)."""
    B, P = prompt_BP.shape
    M = P + max_new
    valid_BM = jnp.concatenate([prompt_BP != tk.PAD, jnp.zeros((B, max_new), bool)], axis=1)
    mask_BPM = valid_BM[:, None, :] & (jnp.arange(M)[None, None, :] <= jnp.arange(P)[None, :, None])
    logits_BPV, caches = model(prompt_BP, tr.positions(prompt_BP != tk.PAD), mask_BPM,
                               tr.init_caches(model.cfg, B, M), 0)
    return caches, logits_BPV[:, -1], valid_BM, (prompt_BP != tk.PAD).sum(-1), jnp.zeros(B, bool)


def decode_step(model: tr.Transformer, row_keys_B, temperature, P: int, carry, t):
    """Completion token t of every row from the carry's logits, then that token through the model
    (cache slot P + t): (new carry, tok_B). sample() scans it; bench/ also calls it step by step."""
    caches, logits_BV, valid_BM, pos_B, done_B = carry
    tok_B = jax.vmap(pick, in_axes=(0, 0, None))(_step_keys(row_keys_B, t), logits_BV, temperature)
    tok_B = jnp.where(done_B, tk.PAD, tok_B)
    valid_BM = jax.lax.dynamic_update_slice(valid_BM, ~done_B[:, None], (0, P + t))
    mask_B1M = valid_BM[:, None, :] & (jnp.arange(valid_BM.shape[1]) <= P + t)[None, None, :]
    logits_B1V, caches = model(tok_B[:, None], pos_B[:, None], mask_B1M, caches, P + t)
    return (caches, logits_B1V[:, 0], valid_BM, pos_B + 1, done_B | (tok_B == tk.EOS)), tok_B


def row_keys(key, B: int, rows_B=None):
    """Row b's sampling key: fold_in(key, row number), so a row's tokens do not depend on its batch."""
    return fold_keys(key, jnp.arange(B) if rows_B is None else rows_B)


def sample(cfg: tr.ModelConfig, params, prompt_BP, key, temperature, max_new: int, rows_R=None, repeats: int = 1):
    """Completion tokens_RG (R = B * repeats rows, G = max_new tokens): `repeats` samples of each
    left-padded prompt row, row b * repeats + j being sample j of prompt b. Each prompt is prefilled once and
    its cache copied to its rows (prefill is a third of the sampler's time). rows_R numbers the rows for their
    keys (default 0..R-1; sample_in_chunks passes each chunk's own row numbers)."""
    model = nnx.merge(tr.graphdef_of(cfg), params)
    R = prompt_BP.shape[0] * repeats
    carry = jax.tree.map(lambda a: jnp.repeat(a, repeats, axis=0), prefill(model, prompt_BP, max_new))
    step = functools.partial(decode_step, model, row_keys(key, R, rows_R), temperature, prompt_BP.shape[1])
    _, tokens_GR = jax.lax.scan(step, carry, jnp.arange(max_new))
    return tokens_GR.T


def sample_in_chunks(cfg: tr.ModelConfig, params, prompt_NP, key, temperature, max_new: int, chunk: int,
                     repeats: int = 1, label: str = ""):
    """sample() over the prompts `chunk` at a time (lax.map: one compile, memory for one chunk): tokens_RG,
    R = N * repeats; the same tokens as one call, since each row keeps its own key. The last chunk is
    filled up with <pad> prompts. Each chunk reports progress (under `label`) with its share of rows ended."""
    N, P = prompt_NP.shape
    chunk = min(chunk, N)
    J = -(-N // chunk)
    prompt_JBP = jnp.pad(prompt_NP, ((0, J * chunk - N), (0, 0)), constant_values=tk.PAD).reshape(J, chunk, P)
    rows_JR = jnp.arange(J * chunk * repeats).reshape(J, chunk * repeats)

    def one_chunk(a):
        prompt_BP, rows_R, c = a
        tokens_RG = sample(cfg, params, prompt_BP, key, temperature, max_new, rows_R, repeats)
        progress.report(c + 1, J, jnp.mean(jnp.any(tokens_RG == tk.EOS, -1)), label, what="rows ended")
        return tokens_RG
    tokens_JRG = jax.lax.map(one_chunk, (prompt_JBP, rows_JR, jnp.arange(J)))
    return tokens_JRG.reshape(J * chunk * repeats, max_new)[:N * repeats]


def sample_reference(cfg: tr.ModelConfig, params, prompt_BP, key, temperature, max_new: int):
    """The same sampler without a cache: re-runs the full sequence every step (tests and bench/ only)."""
    apply = tr.make_apply(cfg)
    B, P = prompt_BP.shape
    buf_BT = jnp.concatenate([prompt_BP, jnp.full((B, max_new), tk.PAD, prompt_BP.dtype)], axis=1)
    row_keys_B = row_keys(key, B)
    done_B = jnp.zeros(B, bool)
    out = []
    for t in range(max_new):
        logits_BV = apply(params, buf_BT, buf_BT != tk.PAD)[:, P + t - 1]
        tok_B = jax.vmap(pick, in_axes=(0, 0, None))(_step_keys(row_keys_B, t), logits_BV, temperature)
        tok_B = jnp.where(done_B, tk.PAD, tok_B)
        buf_BT = buf_BT.at[:, P + t].set(tok_B)
        done_B = done_B | (tok_B == tk.EOS)
        out.append(tok_B)
    return jnp.stack(out, 1)


def left_pad(rows, length: int):
    """List of token lists -> int32 array [len(rows), length], left-padded with <pad>."""
    import numpy as np
    out = np.full((len(rows), length), tk.PAD, np.int32)
    for i, r in enumerate(rows):
        if len(r) > length:
            raise ValueError(f"prompt of {len(r)} tokens exceeds the prompt length {length}")
        out[i, length - len(r):] = r
    return out
