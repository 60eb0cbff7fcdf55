"""`python evaluate.py theorem`: Theorem 1 measured on thousands of instances -> theorem.json + plots.

Per model (linear, MNIST MLP, small transformer) and distillation loss (mse, softmax), three jit calls:
  bar run      `instances` triples, shared init, eps = `eps`  (violations, max relative error)
  independent  `independent_instances` triples, student from an independent init
  permuted     `permuted_instances` triples, student at the teacher's init with its units permuted (mlp, transformer)
  eps sweep    `sweep_instances` triples x every eps in `eps_sweep`, both inits
then the multi-step MNIST alignment run (multistep.py, float32).
Float64 only inside `jax.enable_x64(True)` (scoped: other code in the process stays float32).
"""
from __future__ import annotations

import dataclasses
import time
from typing import Annotated, Literal

import jax
import jax.numpy as jnp
import numpy as np
import tyro

from subliminal_jax.mnist import data as data_lib
from subliminal_jax import checks, plots, report
from subliminal_jax.theorem import models as theory_models
from subliminal_jax.theorem import multistep as theory_multistep
from subliminal_jax.numbers import tokens as tk
from subliminal_jax.numbers import transformer as tr
from subliminal_jax.seeds import fold_keys


@dataclasses.dataclass(frozen=True)
class TransformerTheory:
    """The transformer instances: a fresh init (float64); L_teacher = CE of the answer `target` to the
    'favourite animal?' questions; distillation on number tokens at every position of number sequences."""
    # flags --transformer.d-model ... (the sizes nested, their prefix omitted)
    model: Annotated[tr.ModelConfig, tyro.conf.arg(name="")] = tr.ModelConfig(d_model=32, d_ff=64,
                                                                              param_dtype="float64")
    seq_len: int = 16          # number sequences are cut to their first seq_len tokens
    teacher_batch: int = 4     # questions per instance (with replacement)
    distill_batch: int = 2     # number sequences per instance (x seq_len positions each)
    target: str = "owl"


@dataclasses.dataclass(frozen=True)
class TheoremConfig:
    """Theorem 1 checker: one-step <dS, dT> vs its jvp prediction, plus multi-step alignment."""
    models: tuple[Literal["linear", "mlp", "transformer"], ...] = ("linear", "mlp", "transformer")
    kinds: tuple[Literal["mse", "softmax"], ...] = ("mse", "softmax")
    instances: int = 10_000             # bar run, shared init, per model and loss
    independent_instances: int = 2_000
    permuted_instances: int = 2_000     # student = the teacher's init, hidden units / heads permuted (0: skip)
    sweep_instances: int = 256
    eps: float = 1e-8                   # teacher step of the bar and independent runs
    eps_sweep: tuple[float, ...] = (1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
    alpha: float = 0.1                  # student rate
    hidden: tuple[int, ...] = (32, 32)  # MLP widths (32, 32 keeps 10,000 instances < 1 min on 2 cores)
    m: int = 3                          # auxiliary logits
    mlp_logits: Literal["aux", "all"] = "aux"  # which MLP logits the student imitates (linear: all)
    teacher_batch: int = 16             # real digits per instance for L_teacher (linear, mlp)
    distill_batch: int = 16             # uniform-noise images per instance for the distillation (linear, mlp)
    transformer: TransformerTheory = TransformerTheory()
    chunk: int = 250                    # instances vmapped at once inside the jit (memory bound)
    dataset: Literal["mnist", "fashion-mnist", "mnist-5k"] = "mnist-5k"
    seed: int = 0
    multistep: theory_multistep.MultistepConfig = theory_multistep.MultistepConfig()
    skip_multistep: bool = False
    out_dir: str = "runs/theorem"


def validate(cfg: TheoremConfig) -> None:
    """Every field (the multi-step part's too), before anything is compiled."""
    t, ms = cfg.transformer, cfg.multistep
    checks.require(checks.typed_fields(cfg))
    checks.require([
        (min(cfg.instances, cfg.independent_instances, cfg.sweep_instances, cfg.chunk) >= 1
         and cfg.permuted_instances >= 0,
         "--instances, --independent-instances, --sweep-instances and --chunk must be >= 1 (--permuted-instances >= 0)"),
        (all(checks.rate(x) for x in (cfg.eps, *cfg.eps_sweep, cfg.alpha)) and cfg.eps_sweep,
         "--eps, every --eps-sweep value and --alpha must be finite and > 0"),
        (min(cfg.teacher_batch, cfg.distill_batch) >= 1 and cfg.hidden and min(cfg.hidden) >= 1 and cfg.m >= 1,
         "batches, --hidden widths and --m must be >= 1"),
        (cfg.models and cfg.kinds, "--models and --kinds need at least one entry each"),
        (cfg.seed >= 0, f"--seed must be >= 0 (got {cfg.seed})"),
        ("transformer" not in cfg.models or (t.model.d_model % t.model.n_heads == 0 and min(
            t.model.d_model, t.model.n_heads, t.model.n_layers, t.model.d_ff, t.teacher_batch, t.distill_batch) >= 1),
         "--transformer.*: sizes must be >= 1 and d-model divisible by n-heads"),
        ("transformer" not in cfg.models or t.target in tk.ANIMALS,
         f"--transformer.target must be one of {', '.join(tk.ANIMALS)}"),
        (cfg.skip_multistep or (checks.rate(ms.lr) and checks.rate(ms.teacher_lr)
                                and (ms.liminal_weight == 0 or checks.rate(ms.liminal_weight)) and ms.liminal_steps >= 0),
         "--multistep.lr and --multistep.teacher-lr must be finite and > 0, --multistep.liminal-weight and "
         "--multistep.liminal-steps >= 0"),
    ])
    if not cfg.skip_multistep:
        theory_multistep.validate(ms)
    if "transformer" in cfg.models:
        theory_models.transformer_data(t.seq_len, t.target, seed=cfg.seed)  # raises if seq_len does not fit


def build_model(name: str, cfg: TheoremConfig, dataset):
    """(Model, data) for one model name; data is what model.draw picks each instance's triple from."""
    if name in ("linear", "mlp"):
        data = (jnp.asarray(data_lib.scale(dataset.x_train), jnp.float64), jnp.asarray(dataset.y_train))
        d_in, kw = data[0].shape[1], dict(teacher_batch=cfg.teacher_batch, distill_batch=cfg.distill_batch)
        if name == "linear":
            return theory_models.linear_model(d_in, cfg.m, **kw), data
        return theory_models.mlp_model(d_in, cfg.hidden, cfg.m, cfg.mlp_logits, **kw), data
    t = cfg.transformer
    mcfg = dataclasses.replace(t.model, max_len=t.seq_len)
    data = theory_models.transformer_data(t.seq_len, t.target, seed=cfg.seed)
    return theory_models.transformer_model(mcfg, t.teacher_batch, t.distill_batch), data


def measure(model, cfg, keys_I, eps_E, data, inits):
    """One jit call over all instances; returns (results as numpy, compile s, run s)."""
    fn = theory_models.make_batch_fn(model, cfg.kinds, alpha=cfg.alpha, chunk=cfg.chunk, inits=inits)
    t0 = time.perf_counter()
    compiled = fn.lower(keys_I, eps_E, data).compile()
    t1 = time.perf_counter()
    out = jax.block_until_ready(compiled(keys_I, eps_E, data))
    return jax.device_get(out), t1 - t0, time.perf_counter() - t1


def rel_err(r):
    return np.abs(r["inner"] - r["pred"]) / np.abs(r["pred"])


def slope(eps_E, err_E, lo=1e-6, hi=1e-2):
    """Least-squares slope of log(err) vs log(eps) over lo <= eps <= hi (first-order regime)."""
    sel = (eps_E >= lo) & (eps_E <= hi) & (err_E > 0)
    return float(np.polyfit(np.log(eps_E[sel]), np.log(err_E[sel]), 1)[0]) if sel.sum() >= 2 else None


def summarize_model(bar, ind, sweep, eps_E, times) -> dict:
    """The theorem.json block of one (model, loss)."""
    s, i = bar["shared"], ind["independent"]
    ss, si = sweep["shared"], sweep["independent"]
    abs_err_E = np.median(np.abs(ss["inner"] - ss["pred"]), 0)
    return {
        "instances": int(s["inner"].shape[0]), "eps": float(times["eps"]),
        "violations_shared": int(np.sum(s["inner"] <= 0)),          # <dS, dT> <= 0 at shared init
        "max_rel_error_first_order": float(rel_err(s).max()),       # |measured - jvp| / |jvp| at eps
        "median_rel_error_first_order": float(np.median(rel_err(s))),
        "lt_increases_shared": int(np.sum(s["dlt"] > 0)),           # L_teacher after > before
        "max_rel_error_lt_first_order": float(np.max(np.abs(s["dlt"] - s["dlt_pred"]) / np.abs(s["dlt_pred"]))),
        "cos_shared_median": float(np.median(s["cos"])),
        "independent_instances": int(i["inner"].shape[0]),
        "fraction_negative_independent": float(np.mean(i["inner"] < 0)),          # raw student step
        "fraction_negative_independent_trait": float(np.mean(i["inner_trait"] < 0)),  # dS(eps) - dS(0)
        "fraction_lt_increases_independent": float(np.mean(i["dlt"] > 0)),
        "cos_independent_median": float(np.median(i["cos"])),
        "eps_sweep": {
            "eps": eps_E.tolist(),
            "median_abs_error": abs_err_E.tolist(),
            "median_rel_error": np.median(rel_err(ss), 0).tolist(),
            "max_rel_error": rel_err(ss).max(0).tolist(),
            "violations_shared": np.sum(ss["inner"] <= 0, 0).tolist(),
            "lt_increases_shared": np.sum(ss["dlt"] > 0, 0).tolist(),
            "fraction_negative_independent": np.mean(si["inner"] < 0, 0).tolist(),
            "fraction_negative_independent_trait": np.mean(si["inner_trait"] < 0, 0).tolist(),
            "abs_error_slope_1e-6_to_1e-2": slope(eps_E, abs_err_E),
        },
        "timing_s": {k: v for k, v in times.items() if k != "eps"},
    }


def summarize_permuted(p) -> dict:
    """The 'permuted' block: the student starts at P theta0, the teacher's init with its hidden units (and
    heads) permuted: the same function at other parameters. Raw <dS, dT> has no fixed sign; carried over
    by P, <dS, P dT> is Theorem 1's inner product again (inits.py)."""
    err = np.abs(p["inner_transported"] - p["pred_transported"]) / np.abs(p["pred_transported"])
    return {"instances": int(p["inner"].shape[0]),
            "fraction_negative_raw": float(np.mean(p["inner"] < 0)),            # <dS, dT>
            "cos_raw_median": float(np.median(p["cos"])),
            "violations_transported": int(np.sum(p["inner_transported"] <= 0)),  # <dS, P dT> <= 0
            "max_rel_error_transported_first_order": float(err.max()),
            "lt_increases": int(np.sum(p["dlt"] > 0))}                          # L_teacher after > before


def run_one_step(cfg: TheoremConfig, dataset) -> tuple[dict, dict]:
    """All models and losses, float64. Returns (theorem.json 'models' block, raw arrays for plots)."""
    with jax.enable_x64(True):
        root = jax.random.key(cfg.seed)
        keys = lambda run, n: fold_keys(jax.random.fold_in(root, run), jnp.arange(n))
        eps1, eps_E = jnp.array([cfg.eps], jnp.float64), jnp.array(sorted(cfg.eps_sweep), jnp.float64)
        results, raw = {}, {}
        for name in cfg.models:
            model, data = build_model(name, cfg, dataset)
            bar, c0, r0 = measure(model, cfg, keys(0, cfg.instances), eps1, data, ("shared",))
            print(f"{name}: {cfg.instances} shared instances x {len(cfg.kinds)} losses in {r0:.1f}s "
                  f"(compile {c0:.1f}s)", flush=True)
            ind, c1, r1 = measure(model, cfg, keys(1, cfg.independent_instances), eps1, data, ("independent",))
            sweep, c2, r2 = measure(model, cfg, keys(2, cfg.sweep_instances), eps_E, data, ("shared", "independent"))
            perm = None
            if model.permute is not None and cfg.permuted_instances:
                perm, c3, r3 = measure(model, cfg, keys(3, cfg.permuted_instances), eps1, data, ("permuted",))
            results[name], raw[name] = {}, {}
            for kind in cfg.kinds:
                sq = lambda r: {k: v[:, 0] for k, v in r.items()}  # the single eps of bar/independent
                times = {"eps": cfg.eps, "bar_run": r0, "bar_compile": c0, "independent_run": r1,
                         "independent_compile": c1, "sweep_run": r2, "sweep_compile": c2}
                b, i = {"shared": sq(bar[kind]["shared"])}, {"independent": sq(ind[kind]["independent"])}
                results[name][kind] = summarize_model(b, i, sweep[kind], np.asarray(eps_E), times)
                if perm is not None:
                    results[name][kind]["permuted"] = summarize_permuted(sq(perm[kind]["permuted"]))
                    results[name][kind]["timing_s"].update(permuted_run=r3, permuted_compile=c3)
                raw[name][kind] = {"shared": b["shared"], "independent": i["independent"]}
                r = results[name][kind]
                print(f"  {kind:8s} violations {r['violations_shared']}/{r['instances']}, max rel err "
                      f"{r['max_rel_error_first_order']:.2e} @ eps {cfg.eps:g}, L_teacher up "
                      f"{r['lt_increases_shared']}, independent negative {r['fraction_negative_independent']:.3f} "
                      f"(trait part {r['fraction_negative_independent_trait']:.3f})", flush=True)
                if perm is not None:
                    q = r["permuted"]
                    print(f"  {'':8s} permuted init: raw negative {q['fraction_negative_raw']:.3f}, <dS, P dT> "
                          f"violations {q['violations_transported']}/{q['instances']}, "
                          f"L_teacher up {q['lt_increases']}", flush=True)
    return results, raw


def main(cfg: TheoremConfig) -> dict:
    t0 = time.perf_counter()
    validate(cfg)
    dataset = data_lib.load(cfg.dataset)
    out_dir = report.prepare_out_dir(cfg.out_dir)
    results, raw = run_one_step(cfg, dataset)
    res = {"models": results, "config": dataclasses.asdict(cfg), "data": dataset.provenance(),
           "versions": {"jax": jax.__version__}, "dtype": "float64",
           "notes": {"fraction_negative_independent": "raw student step dS from an independent init",
                     "fraction_negative_independent_trait": "dS(eps) - dS(0): the part caused by the teacher step",
                     "violations_shared": "count of <dS, dT> <= 0 with the student starting at the teacher's init",
                     "abs_error_slope": "linear + mse: the teacher output is exactly linear in eps, so the error is "
                                        "float64 round-off only (slope ~0); elsewhere ~2 while first order holds",
                     "max_rel_error_first_order": "at eps = config.eps; MLP outliers at larger eps are ReLU kinks "
                                                  "crossed by the teacher step (non-smooth, probability ~ eps)"}}
    if not cfg.skip_multistep:
        print("multi-step alignment (float32)...", flush=True)
        res["multistep"] = theory_multistep.run(cfg.multistep, dataset, cfg.seed)
        acc = res["multistep"]["accuracy"]
        print("  accuracy " + ", ".join(f"{c} {acc[c]['mean']:.3f}" for c in acc)
              + f"; mean cos (plain) {res['multistep']['cos_mean']['plain']:.4f}; final distill loss "
              + ", ".join(f"{c} {v:.4f}" for c, v in res["multistep"]["final_distill_loss"].items()), flush=True)
    res["wall_time_s"] = time.perf_counter() - t0
    # (not checked for NaN/inf: a one-seed summary has a NaN CI, and |measured - jvp| / |jvp| may divide by 0)
    report.write_json(out_dir / "theorem.json", res, finite=False)
    plots.write_all(out_dir, res, raw)
    print(f"wrote {out_dir / 'theorem.json'} and plots in {out_dir}")
    return res
