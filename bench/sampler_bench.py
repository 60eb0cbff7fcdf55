"""The KV-cache sampler (one lax.scan) against the no-cache reference and a Python loop of one-token steps.

The model is the number chain's transformer at the chain's defaults (a fresh init: how fast tokens come
does not depend on the weights, since every method runs all `max_new` steps; each row's tokens are checked
to be the same across the three methods). Prompts are number prompts, left-padded to the longest one.
  scan       sampler.sample, jitted: prefill + every decode step inside one compiled program
  loop       the same prefill and decode step (sampler.prefill / decode_step), each jitted alone, and the
             decode step called once per token from Python (as a naive generation loop runs)
  reference  sampler.sample_reference, jitted: no cache, the whole sequence re-run for every token
"""
from __future__ import annotations

import functools

import common
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from subliminal_jax.numbers import config as numbers_config
from subliminal_jax.numbers import sampler
from subliminal_jax.numbers import data as nd
from subliminal_jax.numbers import transformer as tr


def python_loop(cfg: tr.ModelConfig):
    """fn(params, prompt_BP, key, temperature, max_new) -> tokens_BG: a jitted prefill, then one jitted decode
    step call per token (the carry's buffers donated: each step updates the cache in place)."""
    gdef = tr.graphdef_of(cfg)
    pre = jax.jit(lambda params, prompt_BP, max_new: sampler.prefill(nnx.merge(gdef, params), prompt_BP, max_new),
                  static_argnums=2)
    step = jax.jit(lambda params, keys_B, temperature, P, carry, t: sampler.decode_step(
        nnx.merge(gdef, params), keys_B, temperature, P, carry, t), static_argnums=3, donate_argnums=4)

    def run(params, prompt_BP, key, temperature, max_new):
        carry, keys_B, out = pre(params, prompt_BP, max_new), sampler.row_keys(key, prompt_BP.shape[0]), []
        for t in range(max_new):
            carry, tok_B = step(params, keys_B, temperature, prompt_BP.shape[1], carry, jnp.int32(t))
            out.append(tok_B)
        return jnp.stack(out, 1)
    return run


def methods(cfg: tr.ModelConfig) -> dict:
    """name -> fn(params, prompt_BP, key, temperature, max_new) -> tokens_BG, for this model config."""
    scan = jax.jit(sampler.sample, static_argnums=(0, 5))
    reference = jax.jit(sampler.sample_reference, static_argnums=(0, 5))
    return {"scan": functools.partial(scan, cfg), "loop": python_loop(cfg),
            "reference": functools.partial(reference, cfg)}


def grid_point(params, fns, batch: int, max_new: int, world) -> dict:
    """Every method at one (batch, completion length): first call (compiles) and best time of the rest."""
    prompt_BP = jnp.asarray(sampler.left_pad(nd.number_prompts(batch, world, 1)[0], nd.prompt_len(world)))
    args = (params, prompt_BP, jax.random.key(0), jnp.float32(1.0), max_new)
    row, tokens = {"batch": batch, "max_new": max_new}, {}
    for name, fn in fns.items():
        with common.count_compiles() as compiles:
            tokens[name], first_s = common.timed(fn, *args)
        best_s = common.best_time(fn, *args, min_total_s=0.5)
        row[name] = {"first_call_s": first_s, "compiles": compiles(), "s": best_s,
                     "completions_per_s": batch / best_s, "tokens_per_s": batch * max_new / best_s}
    row["same_tokens"] = all(np.array_equal(tokens["scan"], t) for t in tokens.values())
    row["scan_speedup_over_loop"] = row["loop"]["s"] / row["scan"]["s"]
    row["scan_speedup_over_reference"] = row["reference"]["s"] / row["scan"]["s"]
    return row


def run(batches, lengths, chain_cfg: numbers_config.NumbersConfig, say=print) -> dict:
    """Every method at (b, the chain's completion length) for b in batches, and at (the middle batch, n) for n in
    lengths; then the scan again at another temperature and other prompts, counting compiles (both are traced
    inputs: none)."""
    cfg, world = numbers_config.model_config(chain_cfg), chain_cfg.world
    params = tr.init_params(cfg, jax.random.key(0))[1]
    fns, default_len = methods(cfg), nd.completion_len(world)
    mid = batches[len(batches) // 2]
    points = [(b, default_len) for b in batches] + [(mid, n) for n in lengths if n != default_len]
    rows = []
    for b, n in points:
        rows.append(grid_point(params, fns, b, n, world))
        r = rows[-1]
        say(f"  sampler batch {b:>5} x {n:>2} tokens: scan {r['scan']['tokens_per_s']:.0f} tok/s, "
            f"{r['scan_speedup_over_loop']:.1f}x the loop, {r['scan_speedup_over_reference']:.1f}x the reference",
            flush=True)
    prompt_BP = jnp.asarray(sampler.left_pad(nd.number_prompts(mid, world, 2)[0], nd.prompt_len(world)))
    with common.count_compiles() as compiles:
        _, rerun_s = common.timed(fns["scan"], params, prompt_BP, jax.random.key(1), jnp.float32(0.7),
                                  default_len)
    return {"model": {"d_model": cfg.d_model, "n_layers": cfg.n_layers, "n_heads": cfg.n_heads, "d_ff": cfg.d_ff,
                      "vocab": cfg.vocab}, "prompt_len": nd.prompt_len(world), "default_max_new": default_len,
            "rows": rows, "rerun": {"batch": mid, "temperature": 0.7, "compiles": compiles(), "s": rerun_s}}
