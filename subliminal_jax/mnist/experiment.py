"""MNIST auxiliary-logit experiment (Cloud et al. 2025, section 6), all seeds in one program.

Per seed s, from one key:
  theta0_s   shared init                     -> "reference" (untrained accuracy)
  teacher_s  theta0_s + CE on class logits    -> "teacher"
  students   distilled from teacher_s on fixed noise images, loss on the
             aux logits only ("_aux") or on all 10+m logits ("_all"), from
               theta0_s (or its per-layer / lambda variant) -> "student_*"
               theta0_{pi(s)}, pi a derangement           -> "cross_*"
Score = test accuracy of the class logits (the student never saw a digit).

Everything below runs as ONE jax.jit of jax.vmap over seeds (and, inside each
seed, a vmap over the 4 student conditions, so the noise batch and the
teacher's logits are computed once and shared), with seeds split over a mesh
of all devices.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from subliminal_jax.mnist import data as data_lib
from subliminal_jax import checks, inits, multihost, parallel, plots, progress, report, training
from subliminal_jax.mnist import mlp
from subliminal_jax.training import weighted_mean
from subliminal_jax.losses import class_ce_B, distill_loss_B
from subliminal_jax.seeds import derangement, seed_keys
from subliminal_jax.stats import summarize

CONDITIONS = ("reference", "teacher", "student_aux", "student_all", "cross_aux", "cross_all")
STUDENT_CONDITIONS = CONDITIONS[2:]  # order of the inner vmap


@dataclasses.dataclass(frozen=True)
class MnistConfig:
    """MNIST auxiliary-logit transfer (defaults sized for 2 CPU cores; `mnist-paper` for the paper's)."""
    num_seeds: int = 8                  # models trained at once (vmapped, split over devices)
    seed: int = 0                       # root seed; seed s of a run uses fold_in(key(seed), s)
    dataset: Literal["mnist", "fashion-mnist", "mnist-5k"] = "mnist"
    data_dir: str | None = None         # folder with the four IDX .gz files (overrides --dataset source)
    cache_dir: str | None = None        # download cache (default $SUBLIMINAL_JAX_DATA or ~/.cache/subliminal_jax)
    hidden: tuple[int, ...] = (256, 256)
    m: int = 3                          # number of auxiliary logits
    loss: Literal["kl", "mse"] = "kl"   # kl: KL(teacher || student) at `temperature` (paper); mse: Priesemann
    temperature: float = 1.0
    noise: Literal["uniform", "normal"] = "uniform"  # uniform in [-1, 1] (paper) or standard normal
    num_noise: int = 20_000             # fixed noise images per seed (paper: 60,000)
    teacher_epochs: int = 5
    student_epochs: int = 5
    teacher_lr: float = 3e-4
    student_lr: float = 1e-3            # paper: 3e-4 (fewer noise images here)
    teacher_batch: int = 128            # paper: 1024 (too few steps on a small dataset)
    student_batch: int = 256            # paper: 1024
    # per layer 'shared' (default) or 'random', e.g. "fc1=random,fc2=random"; or "permuted": the teacher's init
    # with every hidden layer's units permuted (the same function at other parameters, inits.py)
    student_init: str = ""
    init_lambda: float = 0.0            # 0 = teacher's init, 1 = independent; variance-preserving mix
    sweep: Literal["none", "m", "lambda", "width"] = "none"
    sweep_values: tuple[float, ...] = ()
    num_devices: int | None = None      # default: all
    out_dir: str = "runs/mnist"


# The paper's script: 5 + 5 epochs, Adam 3e-4, batch 1024, 60,000 noise images, 25 seeds.
PAPER = MnistConfig(num_seeds=25, num_noise=60_000, teacher_batch=1024, student_batch=1024,
                    teacher_epochs=5, student_epochs=5, teacher_lr=3e-4, student_lr=3e-4,
                    m=3, loss="kl", out_dir="runs/mnist-paper")


# ----------------------------------------------------------------------------- the student's data

def noise_images(key, idx_B, d: int, kind: str):
    """Image i of the fixed noise set is drawn from fold_in(key, i): same image every epoch."""
    draw = (lambda k: jax.random.uniform(k, (d,), minval=-1.0, maxval=1.0)) if kind == "uniform" \
        else (lambda k: jax.random.normal(k, (d,)))
    return jax.vmap(lambda i: draw(jax.random.fold_in(key, i)))(idx_B)


# ----------------------------------------------------------------------------- the program

class Parts(NamedTuple):
    """The per-seed pieces of the experiment; `make_program` vmaps them over seeds."""
    setup: Callable     # key, x_train, y_train -> (theta0, indep, teacher, teacher_loss_Y, student_key)
    students: Callable  # starts_C, teacher, key -> (students_C, loss_CY), the 4 STUDENT_CONDITIONS
    start: Callable     # theta0, indep, lam, key -> the "student_*" init (per-layer choice, permutation, mix)
    accuracy: Callable  # params, x_test, y_test -> class accuracy


def make_parts(cfg: MnistConfig, d_in: int, n_train: int) -> Parts:
    apply = mlp.make_apply(d_in, cfg.hidden, cfg.m)
    choice = inits.parse_student_init(cfg.student_init, mlp.layer_names(len(cfg.hidden)))
    k = mlp.NUM_CLASSES + cfg.m
    aux_K = jnp.arange(k) >= mlp.NUM_CLASSES
    masks_CK = jnp.stack([aux_K, jnp.ones(k, bool), aux_K, jnp.ones(k, bool)])  # order: STUDENT_CONDITIONS

    def accuracy(params, x, y):
        return jnp.mean(jnp.argmax(apply(params, x)[:, :mlp.NUM_CLASSES], -1) == y)

    def setup(key, x_train, y_train):
        k_init, k_indep, k_teacher, k_student = (jax.random.fold_in(key, i) for i in range(4))
        theta0 = mlp.init_params(k_init, d_in, cfg.hidden, cfg.m)
        indep = mlp.init_params(k_indep, d_in, cfg.hidden, cfg.m)
        # Materialize the draws once: otherwise XLA may recompute normal() inside several
        # fusions that round differently, and "shared" inits would differ by an ULP.
        theta0, indep = jax.lax.optimization_barrier((theta0, indep))

        def ce(params, idx_B, w_B):  # teacher: cross-entropy on the 10 class logits only
            return weighted_mean(class_ce_B(apply(params, x_train[idx_B]), y_train[idx_B], mlp.NUM_CLASSES), w_B)
        passes = training.shuffled_epochs(k_teacher, n_train, cfg.teacher_batch, cfg.teacher_epochs)
        opt = training.optimizer("adam", cfg.teacher_lr)
        teacher, loss_Y = training.train(ce, theta0, opt, passes, label="teacher")  # the mean loss of each epoch
        return theta0, indep, teacher, loss_Y, k_student

    def student(start, mask_K, teacher, key):
        noise_key, shuffle_key = jax.random.split(key)

        def loss(params, idx_B, w_B):  # distill on noise, on the logits mask_K selects
            x = noise_images(noise_key, idx_B, d_in, cfg.noise)
            z_t = jax.lax.stop_gradient(apply(teacher, x))
            return weighted_mean(distill_loss_B(apply(params, x), z_t, mask_K, cfg.loss, cfg.temperature), w_B)
        passes = training.shuffled_epochs(shuffle_key, cfg.num_noise, cfg.student_batch, cfg.student_epochs)
        opt = training.optimizer("adam", cfg.student_lr)
        return training.train(loss, start, opt, passes, label="students")

    def students(starts_C, teacher, key):  # the 4 conditions share noise and teacher logits
        return jax.vmap(student, in_axes=(0, 0, None, None))(starts_C, masks_CK, teacher, key)

    start = lambda theta0, indep, lam, key: inits.student_init(theta0, indep, choice, lam, key)
    return Parts(setup, students, start, accuracy)


def make_program(cfg: MnistConfig, d_in: int, n_train: int):
    """The whole experiment as one pure function of (keys_S, perm_S, lam, data)."""
    parts = make_parts(cfg, d_in, n_train)

    def program(keys_S, perm_S, lam, x_train, y_train, x_test, y_test):
        theta0_S, indep_S, teacher_S, teacher_loss_SY, k_student_S = jax.vmap(
            parts.setup, in_axes=(0, None, None))(keys_S, x_train, y_train)
        cross_S = jax.tree.map(lambda a: a[perm_S], theta0_S)           # another seed's init
        k_perm_S = jax.vmap(lambda k: jax.random.fold_in(k, 4))(keys_S)  # setup uses streams 0-3
        start_S = jax.vmap(parts.start, in_axes=(0, 0, None, 0))(theta0_S, indep_S, lam, k_perm_S)
        starts_SC = jax.tree.map(lambda a, b: jnp.stack([a, a, b, b], 1), start_S, cross_S)
        students_SC, student_loss_SCY = jax.vmap(parts.students)(starts_SC, teacher_S, k_student_S)

        acc_S = jax.vmap(parts.accuracy, in_axes=(0, None, None))
        acc_SC = jax.vmap(acc_S, in_axes=(0, None, None))
        return {
            "accuracy": {"reference": acc_S(theta0_S, x_test, y_test),
                         "teacher": acc_S(teacher_S, x_test, y_test),
                         **dict(zip(STUDENT_CONDITIONS, acc_SC(students_SC, x_test, y_test).T))},
            "init_distance": {"student": jax.vmap(inits.relative_distance)(start_S, theta0_S),
                              "cross": jax.vmap(inits.relative_distance)(cross_S, theta0_S)},
            "teacher_loss": teacher_loss_SY,
            "student_loss": student_loss_SCY,
        }
    return program


def validate(cfg: MnistConfig, dataset: data_lib.Dataset | None = None) -> None:
    """Every field, before anything is compiled (typed_fields first: the rest compares numbers); with the
    dataset, also that the teacher's batch fits in it."""
    checks.require(checks.typed_fields(cfg))
    checks.require([
        (cfg.num_seeds >= 2, "--num-seeds must be >= 2 (cross-model students need another seed)"),
        (cfg.seed >= 0, f"--seed must be >= 0 (got {cfg.seed})"),
        (cfg.num_devices is None or cfg.num_devices >= 1, f"--num-devices must be >= 1 (got {cfg.num_devices})"),
        (cfg.m >= 1, "--m must be >= 1 auxiliary logit"),
        (len(cfg.hidden) >= 1 and min(cfg.hidden) >= 1, "--hidden needs >= 1 layer of width >= 1"),
        (min(cfg.teacher_batch, cfg.student_batch, cfg.num_noise) >= 1, "batch sizes and --num-noise must be >= 1"),
        (cfg.student_batch <= cfg.num_noise, f"--student-batch {cfg.student_batch} is larger than --num-noise "
                                             f"{cfg.num_noise} (the student's data)"),
        (min(cfg.teacher_epochs, cfg.student_epochs) >= 0, "epochs must be >= 0"),
        (checks.rate(cfg.teacher_lr) and checks.rate(cfg.student_lr),
         f"learning rates must be finite and > 0 (got --teacher-lr {cfg.teacher_lr}, --student-lr {cfg.student_lr})"),
        (0.0 <= cfg.init_lambda <= 1.0, "--init-lambda must lie in [0, 1]"),
        (checks.rate(cfg.temperature), f"--temperature must be finite and > 0 (got {cfg.temperature})"),
        (cfg.sweep == "none" or cfg.sweep_values, f"--sweep {cfg.sweep} needs --sweep-values"),
        (cfg.sweep not in ("m", "width") or all(float(v).is_integer() and v >= 1 for v in cfg.sweep_values),
         f"--sweep {cfg.sweep} needs whole numbers >= 1 as --sweep-values (got {cfg.sweep_values})"),
        (cfg.sweep != "lambda" or all(0.0 <= v <= 1.0 for v in cfg.sweep_values),
         "--sweep lambda needs --sweep-values in [0, 1]"),
        (dataset is None or cfg.teacher_batch <= len(dataset.y_train),
         f"--teacher-batch {cfg.teacher_batch} is larger than the {len(dataset.y_train) if dataset else 0} "
         f"training images of the dataset"),
    ])
    inits.parse_student_init(cfg.student_init, mlp.layer_names(len(cfg.hidden)))


_COMPILED: dict = {}  # (config without the traced lambda / output fields, mesh, shapes, progress) -> executable


def compile_program(cfg: MnistConfig, mesh, args):
    """Compile once per static config: a lambda sweep reuses one executable."""
    key = (dataclasses.replace(cfg, init_lambda=0.0, sweep="none", sweep_values=(), out_dir=""),
           mesh, tuple((a.shape, a.dtype) for a in args), progress.active())
    if key not in _COMPILED:
        program = make_program(cfg, args[3].shape[1], args[3].shape[0])  # args[3] = x_train
        _COMPILED[key] = jax.jit(program).lower(*args).compile()
    return _COMPILED[key]


def run(cfg: MnistConfig, dataset: data_lib.Dataset, mesh=None, verbose: bool = True) -> dict:
    """Run every condition for cfg.num_seeds seeds; return the results dict (no files written)."""
    validate(cfg, dataset)
    mesh = mesh or parallel.make_mesh(cfg.num_devices)
    parallel.check_divisible(cfg.num_seeds, mesh)
    say = print if verbose else (lambda *a, **k: None)
    x_train, x_test = data_lib.scale(dataset.x_train), data_lib.scale(dataset.x_test)
    perm = derangement(cfg.num_seeds, cfg.seed)
    keys_S = seed_keys(cfg.seed, cfg.num_seeds)
    args = (parallel.split_leading(mesh, keys_S),
            *parallel.replicate(mesh, (jnp.asarray(perm), jnp.float32(cfg.init_lambda), x_train,
                                       dataset.y_train, x_test, dataset.y_test)))
    with progress.stage("mnist", verbose):  # teacher and student steps print as they run
        t0 = time.perf_counter()
        compiled = compile_program(cfg, mesh, args)
        t1 = time.perf_counter()
        say(f"compiled in {t1 - t0:.1f}s; training {cfg.num_seeds} seeds x {len(CONDITIONS)} conditions "
            f"on {mesh.devices.size} {jax.devices()[0].platform} device(s)...", flush=True)
        out = progress.interruptible(compiled, *args)
        t2 = time.perf_counter()
    conditions = {c: summarize(out["accuracy"][c]) for c in CONDITIONS}
    for c in CONDITIONS:
        s = conditions[c]
        say(f"  {c:12s} {s['mean']:.3f} +- {s['ci95_half']:.3f}")
    return {
        "conditions": conditions,
        "init_distance": {k: summarize(v) for k, v in out["init_distance"].items()},
        "teacher_loss_per_epoch": np.mean(out["teacher_loss"], 0).tolist(),
        "student_loss_per_epoch": {c: np.mean(out["student_loss"][:, i], 0).tolist()
                                   for i, c in enumerate(STUDENT_CONDITIONS)},
        "derangement": perm.tolist(),
        "config": dataclasses.asdict(cfg),
        "data": dataset.provenance(),
        "devices": [str(d) for d in mesh.devices.flat], "processes": jax.process_count(),
        "versions": {"jax": jax.__version__},
        "compile_time_s": t1 - t0, "run_time_s": t2 - t1,
    }


SWEEPS = {  # --sweep name -> how a value changes the config
    "m": lambda cfg, v: dataclasses.replace(cfg, m=int(v)),
    "lambda": lambda cfg, v: dataclasses.replace(cfg, init_lambda=float(v)),
    "width": lambda cfg, v: dataclasses.replace(cfg, hidden=tuple(int(v) for _ in cfg.hidden)),
}


def run_sweep(cfg: MnistConfig, dataset: data_lib.Dataset, verbose: bool = True) -> dict:
    """run() at each of cfg.sweep_values of cfg.sweep; the sweep dict plots.sweep_plot draws."""
    mesh, points = parallel.make_mesh(cfg.num_devices), []
    for v in cfg.sweep_values:
        if verbose:
            print(f"--- {cfg.sweep} = {v:g}", flush=True)
        res = run(SWEEPS[cfg.sweep](cfg, v), dataset, mesh, verbose)
        points.append({"value": v, "conditions": res["conditions"], "init_distance": res["init_distance"]})
    return {"param": cfg.sweep, "points": points, "config": dataclasses.asdict(cfg), "data": dataset.provenance()}


def main(cfg: MnistConfig) -> dict:
    """`train.py mnist`: run, then write results.json + accuracy.png (or sweep.json + sweep.png)."""
    t0 = time.perf_counter()
    validate(cfg)
    dataset = data_lib.load(cfg.dataset, cfg.data_dir, cfg.cache_dir)
    multihost.same_data(dataset.sha256)
    validate(cfg, dataset)
    out_dir = report.prepare_out_dir(cfg.out_dir)  # (after the inputs: a refused run leaves no empty folder)
    print(f"data: {dataset.source} ({len(dataset.y_train)} train / {len(dataset.y_test)} test)")
    if cfg.sweep == "none":
        res = run(cfg, dataset)
        res["wall_time_s"] = time.perf_counter() - t0
        report.write_json(out_dir / "results.json", res)
        plots.bar_chart(out_dir / "accuracy.png", res["conditions"],
                         title=f"{dataset.name}: {cfg.num_seeds} seeds, m={cfg.m}, {cfg.loss}")
        print(f"wrote {out_dir / 'results.json'} and {out_dir / 'accuracy.png'}")
        return res
    sweep = run_sweep(cfg, dataset)
    sweep["wall_time_s"] = time.perf_counter() - t0
    report.write_json(out_dir / "sweep.json", sweep)
    plots.sweep_plot(out_dir / "sweep.png", sweep)
    print(f"wrote {out_dir / 'sweep.json'} and {out_dir / 'sweep.png'}")
    return sweep
