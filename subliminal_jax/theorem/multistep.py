"""Multi-step alignment (Kitkana & Arora 2026) along a real MNIST aux-logit distillation.

Per seed: theta0 -> teacher (class CE on real digits, mnist.make_parts); students distill the
teacher's aux logits (KL, temperature 1) on uniform noise, one step at a time. At every
step t we log, at the current student theta_t:
  g_distill = grad L_distill(theta_t)  (noise batch; the student's step is -lr * precond(g_distill))
  g_class = grad L_class(theta_t)      (the teacher's loss: class CE on a batch of REAL digits,
                                        used only to measure, or by the projection intervention)
  cos_t = <g_distill, g_class> / (|g_distill| |g_class|).
Sign convention: a plain gradient step -lr*g_distill changes L_class by -lr*<g_distill, g_class> to first
order, so cos > 0 means the distillation step also lowers the class loss ("trait-aligned").
Conditions (vmapped, sharing noise and teacher logits):
  plain    distill only
  project  if <g_distill, g_class> > 0: g_distill <- g_distill - <g_distill, g_class>/|g_class|^2 g_class
           (then <g_distill, g_class> = 0)
  liminal  g_distill + w * grad KL(p_theta0 || p_theta) on all logits of the noise batch, for the
           first `liminal_steps` steps (the KL-to-base penalty, "liminal training")
  cross    plain, from an independent init (different-init control)
The (possibly modified) gradient goes to the loop (training.descend; Adam by default, as the MNIST
experiment; with Adam the projection removes the component from the gradient, not from
the preconditioned update). float32: this part checks a trend, not an identity.
"""
from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from subliminal_jax.mnist import data as data_lib
from subliminal_jax import checks, training
from subliminal_jax.mnist import mlp
from subliminal_jax.mnist import experiment as mnist
from subliminal_jax.losses import class_ce_B, distill_loss_B
from subliminal_jax.seeds import seed_keys
from subliminal_jax.stats import summarize
from subliminal_jax.theorem.theory import tree_dot as _dot

CONDITIONS = ("plain", "project", "liminal", "cross")


@dataclasses.dataclass(frozen=True)
class MultistepConfig:
    """Multi-step gradient alignment along MNIST aux-logit distillation (float32, vmapped over seeds)."""
    seeds: int = 4
    hidden: tuple[int, ...] = (64, 64)
    m: int = 3
    teacher_epochs: int = 3
    teacher_batch: int = 128
    teacher_lr: float = 1e-3
    num_noise: int = 10_000            # fixed uniform-noise images per seed
    steps: int = 200                   # student steps (batches drawn from the fixed noise set)
    batch: int = 256
    lr: float = 1e-3
    optimizer: Literal["adam", "sgd"] = "adam"
    trait_batch: int = 256             # real digits per step for g_class
    liminal_weight: float = 1.0
    liminal_steps: int = 50            # penalty active for steps t < liminal_steps ("early on")


def validate(cfg: MultistepConfig) -> None:
    checks.require([
        (cfg.seeds >= 1 and cfg.steps >= 1 and min(cfg.batch, cfg.trait_batch, cfg.num_noise) >= 1,
         "--multistep.seeds/steps/batch/trait-batch/num-noise must be >= 1"),
        (cfg.hidden and min(cfg.hidden) >= 1 and cfg.m >= 1,
         "--multistep.hidden needs >= 1 layer of width >= 1 and --multistep.m >= 1"),
    ])


def make_program(cfg: MultistepConfig, d_in: int, n_train: int):
    apply = mlp.make_apply(d_in, cfg.hidden, cfg.m)
    # init, independent init and teacher exactly as the MNIST experiment draws and trains them
    parts = mnist.make_parts(mnist.MnistConfig(hidden=cfg.hidden, m=cfg.m, teacher_epochs=cfg.teacher_epochs,
                                               teacher_batch=cfg.teacher_batch, teacher_lr=cfg.teacher_lr),
                             d_in, n_train)
    k = mlp.NUM_CLASSES + cfg.m
    aux_K, all_K = jnp.arange(k) >= mlp.NUM_CLASSES, jnp.ones(k, bool)
    opt = training.optimizer(cfg.optimizer, cfg.lr)  # sgd: plain SGD, no momentum

    def class_ce(params, x, y):
        return class_ce_B(apply(params, x), y, mlp.NUM_CLASSES).mean()

    def student(start, project, liminal_w, theta0, teacher, key, x_tr, y_tr):
        noise_key, idx_key, trait_key = (jax.random.fold_in(key, i) for i in range(3))

        def step(params, t, _):  # the noise and digit batches: rows drawn uniformly, from fold_in(key, t)
            x = mnist.noise_images(noise_key, jax.random.randint(jax.random.fold_in(idx_key, t), (cfg.batch,),
                                                                 0, cfg.num_noise), d_in, "uniform")
            z_t = apply(teacher, x)
            distill = lambda p: distill_loss_B(apply(p, x), z_t, aux_K, "kl", 1.0).mean()
            l_distill, g_distill = jax.value_and_grad(distill)(params)
            ti = jax.random.randint(jax.random.fold_in(trait_key, t), (cfg.trait_batch,), 0, x_tr.shape[0])
            l_class, g_class = jax.value_and_grad(class_ce)(params, x_tr[ti], y_tr[ti])
            dot, gc2 = _dot(g_distill, g_class), _dot(g_class, g_class)
            cos = dot / jnp.sqrt(_dot(g_distill, g_distill) * gc2)
            coef = jnp.where(project & (dot > 0), dot / gc2, 0.0)      # remove the trait-aligned part
            g = jax.tree.map(lambda a, b: a - coef * b, g_distill, g_class)
            z0 = apply(theta0, x)                                      # KL(p_base || p_student), all logits
            g_liminal = jax.grad(lambda p: distill_loss_B(apply(p, x), z0, all_K, "kl", 1.0).mean())(params)
            w = jnp.where(t < cfg.liminal_steps, liminal_w, 0.0)
            g = jax.tree.map(lambda a, b: a + w * b, g, g_liminal)
            return g, l_distill, {"cos": cos, "class_loss": l_class, "distill_loss": l_distill}

        return training.descend(step, start, opt, cfg.steps)

    def program(key, x_tr, y_tr, x_te, y_te):
        theta0, indep, teacher, _, k_student = parts.setup(key, x_tr, y_tr)
        accuracy = parts.accuracy
        starts_C = jax.tree.map(lambda a, b: jnp.stack([a, a, a, b]), theta0, indep)  # order: CONDITIONS
        project_C = jnp.array([False, True, False, False])
        liminal_C = jnp.array([0.0, 0.0, cfg.liminal_weight, 0.0])
        students_C, log_C = jax.vmap(student, in_axes=(0, 0, 0, None, None, None, None, None))(
            starts_C, project_C, liminal_C, theta0, teacher, k_student, x_tr, y_tr)
        acc_C = jax.vmap(accuracy, in_axes=(0, None, None))(students_C, x_te, y_te)
        return {"reference": accuracy(theta0, x_te, y_te), "teacher": accuracy(teacher, x_te, y_te),
                "students": acc_C, "log": log_C}
    return program


def run(cfg: MultistepConfig, dataset: data_lib.Dataset, seed: int = 0) -> dict:
    """All seeds x conditions in one jit; returns accuracies and per-step cosine curves."""
    validate(cfg)
    x_tr, x_te = jnp.asarray(data_lib.scale(dataset.x_train)), jnp.asarray(data_lib.scale(dataset.x_test))
    keys = seed_keys(seed, cfg.seeds)
    prog = jax.jit(jax.vmap(make_program(cfg, x_tr.shape[1], x_tr.shape[0]), in_axes=(0, None, None, None, None)))
    out = jax.device_get(prog(keys, x_tr, jnp.asarray(dataset.y_train), x_te, jnp.asarray(dataset.y_test)))
    cos_SCU = np.asarray(out["log"]["cos"])
    return {
        "accuracy": {"reference": summarize(out["reference"]), "teacher": summarize(out["teacher"]),
                     **{c: summarize(out["students"][:, i]) for i, c in enumerate(CONDITIONS)}},
        "cos_mean": {c: float(cos_SCU[:, i].mean()) for i, c in enumerate(CONDITIONS)},
        "cos_fraction_positive": {c: float((cos_SCU[:, i] > 0).mean()) for i, c in enumerate(CONDITIONS)},
        "cos_curve": {c: cos_SCU[:, i].mean(0).tolist() for i, c in enumerate(CONDITIONS)},
        **{f"{name}_curve": {c: np.asarray(out["log"][name])[:, i].mean(0).tolist() for i, c in enumerate(CONDITIONS)}
           for name in ("class_loss", "distill_loss")},
        # distillation speed: mean aux KL over the last 10% of steps (does projection slow distillation?)
        "final_distill_loss": {c: float(np.asarray(out["log"]["distill_loss"])[:, i, -max(1, cfg.steps // 10):].mean())
                               for i, c in enumerate(CONDITIONS)},
        "config": dataclasses.asdict(cfg),
    }
