"""Writing results: atomic JSON, and the plots (PNG, matplotlib Agg)."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from subliminal_jax import checks, multihost  # noqa: E402
from subliminal_jax.errors import UserError  # noqa: E402


def prepare_out_dir(path: str) -> Path:
    """Create the output folder up front, so a bad path fails before any training."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out, prefix=".write-test", delete=True)
        probe.close()
    except OSError as e:
        raise UserError(f"--out-dir {path}: cannot write there ({e.strerror}); choose a writable folder") from None
    return out


def _write_atomically(path: Path, write) -> None:
    """write(tmp) to a temp file beside path, then rename: a crash or a full disk never leaves half a file
    under the real name. The temp file is opened like any file the user writes (umask permissions, not 0600).
    In a run of several processes only process 0 writes (they all hold the same results)."""
    if not multihost.is_main():
        return
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write {path} ({e.strerror or e}); free space or choose a writable --out-dir") \
            from None


def write_json(path: Path, obj, finite: bool = True) -> None:
    """Write JSON atomically; finite=True (results, audit, lens, sweeps) refuses NaN or inf, writing nothing."""
    bad = checks.first_non_finite(obj) if finite else None
    if bad:
        raise UserError(f"{Path(path).name} not written: {bad} is not finite (NaN or inf); likely a diverged "
                        f"training (lower the learning rates) or nothing to measure (e.g. no kept rows)")

    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1)
    _write_atomically(path, write)


def save_figure(fig, path: Path, dpi: int = 120) -> None:
    """tight_layout, save atomically as PNG, close."""
    fig.tight_layout()
    try:
        _write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))
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
    """Number sweep (numbers_sweep.py): paired P(target) shift of each student against the kept completions
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
    """What must be shared (numbers_ablation.py): each row's paired P(target) shift (95% CI) against the
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
