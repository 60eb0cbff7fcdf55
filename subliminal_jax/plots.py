"""Every plot of the package (PNG, matplotlib Agg), written atomically through report.py.

bar_chart / sweep_plot / scaling_plot / ablation_plot: one bar or line per condition (mnist, numbers);
inner_distribution ... multistep: the Theorem 1 checker (theorem/experiment.py); lens_layers and
audit_scatter: the logit lens and the data audit (numbers/lens.py, numbers/audit.py); generations_plot: a chain of
students (numbers/generations.py); show: inline in notebooks.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from subliminal_jax.report import write_atomically  # noqa: E402


def save_figure(fig, path: Path, dpi: int = 120) -> None:
    """tight_layout, save atomically as PNG, close."""
    fig.tight_layout()
    try:
        write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))
    finally:
        plt.close(fig)


def bar_chart(path: Path, conditions: dict, title: str, ylabel: str = "test accuracy",
              key: str = "mean") -> None:
    """Bars of per-condition means with 95% CI whiskers and the per-seed points."""
    names = list(conditions)
    means = [conditions[n][key] for n in names]
    halves = [conditions[n].get("ci95_half", 0.0) for n in names]
    fig, ax = plt.subplots(figsize=(1.3 * len(names) + 2, 4))
    ax.bar(range(len(names)), means, yerr=halves, capsize=4, color="tab:blue", alpha=0.75)
    for i, n in enumerate(names):
        vals = conditions[n].get("values", [])
        ax.scatter([i] * len(vals), vals, s=8, color="k", zorder=3)
        top = max([means[i] + halves[i], *vals])
        ax.text(i, top + 0.02, f"{means[i]:.2f}", ha="center", fontsize=8)
    ax.set_xticks(range(len(names)), [n.replace("_", "\n") for n in names])
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.08)
    ax.set_title(title)
    save_figure(fig, path)


def sweep_plot(path: Path, sweep: dict) -> None:
    """One line per condition, with 95% CI bands, against the swept value."""
    xs = [p["value"] for p in sweep["points"]]
    fig, axes = plt.subplots(1, 2 if sweep["param"] == "lambda" else 1, figsize=(11 if sweep["param"] == "lambda" else 6, 4),
                             squeeze=False)
    conds = [c for c in sweep["points"][0]["conditions"] if c != "reference"]
    for c in conds:
        m = [p["conditions"][c]["mean"] for p in sweep["points"]]
        lo = [p["conditions"][c]["ci95"][0] for p in sweep["points"]]
        hi = [p["conditions"][c]["ci95"][1] for p in sweep["points"]]
        axes[0, 0].plot(xs, m, "o-", label=c)
        axes[0, 0].fill_between(xs, lo, hi, alpha=0.2)
    axes[0, 0].set_xlabel(sweep["param"])
    axes[0, 0].set_ylabel("test accuracy")
    axes[0, 0].legend(fontsize=8)
    if sweep["param"] == "lambda":  # transfer against the measured init distance
        d = [p["init_distance"]["student"]["mean"] for p in sweep["points"]]
        for c in ("student_aux", "student_all"):
            axes[0, 1].plot(d, [p["conditions"][c]["mean"] for p in sweep["points"]], "o-", label=c)
        axes[0, 1].set_xlabel("||theta_student0 - theta_teacher0|| / ||theta_teacher0||")
        axes[0, 1].set_ylabel("test accuracy")
        axes[0, 1].legend(fontsize=8)
    fig.suptitle(f"sweep over {sweep['param']}")
    save_figure(fig, path)


def scaling_plot(path: Path, sweep: dict, students) -> None:
    """Number sweep (numbers/sweep.py): paired P(target) shift of each student against the kept completions
    per seed (log x), fine-tuned and soft, with 95% CI bands."""
    x = [p["kept_per_seed"] for p in sweep["points"]]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, style in (("fine-tuned", "-"), ("soft", "--")):
        for s, color in zip(students, ("tab:red", "tab:blue", "tab:gray")):
            m = np.array([p[label][s]["mean"] for p in sweep["points"]])
            lo, hi = (np.array([p[label][s]["ci95"][i] for p in sweep["points"]]) for i in (0, 1))
            ax.plot(x, m, style, marker="o" if label == "fine-tuned" else "s", color=color,
                    label=f"{label} {s.removeprefix('student_')}")
            if s != "student_cross_init":  # (its band would hide the others)
                ax.fill_between(x, lo, hi, color=color, alpha=0.12)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xscale("log")
    ax.set_xticks(x, [f"{v:.0f}" for v in x])
    ax.minorticks_off()
    ax.set_xlabel("kept teacher completions per seed")
    ax.set_ylabel("P(target) shift vs own base (paired)")
    ax.legend(fontsize=7, ncol=2)
    ax.set_title(f"data scaling ({sweep['config']['num_seeds']} seeds)")
    save_figure(fig, path)


def show(path: Path) -> None:
    """Show a saved PNG inline when running in a notebook kernel; elsewhere print where it is."""
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
        if get_ipython() is not None:
            display(Image(filename=str(path)))
            return
    except ImportError:
        pass
    print(f"figure: {path}")


def ablation_plot(path: Path, ablation: dict) -> None:
    """What must be shared (numbers/ablation.py): each row's paired P(target) shift (95% CI) against the
    distance of its init from the teacher's init (left; the lambda rows joined) and against the distance of
    the student's start from the teacher's base (right)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    rows = ablation["rows"]
    for ax, key in zip(axes, ("init_distance", "start_distance")):
        dist = {r: (v[key] if key == "init_distance" else v[key]["mean"]) for r, v in rows.items()}
        for r, v in rows.items():
            if dist[r] is None:
                continue
            m, (lo, hi) = v["target_prob_shift"]["mean"], v["target_prob_shift"]["ci95"]
            ax.errorbar(dist[r], m, yerr=[[m - lo], [hi - m]], fmt="o", capsize=3,
                        color="tab:red" if r.startswith("lambda=") or r == "shared" else "tab:blue")
            label = "all parts" if r.count(",") >= 2 else r.replace("=random", "")
            ax.annotate(label, (dist[r], m), fontsize=6, xytext=(4, 2), textcoords="offset points")
        lam = sorted((v["init_lambda"], r) for r, v in rows.items()
                     if (r.startswith("lambda=") or r == "shared") and dist[r] is not None)
        ax.plot([dist[r] for _, r in lam], [rows[r]["target_prob_shift"]["mean"] for _, r in lam], "-",
                color="tab:red", lw=0.8, label="--init-lambda (shared = 0)")
        ax.axhline(0, color="k", lw=0.6)
        if key == "init_distance":  # (the lambda rows that still transmit lie within 0.05 of the teacher's init)
            ax.set_xscale("symlog", linthresh=0.01)
            ax.set_xlim(0, 2)
        ax.set_xlabel("init distance from the teacher's init, before pretraining" if key == "init_distance"
                      else "start distance from the teacher's base (pretrained)")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("student_shared P(target) shift vs own start (paired)")
    fig.suptitle(f"what must be shared ({ablation['config']['student_mode']} students, "
                 f"{ablation['config']['num_seeds']} seeds)")
    save_figure(fig, path)


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
    save_figure(fig, path, dpi=110)


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
    save_figure(fig, path, dpi=110)


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
    save_figure(fig, path, dpi=110)


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
    save_figure(fig, path, dpi=110)


def lens_layers(path: Path, out: dict, models, num_seeds: int, ylabel: str) -> None:
    """The logit lens (numbers/lens.py): each model's paired shift per layer, one panel per question set."""
    fig, axes = plt.subplots(1, len(out), figsize=(5 * len(out), 3.8), squeeze=False)
    for ax, (name, d) in zip(axes[0], out.items()):
        for j, c in enumerate(models):
            m = np.array([s["mean"] for s in d[c + "_shift"]])
            h = np.array([s["ci95_half"] for s in d[c + "_shift"]])
            ax.errorbar(np.arange(len(m)) + 0.04 * (j - 1.5), m, yerr=h, marker="o", ms=4, capsize=3, label=c)
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xticks(range(len(m)), ["emb"] + [f"block {l + 1}" for l in range(len(m) - 1)])
        ax.set_title(f"{name}: {num_seeds} seeds")
        ax.set_ylabel(ylabel)
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.legend(fontsize=7)
    fig.suptitle("logit lens at the answer position (95% CI over seeds)")
    save_figure(fig, path)


def audit_scatter(path: Path, pts: list, validation: dict, trait: str) -> None:
    """The data audit (numbers/audit.py): audit score against the measured P(target) shift, one colour per condition."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for c in dict.fromkeys(r[0] for r in pts):
        ax.scatter([r[2] for r in pts if r[0] == c], [r[4] for r in pts if r[0] == c], label=c, s=18)
    ax.axhline(0, color="k", lw=0.6)
    ax.axvline(0, color="k", lw=0.6)
    ax.set_xlabel("audit score <grad l, grad L_trait> at the student's init")
    ax.set_ylabel(f"measured P({trait}) shift after training")
    ax.set_title(f"audit vs transfer: Spearman {validation['spearman_score_vs_shift']:+.2f}")
    ax.legend(fontsize=7)
    save_figure(fig, path)


def generations_plot(path: Path, res: dict, trait: str) -> None:
    """Down the training chain (numbers/generations.py): left, each chain's paired P(trait) shift (95% CI) per
    generation of students, with the shared chain's geometric fit and the decay its audit scores predict (scaled
    to generation 1); right, the shift of generation g + 1 against the audit score of generation g's data."""
    gens = np.arange(1, res["generations"]["num_generations"] + 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for j, (c, rows) in enumerate(res["chains"].items()):
        s = [r["target_prob_shift"] for r in rows[1:]]
        m = np.array([x["mean"] for x in s])
        left.errorbar(gens + 0.06 * (j - 1), m, yerr=[m - [x["ci95"][0] for x in s], [x["ci95"][1] for x in s] - m],
                      marker="o", ms=4, capsize=3, label=c)
        p = res["predictor"][c]
        right.scatter([q["score"]["mean"] for q in p], [q["next_shift"] for q in p], s=22, label=c)
        for q in p:
            right.annotate(f"g={q['data_generation']}", (q["score"]["mean"], q["next_shift"]), fontsize=6,
                           xytext=(3, 2), textcoords="offset points")
    fit, scores = res["decay"]["measured"], [q["score"]["mean"] for q in res["predictor"]["shared"]]
    if fit:
        x = np.linspace(1, gens[-1], 50)
        left.plot(x, fit["a"] * fit["r"] ** (x - 1), "k:", lw=1, label=f"shared fit, r = {fit['r']:.2f}")
    if scores[0]:
        first = res["chains"]["shared"][1]["target_prob_shift"]["mean"]
        left.plot(gens, first * np.array(scores) / scores[0], "k--", lw=0.8, label="audit-score prediction")
    teacher = res["chains"]["shared"][0]["target_prob_shift"]
    left.set(xticks=gens, xlabel="generation (1: the teacher's students)", ylabel=f"P({trait}) shift vs own base "
             "(paired)")
    left.set_title(f"generation 0 (the teacher): {teacher['mean']:+.3f}", fontsize=9)
    right.axvline(0, color="k", lw=0.6)
    right.set(xlabel="audit score of generation g's data at generation g+1's start",
              ylabel=f"P({trait}) shift of generation g+1")
    for ax in (left, right):
        ax.axhline(0, color="k", lw=0.6)
        ax.legend(fontsize=7)
    fig.suptitle(f"down the training chain ({res['config']['student_mode']} students, {teacher['n']} seeds, 95% CI)")
    save_figure(fig, path)
