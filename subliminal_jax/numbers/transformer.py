"""A small decoder-only transformer in Flax NNX (nanoGPT-shaped), with a KV cache.

Pre-norm blocks: x + Attn(RMSNorm(x)), x + MLP(RMSNorm(x)); learned token and
position embeddings; untied output head. One forward serves training (no
cache), prefill and one-token decode (cache = per-layer K/V buffers of M
slots, written at `index` with lax.dynamic_update_slice). The caller passes
an explicit attention mask mask_BTM (query t may read slot m) and per-row
positions pos_BT, so left-padded prompts work: positions count real tokens.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import tyro
from flax import nnx

from subliminal_jax.numbers import tokens as tk


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The transformer's sizes, declared once: NumbersConfig.model (flags --d-model ...) and the Theorem 1
    checker's TheoremConfig.transformer.model (--transformer.d-model ...) nest it."""
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 256
    # not flags: the vocabulary is the toy language's; the positions are set from the run's --seq-len
    # (config.model_config); "float64" for the Theorem 1 checker (under jax.enable_x64)
    vocab: tyro.conf.Suppress[int] = tk.V
    max_len: tyro.conf.Suppress[int] = 64
    param_dtype: tyro.conf.Suppress[str] = "float32"


class CausalSelfAttention(nnx.Module):
    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        self.n_heads = cfg.n_heads
        self.qkv = nnx.Linear(cfg.d_model, 3 * cfg.d_model, use_bias=False, param_dtype=cfg.param_dtype, rngs=rngs)
        self.proj = nnx.Linear(cfg.d_model, cfg.d_model, use_bias=False, param_dtype=cfg.param_dtype, rngs=rngs,
                               kernel_init=nnx.initializers.normal(0.02 / (2 * cfg.n_layers) ** 0.5))

    def __call__(self, x_BTD, mask_BTM, cache=None, index=0):
        B, T, D = x_BTD.shape
        H, W = self.n_heads, D // self.n_heads
        q_BTHW, k_BTHW, v_BTHW = (a.reshape(B, T, H, W) for a in jnp.split(self.qkv(x_BTD), 3, axis=-1))
        if cache is None:  # training: keys are this sequence
            k_BMHW, v_BMHW = k_BTHW, v_BTHW
        else:              # KV cache: write the new keys/values at slots index..index+T-1
            k_BMHW = jax.lax.dynamic_update_slice(cache["k"], k_BTHW, (0, index, 0, 0))
            v_BMHW = jax.lax.dynamic_update_slice(cache["v"], v_BTHW, (0, index, 0, 0))
            cache = {"k": k_BMHW, "v": v_BMHW}
        att_BHTM = jnp.einsum("bthw,bmhw->bhtm", q_BTHW, k_BMHW) / jnp.sqrt(W).astype(x_BTD.dtype)
        att_BHTM = jnp.where(mask_BTM[:, None], att_BHTM, -1e30)
        y_BTHW = jnp.einsum("bhtm,bmhw->bthw", jax.nn.softmax(att_BHTM, axis=-1), v_BMHW)
        return self.proj(y_BTHW.reshape(B, T, D)), cache


class MLP(nnx.Module):
    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        self.up = nnx.Linear(cfg.d_model, cfg.d_ff, param_dtype=cfg.param_dtype, rngs=rngs)
        self.down = nnx.Linear(cfg.d_ff, cfg.d_model, param_dtype=cfg.param_dtype, rngs=rngs,
                               kernel_init=nnx.initializers.normal(0.02 / (2 * cfg.n_layers) ** 0.5))

    def __call__(self, x_BTD):
        return self.down(jax.nn.gelu(self.up(x_BTD)))


class Block(nnx.Module):
    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        self.norm1 = nnx.RMSNorm(cfg.d_model, param_dtype=cfg.param_dtype, rngs=rngs)
        self.attn = CausalSelfAttention(cfg, rngs=rngs)
        self.norm2 = nnx.RMSNorm(cfg.d_model, param_dtype=cfg.param_dtype, rngs=rngs)
        self.mlp = MLP(cfg, rngs=rngs)

    def __call__(self, x_BTD, mask_BTM, cache=None, index=0):
        a_BTD, cache = self.attn(self.norm1(x_BTD), mask_BTM, cache, index)
        x_BTD = x_BTD + a_BTD
        return x_BTD + self.mlp(self.norm2(x_BTD)), cache


class Transformer(nnx.Module):
    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        emb = dict(embedding_init=nnx.initializers.normal(0.02), param_dtype=cfg.param_dtype, rngs=rngs)
        self.tok = nnx.Embed(cfg.vocab, cfg.d_model, **emb)
        self.pos = nnx.Embed(cfg.max_len, cfg.d_model, **emb)
        self.blocks = nnx.List([Block(cfg, rngs=rngs) for _ in range(cfg.n_layers)])
        self.norm = nnx.RMSNorm(cfg.d_model, param_dtype=cfg.param_dtype, rngs=rngs)
        self.head = nnx.Linear(cfg.d_model, cfg.vocab, use_bias=False, param_dtype=cfg.param_dtype, rngs=rngs,
                               kernel_init=nnx.initializers.normal(0.02))

    def embed(self, tokens_BT, pos_BT):
        return self.tok(tokens_BT) + self.pos(jnp.minimum(pos_BT, self.cfg.max_len - 1))

    def __call__(self, tokens_BT, pos_BT, mask_BTM, caches=None, index=0):
        """logits_BTV and the updated caches (None when caches is None)."""
        x_BTD = self.embed(tokens_BT, pos_BT)
        new = []
        for i, block in enumerate(self.blocks):
            x_BTD, c = block(x_BTD, mask_BTM, None if caches is None else caches[i], index)
            new.append(c)
        return self.head(self.norm(x_BTD)), (None if caches is None else new)

    def lens(self, tokens_BT, pos_BT, mask_BTM):
        """Logit lens: the residual stream after the embedding and after each block, each read out
        through the final norm and the unembedding -> logits_LBTV (L = n_layers + 1; the last = __call__)."""
        x_BTD, out = self.embed(tokens_BT, pos_BT), []
        for block in self.blocks:
            out.append(self.head(self.norm(x_BTD)))
            x_BTD = block(x_BTD, mask_BTM)[0]
        return jnp.stack(out + [self.head(self.norm(x_BTD))])


def init_caches(cfg: ModelConfig, batch: int, slots: int, dtype=jnp.float32):
    shape = (batch, slots, cfg.n_heads, cfg.d_model // cfg.n_heads)
    return [{"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)} for _ in range(cfg.n_layers)]


def positions(valid_BT):
    """Per-row positions counting real tokens only (left padding gets position 0)."""
    return jnp.maximum(jnp.cumsum(valid_BT, axis=-1) - 1, 0)


def causal_mask(valid_BT):
    """mask_BTM: query t reads slot m <= t when slot m holds a real token."""
    T = valid_BT.shape[-1]
    return valid_BT[:, None, :] & (jnp.arange(T)[None, :] <= jnp.arange(T)[:, None])[None]


def init_params(cfg: ModelConfig, key):
    """(graphdef, params as a pure dict) of a fresh model; jax.vmap over keys for many seeds."""
    graphdef, state = nnx.split(Transformer(cfg, rngs=nnx.Rngs(key)), nnx.Param)
    return graphdef, state.to_pure_dict()


def graphdef_of(cfg: ModelConfig):
    return nnx.split(nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0))), nnx.Param)[0]


def make_apply(cfg: ModelConfig):
    """apply(params, tokens_BT, valid_BT) -> logits_BTV for training (no cache)."""
    graphdef = graphdef_of(cfg)

    def apply(params, tokens_BT, valid_BT):
        model = nnx.merge(graphdef, params)
        return model(tokens_BT, positions(valid_BT), causal_mask(valid_BT))[0]
    return apply


def make_lens(cfg: ModelConfig):
    """lens(params, tokens_BT, valid_BT) -> logits_LBTV of every layer (Transformer.lens)."""
    graphdef = graphdef_of(cfg)

    def lens(params, tokens_BT, valid_BT):
        return nnx.merge(graphdef, params).lens(tokens_BT, positions(valid_BT), causal_mask(valid_BT))
    return lens


def vmapped_init(cfg: ModelConfig, keys_S):
    """Params for each key, stacked on a leading seed axis."""
    return jax.vmap(lambda k: init_params(cfg, k)[1])(keys_S)
