"""The MNIST paper protocol (teacher + 4 students per seed) at several seed counts, and against a per-seed loop.

`one_count`, per seed count: the one-jit vmapped program (mnist.run): compile and run time, seeds/s, the
analytic FLOP count over the run time, and the fraction of this device's matmul limit at the same shapes
(matmul_limit.py), plus the XLA buffer sizes of the compiled program. `rerun`: the same config again in
the same process, counting compiles. `per_seed_loop`: the same step functions (mnist.make_parts) jitted
for ONE model and called seed after seed, the way the PyTorch replications train one model at a time.
`run` is the whole section (bench/run.py).
"""
from __future__ import annotations

import dataclasses

import common
import jax
import jax.numpy as jnp
import matmul_limit
import numpy as np

from subliminal_jax.mnist import data as data_lib
from subliminal_jax.mnist import experiment as mnist


def protocol(seeds: int, **overrides) -> mnist.MnistConfig:
    """The paper's settings (mnist.PAPER: batch 1024, 5 + 5 epochs, Adam 3e-4; overrides change e.g. num_noise)
    on ONE device (a seed count need not divide the device count). One seed runs as two: the cross-init
    students need another seed's init."""
    return dataclasses.replace(mnist.PAPER, num_seeds=max(seeds, 2), num_devices=1, out_dir="", **overrides)


def xla_bytes(compiled) -> int | None:
    """Arguments + outputs + temporaries of a compiled program, as XLA plans them (None if not reported)."""
    m = compiled.memory_analysis()
    if m is None:
        return None
    return m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes


def one_count(cfg: mnist.MnistConfig, dataset) -> tuple[dict, dict]:
    """One seed count: (table row, mnist.run's result)."""
    d_in = dataset.x_train.shape[1]
    limit = matmul_limit.measure_limit(matmul_limit.protocol_matmuls(
        cfg, cfg.num_seeds, len(dataset.y_train), len(dataset.y_test), d_in))
    with common.count_compiles() as compiles:
        res = mnist.run(cfg, dataset, verbose=False)
    nbytes = xla_bytes(list(mnist._COMPILED.values())[-1])  # the executable this run compiled: the cache's newest
    run_s = res["run_time_s"]
    row = {"seeds": cfg.num_seeds, "compile_s": res["compile_time_s"], "run_s": run_s,
           "seeds_per_s": cfg.num_seeds / run_s, "flops": limit["flops"], "achieved_flops_per_s": limit["flops"] / run_s,
           "limit_flops_per_s": limit["limit_flops_per_s"], "limit_s": limit["limit_s"],
           "fraction_of_limit": limit["limit_s"] / run_s, "compiles": compiles(),
           "xla_bytes": nbytes, "xla_bytes_per_seed": None if nbytes is None else nbytes / cfg.num_seeds,
           "student_aux_accuracy": res["conditions"]["student_aux"]["mean"], "products": limit["products"]}
    return row, res


def run(counts, compare_at: int, dataset, overrides: dict, say=print) -> dict:
    """The section: a row per seed count, then at compare_at seeds a rerun and the per-seed loop."""
    rows, results = [], {}
    for s in counts:
        cfg = protocol(s, **overrides)
        row, results[cfg.num_seeds] = one_count(cfg, dataset)
        rows.append(row)
        say(f"  mnist {row['seeds']:>3} seeds: compile {row['compile_s']:.1f} s, run {row['run_s']:.1f} s, "
            f"{row['achieved_flops_per_s'] / 1e9:.1f} GFLOP/s = {row['fraction_of_limit']:.0%} of the limit", flush=True)
    cfg = protocol(compare_at, **overrides)
    vmapped = results[cfg.num_seeds] if cfg.num_seeds in results else one_count(cfg, dataset)[1]
    loop = per_seed_loop(cfg, dataset, vmapped)
    say(f"  mnist per-seed loop at {cfg.num_seeds} seeds: {loop['run_s']:.1f} s, the one jit "
        f"{loop['speedup_of_vmapped']:.2f}x faster", flush=True)
    return {"rows": rows, "rerun": rerun(cfg, dataset), "per_seed_loop": loop,
            "config": {k: v for k, v in vmapped["config"].items() if k not in ("out_dir", "sweep", "sweep_values")},
            "data": dataset.provenance()}


def rerun(cfg: mnist.MnistConfig, dataset) -> dict:
    """The same config once more in this process: the executable is reused, so nothing compiles."""
    with common.count_compiles() as compiles:
        res = mnist.run(cfg, dataset, verbose=False)
    return {"seeds": cfg.num_seeds, "compiles": compiles(), "compile_s": res["compile_time_s"],
            "run_s": res["run_time_s"]}


def _loop_steps(cfg: mnist.MnistConfig, d_in: int, n_train: int):
    """Three jitted per-seed functions: setup (init + teacher), students (the 4 conditions, vmapped inside
    one seed as in the program), accuracies (the 6 models on the test set)."""
    parts = mnist.make_parts(cfg, d_in, n_train)

    def students(theta0, indep, cross_theta0, teacher, k_student, key, lam):
        start = parts.start(theta0, indep, lam, jax.random.fold_in(key, 4))  # stream 4, as make_program
        starts = jax.tree.map(lambda a, b: jnp.stack([a, a, b, b]), start, cross_theta0)
        return parts.students(starts, teacher, k_student)[0]

    def accuracies(theta0, teacher, students_C, x, y):
        acc_C = jax.vmap(parts.accuracy, in_axes=(0, None, None))(students_C, x, y)
        return jnp.concatenate([jnp.stack([parts.accuracy(theta0, x, y), parts.accuracy(teacher, x, y)]), acc_C])
    return jax.jit(parts.setup), jax.jit(students), jax.jit(accuracies)


def _compile_loop(setup, students, accuracies, key, x_tr, y_tr, x_te, y_te, lam):
    """Compile the three steps ahead of time (abstract shapes of each one's inputs from eval_shape)."""
    theta0, indep, teacher, _, k_student = jax.eval_shape(setup, key, x_tr, y_tr)
    setup.lower(key, x_tr, y_tr).compile()
    args = (theta0, indep, theta0, teacher, k_student, key, lam)
    students.lower(*args).compile()
    accuracies.lower(theta0, teacher, jax.eval_shape(students, *args), x_te, y_te).compile()


def _run_loop(setup, students, accuracies, keys, perm, x_tr, y_tr, x_te, y_te, lam) -> np.ndarray:
    """accuracy_SC (CONDITIONS order): every teacher first (a cross student needs another seed's init)."""
    per = [setup(k, x_tr, y_tr) for k in keys]
    acc = []
    for s, k in enumerate(keys):
        theta0, indep, teacher, _, k_student = per[s]
        acc.append(accuracies(theta0, teacher, students(theta0, indep, per[perm[s]][0], teacher, k_student, k, lam),
                              x_te, y_te))
    return np.stack([np.asarray(a) for a in acc])


def per_seed_loop(cfg: mnist.MnistConfig, dataset, vmapped: dict) -> dict:
    """Seed after seed through the jitted per-seed steps; `vmapped` is mnist.run's result on the same config
    (its run time is the comparison; its accuracies should match these up to float rounding)."""
    x_tr, x_te = jnp.asarray(data_lib.scale(dataset.x_train)), jnp.asarray(data_lib.scale(dataset.x_test))
    y_tr, y_te = jnp.asarray(dataset.y_train), jnp.asarray(dataset.y_test)
    root, lam = jax.random.key(cfg.seed), jnp.float32(cfg.init_lambda)
    keys = [jax.random.fold_in(root, s) for s in range(cfg.num_seeds)]
    steps = _loop_steps(cfg, x_tr.shape[1], x_tr.shape[0])
    with common.count_compiles() as compiles:
        _, compile_s = common.timed(_compile_loop, *steps, keys[0], x_tr, y_tr, x_te, y_te, lam)
    with common.count_compiles() as recompiles:
        acc_SC, run_s = common.timed(_run_loop, *steps, keys, np.array(vmapped["derangement"]), x_tr, y_tr, x_te,
                                     y_te, lam)
    diff = [np.abs(acc_SC[:, i] - np.asarray(vmapped["conditions"][c]["values"])).max()
            for i, c in enumerate(mnist.CONDITIONS)]
    return {"seeds": cfg.num_seeds, "compile_s": compile_s, "run_s": run_s, "compiles": compiles(),
            "compiles_while_running": recompiles(), "vmapped_run_s": vmapped["run_time_s"],
            "speedup_of_vmapped": run_s / vmapped["run_time_s"], "max_accuracy_difference": float(max(diff))}
