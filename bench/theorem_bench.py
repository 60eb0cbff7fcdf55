"""The Theorem 1 checker (`python evaluate.py theorem`): instances per second per model, and how much of
its time is compiling.

One row per model: its bar run (shared init, eps = cfg.eps) as theorem.run_one_step runs it, one jit over
`instances` (init, teacher data, distillation inputs) triples in chunks of cfg.chunk, each triple checked
for every loss in cfg.kinds, in float64. Compile and run are timed apart (theorem.measure).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from subliminal_jax.mnist import data as data_lib
from subliminal_jax.theorem import experiment as theorem
from subliminal_jax.seeds import seed_keys


def run(cfg: theorem.TheoremConfig, say=print) -> dict:
    dataset = data_lib.load(cfg.dataset)
    rows = []
    with jax.enable_x64(True):  # as run_one_step: the checker is float64
        keys_I = seed_keys(cfg.seed, cfg.instances)
        eps_E = jnp.array([cfg.eps], jnp.float64)
        for name in cfg.models:
            model, data = theorem.build_model(name, cfg, dataset)
            _, compile_s, run_s = theorem.measure(model, cfg, keys_I, eps_E, data, ("shared",))
            rows.append({"model": name, "instances": cfg.instances, "losses": len(cfg.kinds), "chunk": cfg.chunk,
                         "compile_s": compile_s, "run_s": run_s, "instances_per_s": cfg.instances / run_s,
                         "compile_share": compile_s / (compile_s + run_s)})
            say(f"  theorem {name}: {cfg.instances} instances in {run_s:.1f} s + compile {compile_s:.1f} s", flush=True)
    return {"rows": rows, "config": {"kinds": list(cfg.kinds), "eps": cfg.eps, "hidden": list(cfg.hidden),
                                     "transformer_d_model": cfg.transformer.model.d_model, "dataset": cfg.dataset}}
