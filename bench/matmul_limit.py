"""The MNIST protocol's matrix products, as vmap batches them: the analytic FLOP count and this device's limit.

Every product the program computes is listed once with how often it runs (`protocol_matmuls`). The FLOP
count is the sum over the list (2 x multiply-adds). The limit is the same list timed here, one jitted
einsum per shape at its best time (`measure_limit`): the program cannot run faster than its matrix
products alone, so (limit seconds) / (program seconds) is the fraction of this device's matmul
throughput the program reaches. Elementwise work (ReLU, softmax, Adam, the noise draws) is not counted:
it is what keeps the fraction below 1.

Per training step of a layer a -> b on a batch of B rows:
  forward   x_Ba @ W_ab                       every layer
  dW        x_Ba^T @ g_Bb                     every layer
  dX        g_Bb @ W_ab^T                     every layer but the first (the input is not differentiated)
The students' 4 conditions are vmapped inside each seed and share the noise batch, so their first layer
reads one x per seed against 4 weight matrices; the teacher's logits for that batch are computed once
(a forward pass, no gradient). Checked once against XLA: `cost_analysis()` of one jitted student step
(4 conditions, batch 1024, 784-256-256-13) counts 5.549 GFLOP, this list 5.533 (the rest is elementwise).
"""
from __future__ import annotations

import math

import common
import jax
import jax.numpy as jnp

from subliminal_jax.mnist import mlp


def _layer_products(s: int, c: int | None, batch: int, layers, train: bool, x_batched: bool = True):
    """(spec, lhs shape, rhs shape) of one step: forward (+ dW, dX when train) of every layer.
    c: conditions vmapped inside each seed (None: one model per seed); x_batched: the input differs per
    seed (training batches); False for the shared test set."""
    out = []
    for i, (a, b) in enumerate(layers):
        sc, w = ("s", (s,)) if c is None else ("sc", (s, c))
        # the first layer reads the batch itself: one per seed (shared by its conditions) or one for all
        x_idx, x_shape = (sc, w) if i > 0 else (("s", (s,)) if x_batched else ("", ()))
        out.append((f"{x_idx}bi,{sc}io->{sc}bo", (*x_shape, batch, a), (*w, a, b)))
        if train:
            out.append((f"{x_idx}bi,{sc}bo->{sc}io", (*x_shape, batch, a), (*w, batch, b)))
            if i > 0:
                out.append((f"{sc}bo,{sc}io->{sc}bi", (*w, batch, b), (*w, a, b)))
    return out


def protocol_matmuls(cfg, seeds: int, n_train: int, n_test: int, d_in: int) -> list[dict]:
    """Every matrix product of mnist.make_program at `seeds` seeds, with its number of calls."""
    h = (d_in, *cfg.hidden)
    layers = [*zip(h[:-1], h[1:]), (h[-1], mlp.NUM_CLASSES), (h[-1], cfg.m)]  # the two heads are two products
    teacher_steps = cfg.teacher_epochs * math.ceil(n_train / cfg.teacher_batch)
    student_steps = cfg.student_epochs * math.ceil(cfg.num_noise / cfg.student_batch)
    phases = [("teacher training", teacher_steps, _layer_products(seeds, None, cfg.teacher_batch, layers, True)),
              ("teacher logits on noise", student_steps, _layer_products(seeds, None, cfg.student_batch, layers, False)),
              ("4 students", student_steps, _layer_products(seeds, 4, cfg.student_batch, layers, True)),
              ("test accuracy, 6 models", 1, _layer_products(seeds, 6, n_test, layers, False, x_batched=False))]
    return [{"phase": name, "spec": spec, "lhs": lhs, "rhs": rhs, "calls": calls, "flops": flops(spec, lhs, rhs)}
            for name, calls, products in phases for spec, lhs, rhs in products]


def flops(spec: str, lhs, rhs) -> int:
    """2 x the product of every index's size (each output element is a sum of multiply-adds)."""
    ins = spec.split("->")[0].split(",")
    size = {**dict(zip(ins[0], lhs)), **dict(zip(ins[1], rhs))}
    return 2 * math.prod(size.values())


def time_product(spec: str, lhs, rhs) -> float:
    """Best seconds of one jitted einsum on float32 operands of these shapes."""
    a, b = jnp.ones(lhs, jnp.float32), jnp.ones(rhs, jnp.float32)
    return common.best_time(jax.jit(lambda x, y: jnp.einsum(spec, x, y)), a, b)


def measure_limit(products: list[dict]) -> dict:
    """Time each distinct shape once; limit_s = the list's calls x best times (what the matrix products
    alone take), limit_flops_per_s = the count over it."""
    best: dict = {}
    for p in products:
        key = (p["spec"], tuple(p["lhs"]), tuple(p["rhs"]))
        if key not in best:
            best[key] = time_product(*key)
        p["s_per_call"] = best[key]
        p["gflops_per_s"] = p["flops"] / best[key] / 1e9
    total = sum(p["calls"] * p["flops"] for p in products)
    limit_s = sum(p["calls"] * p["s_per_call"] for p in products)
    return {"flops": total, "limit_s": limit_s, "limit_flops_per_s": total / limit_s, "products": products}


def square_peak(n: int) -> dict:
    """One n x n x n float32 product: the device's best case, for context (the protocol's shapes are thinner)."""
    s = time_product("ij,jk->ik", (n, n), (n, n))
    return {"n": n, "s": s, "flops_per_s": 2 * n ** 3 / s}
