"""Theorem 1 (Cloud et al. 2025), one step, measured exactly and against its first-order form.

Any model plugs in: f = apply(params, x_BD) -> logits_BK (a pure function),
L_teacher = teacher_loss(params, teacher_data) -> scalar (any teacher loss). Equations:

  (E1) teacher step      dT = -grad L_teacher(theta0),  theta_teacher = theta0 + eps * dT
  (E2) distillation      L_distill(th) = mean_x l(f(th, x), f(theta_teacher, x)) on the logits in mask_K:
                           "mse":     l = 1/2 sum_k (z_k - t_k)^2
                           "softmax": l = -sum_k softmax(t)_k log softmax(z)_k  (CE; same gradient as KL)
  (E3) student step      dS = -alpha * grad L_distill(theta_student)   (exact, from the student's start theta_student)
  (E4) first order in eps, with u_student = J(theta_student) dT, u0 = J(theta0) dT (both by jax.jvp):
                           <dS, dT> ~= alpha * eps * mean_x u_student^T M u0,
                           M = I_mask (mse)  or  diag p - p p^T, p = softmax(f(theta0, x)) (softmax)
        Shared init (theta_student = theta0): u_student = u0 and M is PSD, so <dS, dT> >= 0 (Theorem 1).
  (E5) after the step: L_teacher(theta_student + dS) ~= L_teacher(theta_student) + <grad L_teacher(theta_student), dS>
        (shared init: = L_teacher(theta0) - <dS, dT> <= L_teacher(theta0)).

Re-parameterized init (theta_student = P theta0, inits.py: the same function, other parameters):
gradient descent is equivariant under P, so dS = P dS_shared and <dS, dT> has no fixed sign, but
with the teacher's step carried over, <dS, P dT> = <dS_shared, dT> >= 0 and L_teacher still falls.
`transport` = P reports that inner product (E4 with u_student = J(theta_student) P dT = u0) and (E5) with it.

Independent init: the raw dS also contains the eps-independent pull toward f(theta0, .)
from a different starting point, so its sign is arbitrary. We also report the
trait-induced part dS(eps) - dS(0) (the student's displacement caused by the
teacher's step; at shared init dS(0) = 0 exactly, so both coincide there);
(E4) predicts it with u_student != u0, which has no fixed sign either.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from subliminal_jax.errors import UserError
from subliminal_jax.losses import distill_loss_B, squared_error_B
from subliminal_jax.losses import masked_log_softmax as _log_softmax  # for M of (E4)

KINDS = ("mse", "softmax")


def tree_dot(a, b):
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def distill_loss(kind: str, z_BK, t_BK, mask_K):
    """(E2): mean over examples of l(z, t) on the logits in mask_K."""
    if kind == "mse":
        return 0.5 * jnp.mean(squared_error_B(z_BK, t_BK, mask_K))
    if kind == "softmax":
        return jnp.mean(distill_loss_B(z_BK, t_BK, mask_K, "ce"))
    raise UserError(f"distillation loss {kind!r}: use one of {', '.join(KINDS)}")


def metric_times(kind: str, z0_BK, u_BK, mask_K):
    """M u of (E4): the loss's Hessian in the logits at the shared teacher output z0."""
    u = jnp.where(mask_K, u_BK, 0.0)
    if kind == "mse":
        return u
    p = jnp.exp(_log_softmax(z0_BK, mask_K))
    return p * (u - jnp.sum(p * u, -1, keepdims=True))  # (diag p - p p^T) u


def one_step(apply, teacher_loss, theta0, theta_student, teacher_data, x_BD, mask_K, *, kind: str, eps, alpha,
             transport=None):
    """Everything Theorem 1 talks about, for one (init, teacher data, distillation inputs) triple.

    Pass theta_student = theta0 (the same object) for the shared init: that path skips the terms known
    to coincide (an equal but distinct pytree is also correct, only slower). Returns a dict of
    scalars: inner = <dS, dT>, inner_trait = <dS(eps) - dS(0), dT>, pred = (E4), cos, cos_trait,
    lt_before/lt_after/dlt = L_teacher around the step, dlt_pred = (E5) given dS (shared init only, else NaN).
    With transport (theta_student = P theta0, P a function-preserving map on parameter trees) also
    inner_transported = <dS, P dT> and pred_transported = (E4) for it, and dlt_pred = -inner_transported.
    vmap it over instances and/or eps.
    """
    g_teacher = jax.grad(teacher_loss)(theta0, teacher_data)
    dT = jax.tree.map(jnp.negative, g_teacher)                               # (E1)
    theta_teacher = jax.tree.map(lambda a, d: a + eps * d, theta0, dT)
    t_BK = apply(theta_teacher, x_BD)

    def student_step(targets_BK):                                            # (E3)
        g = jax.grad(lambda th: distill_loss(kind, apply(th, x_BD), targets_BK, mask_K))(theta_student)
        return jax.tree.map(lambda a: -alpha * a, g)
    dS = student_step(t_BK)
    shared = theta_student is theta0  # then dS(0) = 0, u_student = u0, grad L_teacher(theta_student) = -dT: reused
    dS_trait = dS if shared else jax.tree.map(jnp.subtract, dS, student_step(apply(theta0, x_BD)))

    z0_BK, u0_BK = jax.jvp(lambda th: apply(th, x_BD), (theta0,), (dT,))      # (E4)
    u_student_BK = u0_BK if shared else jax.jvp(lambda th: apply(th, x_BD), (theta_student,), (dT,))[1]
    metric_u0_BK = metric_times(kind, z0_BK, u0_BK, mask_K)
    pred = alpha * eps * jnp.mean(jnp.sum(u_student_BK * metric_u0_BK, -1))

    # (E5); at an independent init the prediction would need grad L_teacher(theta_student): skipped (NaN) to save time.
    lt_before = teacher_loss(theta_student, teacher_data)
    lt_after = teacher_loss(jax.tree.map(jnp.add, theta_student, dS), teacher_data)
    inner, inner_trait = tree_dot(dS, dT), tree_dot(dS_trait, dT)
    norm = lambda t: jnp.sqrt(tree_dot(t, t))
    extra = {}
    if transport is not None:  # the teacher's step in the student's coordinates: J(theta_student) P dT = u0
        dT_transported = transport(dT)
        u_transported_BK = jax.jvp(lambda th: apply(th, x_BD), (theta_student,), (dT_transported,))[1]
        inner_transported = tree_dot(dS, dT_transported)
        extra = {"inner_transported": inner_transported, "dlt_pred": -inner_transported,
                 "pred_transported": alpha * eps * jnp.mean(jnp.sum(u_transported_BK * metric_u0_BK, -1))}
    return {
        "inner": inner, "inner_trait": inner_trait, "pred": pred,
        "cos": inner / (norm(dS) * norm(dT)), "cos_trait": inner_trait / (norm(dS_trait) * norm(dT)),
        "lt_before": lt_before, "lt_after": lt_after,
        "dlt": lt_after - lt_before, "dlt_pred": -inner if shared else jnp.nan * inner, **extra,
    }
