"""Plots of the Theorem 1 checker (PNG, matplotlib Agg via report.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from subliminal_jax import report
from subliminal_jax.report import plt


def _panels(by_model):
    return [(m, k) for m in by_model for k in by_model[m]]


def write_all(out_dir: Path, res: dict, raw: dict) -> None:
    """Every figure of `evaluate.py theorem` (raw: {model: {loss: {init: {metric: (I,)}}}})."""
    inner_distribution(out_dir / "inner_distribution.png", raw, res["config"]["eps"])
    measured_vs_predicted(out_dir / "measured_vs_predicted.png", raw)
    error_vs_eps(out_dir / "error_vs_eps.png", res["models"])
    if res.get("multistep"):
        multistep(out_dir / "multistep.png", res["multistep"])


def inner_distribution(path: Path, raw: dict, eps: float) -> None:
    """Histograms of cos(dS, dT) per model and loss: shared vs independent init."""
    panels = _panels(raw)
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(4 * n, 3.4), squeeze=False)
    for ax, (m, k) in zip(axes[0], panels):
        for init, color in (("shared", "tab:blue"), ("independent", "tab:red")):
            ax.hist(raw[m][k][init]["cos"], bins=60, alpha=0.6, color=color, label=init, density=True)
        ax.axvline(0, color="k", lw=0.8)
        ax.set_title(f"{m}, {k}")
        ax.set_xlabel("cos(dS, dT)")
    axes[0, 0].set_ylabel("density")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"one-step <dS, dT> (as cosine), eps = {eps:g}")
    report.save_figure(fig, path, dpi=110)


def measured_vs_predicted(path: Path, raw: dict) -> None:
    """Measured <dS, dT> against its first-order (jvp) prediction, shared init."""
    panels = _panels(raw)
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(4 * n, 3.6), squeeze=False)
    for ax, (m, k) in zip(axes[0], panels):
        r = raw[m][k]["shared"]
        sel = slice(0, 3000)
        ax.loglog(r["pred"][sel], r["inner"][sel], ".", ms=2)
        lo, hi = r["pred"].min(), r["pred"].max()
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_title(f"{m}, {k}")
        ax.set_xlabel("predicted alpha*eps*E[u^T M u]")
    axes[0, 0].set_ylabel("measured <dS, dT>")
    fig.suptitle("shared init: measured vs first-order prediction")
    report.save_figure(fig, path, dpi=110)


def error_vs_eps(path: Path, models: dict) -> None:
    """Log-log error of the prediction vs eps: slope 2 (absolute) where first order holds.
    models: {model: {loss: {"eps_sweep": {"eps", "median_abs_error", "median_rel_error"}}}}."""
    panels = _panels(models)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for m, k in panels:
        sw = models[m][k]["eps_sweep"]
        axes[0].loglog(sw["eps"], sw["median_abs_error"], "o-", label=f"{m}, {k}")
        axes[1].loglog(sw["eps"], sw["median_rel_error"], "o-", label=f"{m}, {k}")
    eps = np.array(panels and models[panels[0][0]][panels[0][1]]["eps_sweep"]["eps"])
    if eps.size:
        axes[0].loglog(eps, eps ** 2, "k:", label="slope 2")
        axes[1].loglog(eps, eps, "k:", label="slope 1")
    axes[0].set_ylabel("median |measured - predicted|")
    axes[1].set_ylabel("median relative error")
    for ax in axes:
        ax.set_xlabel("teacher step eps")
        ax.legend(fontsize=7)
    fig.suptitle("first-order error vs eps (floor at small eps: float64 round-off)")
    report.save_figure(fig, path, dpi=110)


def multistep(path: Path, ms: dict) -> None:
    """The multi-step alignment curve per condition, and the final accuracies."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    w = 10
    for c, curve in ms["cos_curve"].items():
        smooth = np.convolve(curve, np.ones(w) / w, mode="valid")
        axes[0].plot(np.arange(len(smooth)) + w - 1, smooth, label=f"{c} (mean {ms['cos_mean'][c]:.4f})")
    axes[0].axhline(0, color="k", lw=0.8)
    axes[0].set_xlabel("student step")
    axes[0].set_ylabel(f"cos(g_distill, g_class), {w}-step mean")
    axes[0].legend(fontsize=8)
    acc = ms["accuracy"]
    names = list(acc)
    axes[1].bar(range(len(names)), [acc[c]["mean"] for c in names],
                yerr=[acc[c]["ci95_half"] for c in names], capsize=4, alpha=0.75)
    axes[1].set_xticks(range(len(names)), names, fontsize=8)
    axes[1].set_ylabel("test accuracy (class logits)")
    fig.suptitle("multi-step MNIST aux-logit distillation: alignment and transfer")
    report.save_figure(fig, path, dpi=110)
