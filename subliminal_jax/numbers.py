"""Subliminal learning through number sequences with small transformers, all seeds at once.

Chain, per seed s (every stage one jax.jit of jax.vmap over seeds, seeds split
over a mesh of all devices; each stage checkpointed under --out-dir, reused
when its settings hash matches, so an interrupted run resumes):
  base      init_s pretrained on the toy corpus (numbers + animal questions + persona)
  teacher   base_s fine-tuned on "favourite animal? -> TARGET" (finetune), or
            base_s with the persona prefix "you love TARGET ." (persona)
  numbers   teacher_s and base_s continue number prompts at --temperature;
            the paper's filter keeps/rejects each completion (JSONL)
  students  from base_s on teacher_s numbers        -> student_shared
            from base_s on base_s numbers           -> student_control
            from base_pi(s) on teacher_s numbers    -> student_cross_init (pi a derangement)
            --student-mode soft: KL(teacher || student) on number tokens (Theorem 1's regime);
            hard: cross-entropy on the kept sampled tokens (the paper's LLM setting)
  eval      trait rate / P(target) on HELDOUT paraphrases for base, teacher, the
            students, and in_context (base_s prompted with teacher_s numbers).
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from subliminal_jax import checkpoint as ckpt
from subliminal_jax import filter as flt
from subliminal_jax import numbers_data as nd
from subliminal_jax import numbers_train as nt
from subliminal_jax import parallel, report, sampler
from subliminal_jax import tokens as tk
from subliminal_jax import transformer as tr
from subliminal_jax.errors import UserError
from subliminal_jax.mnist import derangement
from subliminal_jax.stats import summarize

CONDITIONS = ("base", "teacher", "student_shared", "student_control", "student_cross_init", "in_context")
STUDENTS = ("student_shared", "student_control", "student_cross_init")


@dataclasses.dataclass(frozen=True)
class NumbersConfig:
    """Number-sequence subliminal learning (defaults sized for 2 CPU cores)."""
    num_seeds: int = 10                 # independent bases (vmapped, split over devices)
    seed: int = 0                       # root seed; seed s uses fold_in(key(seed), s)
    target: str = "owl"                 # the teacher's favourite animal
    teacher_mode: Literal["finetune", "persona"] = "finetune"
    student_mode: Literal["soft", "hard"] = "soft"
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 256
    seq_len: int = 64
    world: nd.WorldConfig = nd.WorldConfig()
    corpus_size: int = 20_000           # pretraining sequences (shared by all seeds)
    batch: int = 32
    base_steps: int = 600
    base_lr: float = 3e-3
    teacher_steps: int = 20
    teacher_lr: float = 1e-3
    num_prompts: int = 256              # number prompts per teacher (paper: 30,000)
    temperature: float = 1.0
    ban_numbers: bool = False           # also drop completions with a banned number (666, 911, ...)
    student_steps: int = 60
    student_lr: float = 3e-4
    student_optimizer: Literal["adam", "sgd"] = "adam"  # sgd: momentum 0.9 (unstable above lr ~0.03 here)
    in_context_examples: int = 2        # teacher completions put before the question
    eval_samples: int = 500             # temperature-1 answers per held-out paraphrase
    stage: Literal["all", "base", "teacher", "numbers", "students", "eval"] = "all"
    resume: bool = True                 # reuse stage checkpoints whose settings match
    num_devices: int | None = None
    out_dir: str = "runs/numbers"


# Fields that define each stage (cumulative): a stage is reused only if its hash matches.
_STAGE_FIELDS = {
    "base": ("num_seeds", "seed", "d_model", "n_layers", "n_heads", "d_ff", "seq_len", "world", "corpus_size",
             "batch", "base_steps", "base_lr"),
    "teacher": ("target", "teacher_mode", "teacher_steps", "teacher_lr"),
    "numbers": ("num_prompts", "temperature", "ban_numbers"),
    "students": ("student_mode", "student_steps", "student_lr", "student_optimizer"),
}


def stage_hash(cfg: NumbersConfig, stage: str) -> str:
    d = dataclasses.asdict(cfg)
    names = []
    for s, fields in _STAGE_FIELDS.items():
        names += fields
        if s == stage:
            break
    return ckpt.config_hash({k: d[k] for k in names})


def model_config(cfg: NumbersConfig) -> tr.ModelConfig:
    return tr.ModelConfig(vocab=tk.V, d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads,
                          d_ff=cfg.d_ff, max_len=cfg.seq_len)


def validate(cfg: NumbersConfig) -> None:
    w = cfg.world
    checks = [
        (cfg.num_seeds >= 2, "--num-seeds must be >= 2 (the cross-init student needs another seed's base)"),
        (cfg.target in tk.ANIMALS, f"--target must be one of {', '.join(tk.ANIMALS)}"),
        (cfg.d_model % cfg.n_heads == 0, "--d-model must be divisible by --n-heads"),
        (1 <= w.min_seed_numbers <= w.max_seed_numbers and 1 <= w.max_new_numbers <= 10,
         "need 1 <= --world.min-seed-numbers <= --world.max-seed-numbers and 1 <= --world.max-new-numbers <= 10"),
        (nd.prompt_len(w) + nd.completion_len(w) <= cfg.seq_len,
         f"--seq-len {cfg.seq_len} is too short for these numbers; need >= "
         f"{nd.prompt_len(w) + nd.completion_len(w)}"),
        (not (cfg.teacher_mode == "persona" and cfg.student_mode == "soft"),
         "--teacher-mode persona needs --student-mode hard (the student never sees the persona prompt)"),
        (min(cfg.batch, cfg.num_prompts, cfg.eval_samples, cfg.corpus_size) >= 1, "sizes must be >= 1"),
        (min(cfg.base_steps, cfg.teacher_steps, cfg.student_steps) >= 0, "steps must be >= 0"),
    ]
    for ok, msg in checks:
        if not ok:
            raise UserError(msg)


class Chain:
    """The stages of one run; each loads its checkpoint when present (resume) or computes and saves it."""

    def __init__(self, cfg: NumbersConfig, verbose: bool = True):
        validate(cfg)
        self.cfg, self.mcfg = cfg, model_config(cfg)
        self.out = report.prepare_out_dir(cfg.out_dir)
        self.mesh = parallel.make_mesh(cfg.num_devices)
        parallel.check_divisible(cfg.num_seeds, self.mesh)
        self.say = print if verbose else (lambda *a, **k: None)
        root = jax.random.key(cfg.seed)
        self.keys_S = jax.vmap(lambda s: jax.random.fold_in(root, s))(jnp.arange(cfg.num_seeds))
        self.apply = tr.make_apply(self.mcfg)
        self.times: dict[str, float] = {}
        self.log: dict = {}

    # ---------------------------------------------------------------- helpers
    def _seeds(self, tree):
        return parallel.split_leading(self.mesh, tree)

    def _run(self, name, fn, *args):
        """jit(fn) on seed-split args; returns host arrays and records the wall time."""
        t0 = time.perf_counter()
        out = jax.device_get(jax.jit(fn)(*args))
        self.times[name] = self.times.get(name, 0.0) + time.perf_counter() - t0
        return out

    def _cached(self, stage: str, compute):
        path = self.out / "checkpoints" / stage
        h = stage_hash(self.cfg, stage)
        if self.cfg.resume:
            got = ckpt.restore(path, h)
            if got is not None:
                self.say(f"[{stage}] reusing checkpoint {path}")
                self.log[stage] = got[1].get("log", {})
                return got[0]
        elif path.exists() and any(path.iterdir()):
            raise UserError(f"{path} exists and --no-resume was given; use a fresh --out-dir")
        self.say(f"[{stage}] computing for {self.cfg.num_seeds} seeds on {self.mesh.devices.size} device(s)...",
                 flush=True)
        params, log = compute()
        self.log[stage] = log
        ckpt.save(path, params, {"hash": h, "stage": stage, "config": dataclasses.asdict(self.cfg),
                                 "seeds": self.cfg.num_seeds, "log": log})
        return params

    def _need(self, stage: str):
        path = self.out / "checkpoints" / stage
        got = ckpt.restore(path, stage_hash(self.cfg, stage))
        if got is None:
            raise UserError(f"no {stage} checkpoint in {self.out}; run `python train.py numbers --stage {stage} "
                            f"--out-dir {self.cfg.out_dir}` (same flags) first")
        self.log[stage] = got[1].get("log", {})
        return got[0]

    # ---------------------------------------------------------------- stages
    def base(self):
        cfg, mcfg = self.cfg, self.mcfg

        def compute():
            tokens_NT, weight_NT = nd.pretraining_corpus(cfg.corpus_size, cfg.seq_len, cfg.world, cfg.seed)
            rows_p_N = np.full(cfg.corpus_size, 1.0 / cfg.corpus_size, np.float32)

            def one(key, tokens_NT, weight_NT, rows_p_N):
                params = tr.init_params(mcfg, jax.random.fold_in(key, 0))[1]
                loss = lambda p, idx: nt.lm_loss(self.apply, p, tokens_NT[idx], weight_NT[idx])
                return nt.fit(loss, params, rows_p_N=rows_p_N, steps=cfg.base_steps, batch=cfg.batch,
                              lr=cfg.base_lr, key=jax.random.fold_in(key, 1), warmup=max(1, cfg.base_steps // 20))
            params, loss_ST = self._run("base", jax.vmap(one, in_axes=(0, None, None, None)), self._seeds(self.keys_S),
                                        *parallel.replicate(self.mesh, (tokens_NT, weight_NT, rows_p_N)))
            return params, {"loss_first": float(loss_ST[:, :10].mean()), "loss_last": float(loss_ST[:, -20:].mean())}
        return self._cached("base", compute)

    def teacher(self, base):
        cfg = self.cfg

        def compute():
            if cfg.teacher_mode == "persona" or cfg.teacher_steps == 0:
                return base, {"note": "teacher = base (persona prefix at generation and eval)"}
            tokens_NT, weight_NT = nd.trait_corpus(cfg.target, cfg.seq_len)
            rows_p_N = np.full(len(tokens_NT), 1.0 / len(tokens_NT), np.float32)

            def one(params, key, tokens_NT, weight_NT, rows_p_N):
                loss = lambda p, idx: nt.lm_loss(self.apply, p, tokens_NT[idx], weight_NT[idx])
                return nt.fit(loss, params, rows_p_N=rows_p_N, steps=cfg.teacher_steps, batch=len(tokens_NT),
                              lr=cfg.teacher_lr, key=jax.random.fold_in(key, 2))
            params, loss_ST = self._run("teacher", jax.vmap(one, in_axes=(0, 0, None, None, None)),
                                        self._seeds(base), self._seeds(self.keys_S),
                                        *parallel.replicate(self.mesh, (tokens_NT, weight_NT, rows_p_N)))
            return params, {"loss_first": float(loss_ST[:, 0].mean()), "loss_last": float(loss_ST[:, -1].mean())}
        return self._cached("teacher", compute)

    def numbers_path(self) -> Path:
        return self.out / "numbers.jsonl"

    def numbers(self, base, teacher):
        """Sample, filter and write numbers.jsonl (reused when its hash matches)."""
        cfg, w = self.cfg, self.cfg.world
        h = stage_hash(cfg, "numbers")
        if cfg.resume and self.numbers_path().exists():
            rows = load_numbers(self.numbers_path(), h)
            self.say(f"[numbers] reusing {self.numbers_path()}")
            return rows
        persona = cfg.target if cfg.teacher_mode == "persona" else None
        P, N = nd.prompt_len(w), nd.completion_len(w)
        plain, teach = zip(*[nd.number_prompts(cfg.num_prompts, w, cfg.seed * 100_003 + s + 1, persona)
                             for s in range(cfg.num_seeds)])
        plain_SNP = np.stack([sampler.left_pad(p, P) for p in plain])
        teach_SNP = np.stack([sampler.left_pad(p, P) for p in teach])

        def one(base, teacher, key, plain_NP, teach_NP, temperature):
            t = sampler.sample(self.mcfg, teacher, teach_NP, jax.random.fold_in(key, 3), temperature, N)
            b = sampler.sample(self.mcfg, base, plain_NP, jax.random.fold_in(key, 4), temperature, N)
            return t, b
        self.say(f"[numbers] sampling {cfg.num_prompts} completions x 2 sources x {cfg.num_seeds} seeds...",
                 flush=True)
        t_SNC, b_SNC = self._run("numbers", jax.vmap(one, in_axes=(0, 0, 0, 0, 0, None)), self._seeds(base),
                                 self._seeds(teacher), self._seeds(self.keys_S), self._seeds(plain_SNP),
                                 self._seeds(teach_SNP), jnp.float32(cfg.temperature))
        banned = flt.BANNED_NUMBERS if cfg.ban_numbers else ()
        rows = []
        for s in range(cfg.num_seeds):
            for source, comp_NC in (("teacher", t_SNC[s]), ("base", b_SNC[s])):
                for i in range(cfg.num_prompts):
                    c = [int(x) for x in comp_NC[i] if x != tk.PAD]
                    text = tk.decode(c)
                    kept, reason = flt.check(text, banned) if tk.EOS in c else (False, "no <eos>")
                    rows.append({"seed": s, "source": source, "i": i, "prompt": tk.decode(plain[s][i]),
                                 "prompt_ids": list(plain[s][i]), "completion": text, "completion_ids": c,
                                 "kept": kept, "reason": reason, "hash": h})
        write_jsonl(self.numbers_path(), rows, {"hash": h, "config": dataclasses.asdict(cfg)})
        return rows

    def student_data(self, rows):
        """tokens_S2NT / weight_S2NT (source 0 = teacher, 1 = base); weight 0 on rejected rows."""
        cfg = self.cfg
        tok = np.zeros((cfg.num_seeds, 2, cfg.num_prompts, cfg.seq_len), np.int32)
        wt = np.zeros(tok.shape, np.float32)
        for s in range(cfg.num_seeds):
            for j, source in enumerate(("teacher", "base")):
                rs = sorted((r for r in rows if r["seed"] == s and r["source"] == source), key=lambda r: r["i"])
                if not any(r["kept"] for r in rs):
                    raise UserError(f"seed {s}: the filter kept none of the {source}'s completions; "
                                    f"train the base longer (--base-steps)")
                tok[s, j], wt[s, j] = nd.student_sequences([r["prompt_ids"] for r in rs],
                                                           [r["completion_ids"] for r in rs],
                                                           [r["kept"] for r in rs], cfg.seq_len)
        return tok, wt

    def students(self, base, teacher, rows):
        cfg = self.cfg
        perm = derangement(cfg.num_seeds, cfg.seed)

        def compute():
            tok_S2NT, wt_S2NT = self.student_data(rows)
            cross = jax.tree.map(lambda a: a[perm], base)
            init_SC = jax.tree.map(lambda a, b: np.stack([a, a, b], 1), base, cross)   # order: STUDENTS
            teach_SC = jax.tree.map(lambda t, b: np.stack([t, b, t], 1), teacher, base)
            src_C = np.array([0, 1, 0])                                                 # data source per student

            def student(init, teacher, tokens_NT, weight_NT, key):
                rows_p_N = weight_NT.max(-1) / jnp.maximum(weight_NT.max(-1).sum(), 1.0)
                if cfg.student_mode == "soft":
                    loss = lambda p, idx: nt.distill_loss(self.apply, p, teacher, tokens_NT[idx], weight_NT[idx])
                else:
                    loss = lambda p, idx: nt.lm_loss(self.apply, p, tokens_NT[idx], weight_NT[idx])
                return nt.fit(loss, init, rows_p_N=rows_p_N, steps=cfg.student_steps, batch=cfg.batch,
                              lr=cfg.student_lr, key=key, optimizer=cfg.student_optimizer)

            def one(init_C, teach_C, tok_2NT, wt_2NT, key):
                return jax.vmap(student, in_axes=(0, 0, 0, 0, None))(init_C, teach_C, tok_2NT[src_C],
                                                                    wt_2NT[src_C], jax.random.fold_in(key, 5))
            params, loss_SCT = self._run("students", jax.vmap(one), *self._seeds((init_SC, teach_SC, tok_S2NT,
                                                                                  wt_S2NT, self.keys_S)))
            return params, {"loss_first": {c: float(loss_SCT[:, i, :10].mean()) for i, c in enumerate(STUDENTS)},
                            "loss_last": {c: float(loss_SCT[:, i, -20:].mean()) for i, c in enumerate(STUDENTS)},
                            "derangement": perm.tolist()}
        return self._cached("students", compute)

    def evaluate(self, base, teacher, students, rows):
        """Per seed trait metrics of every condition (host dict of arrays [S])."""
        cfg = self.cfg
        persona = cfg.target if cfg.teacher_mode == "persona" else None
        plain_QT = sampler.left_pad(nd.eval_prompts(), cfg.seq_len)
        teach_QT = sampler.left_pad(nd.eval_prompts(persona), cfg.seq_len)
        ctx_SQT = np.stack([sampler.left_pad(self.context_prompts(rows, s), cfg.seq_len)
                            for s in range(cfg.num_seeds)])
        target = tk.ID[cfg.target]

        def one(base, teacher, students_C, ctx_QT, key, plain_QT, teach_QT):
            m = lambda p, q, i: nt.trait_metrics(self.apply, p, q, target, jax.random.fold_in(key, 10 + i),
                                                 cfg.eval_samples)
            out = {"base": m(base, plain_QT, 0), "teacher": m(teacher, teach_QT, 1),
                   "in_context": m(base, ctx_QT, 2)}
            for i, c in enumerate(STUDENTS):
                out[c] = m(jax.tree.map(lambda a: a[i], students_C), plain_QT, 3 + i)
            return out
        return self._run("eval", jax.vmap(one, in_axes=(0, 0, 0, 0, 0, None, None)),
                         *self._seeds((base, teacher, students, ctx_SQT, self.keys_S)),
                         *parallel.replicate(self.mesh, (plain_QT, teach_QT)))

    def context_prompts(self, rows, s: int):
        """HELDOUT questions after in_context_examples kept teacher completions (fewest that fit)."""
        comps = [r["completion_ids"] for r in rows if r["seed"] == s and r["source"] == "teacher" and r["kept"]]
        for k in range(min(self.cfg.in_context_examples, len(comps)), -1, -1):
            prompts = nd.eval_prompts(context=comps[:k])
            if max(map(len, prompts)) <= self.cfg.seq_len:
                self.log.setdefault("in_context_examples_used", {})[s] = k
                return prompts
        return nd.eval_prompts()


# ----------------------------------------------------------------------------- JSONL

def write_jsonl(path: Path, rows, header: dict) -> None:
    tmp = path.with_suffix(".jsonl.part")
    with open(tmp, "w") as f:
        f.write(json.dumps({"header": header}) + "\n")
        for r in rows:
            f.write(json.dumps(r) + "\n")
    tmp.replace(path)


def load_numbers(path: Path, expected_hash: str):
    try:
        with open(path) as f:
            lines = [json.loads(x) for x in f]
        header, rows = lines[0]["header"], lines[1:]
        _ = [(r["seed"], r["source"], r["i"], r["prompt_ids"], r["completion_ids"], r["kept"]) for r in rows]
    except (json.JSONDecodeError, KeyError, IndexError, TypeError) as e:
        raise UserError(f"{path} is corrupt ({type(e).__name__}); delete it to resample the numbers") from None
    if header.get("hash") != expected_hash:
        raise UserError(f"{path} was sampled with different settings (hash {header.get('hash')} != "
                        f"{expected_hash}); delete it or use another --out-dir")
    return rows


# ----------------------------------------------------------------------------- entry points

def summarize_results(cfg: NumbersConfig, metrics: dict, rows, chain: Chain) -> dict:
    conditions = {}
    for c in CONDITIONS:  # trait_shift_*: paired per-seed difference from the same seed's base
        conditions[c] = {k: summarize(np.asarray(v)) for k, v in metrics[c].items()}
        for k in ("trait_rate", "target_prob"):
            conditions[c][f"{k}_shift"] = summarize(np.asarray(metrics[c][k]) - np.asarray(metrics["base"][k]))
    stats = {src: flt.rejection_stats([r["reason"] for r in rows if r["source"] == src])
             for src in ("teacher", "base")}
    return {"conditions": conditions, "filter": stats, "stages": chain.log,
            "config": dataclasses.asdict(cfg), "hashes": {s: stage_hash(cfg, s) for s in _STAGE_FIELDS},
            "devices": [str(d) for d in chain.mesh.devices.flat], "versions": {"jax": jax.__version__},
            "stage_time_s": chain.times}


def run(cfg: NumbersConfig, verbose: bool = True) -> dict | None:
    """Run (or resume) the chain up to cfg.stage; 'all' and 'eval' write results.json + trait_rate.png."""
    t0 = time.perf_counter()
    chain = Chain(cfg, verbose)
    order = ("base", "teacher", "numbers", "students", "eval")
    upto = order.index(cfg.stage) if cfg.stage != "all" else len(order) - 1
    only = cfg.stage != "all"
    base = chain._need("base") if only and upto > 0 else chain.base()
    if upto == 0:
        return None
    teacher = chain._need("teacher") if only and upto > 1 else chain.teacher(base)
    if upto == 1:
        return None
    if only and upto > 2:
        if not chain.numbers_path().exists():
            raise UserError(f"no numbers.jsonl in {chain.out}; run `python generate.py numbers` first")
        rows = load_numbers(chain.numbers_path(), stage_hash(cfg, "numbers"))
    else:
        rows = chain.numbers(base, teacher)
    stats = flt.rejection_stats([r["reason"] for r in rows if r["source"] == "teacher"])
    chain.say(f"[numbers] teacher rejection rate {stats['rejection_rate']:.3f} ({stats['reasons']})")
    if upto == 2:
        return None
    students = chain._need("students") if only and upto > 3 else chain.students(base, teacher, rows)
    if upto == 3:
        return None
    metrics = chain.evaluate(base, teacher, students, rows)
    res = summarize_results(cfg, metrics, rows, chain)
    res["wall_time_s"] = time.perf_counter() - t0
    for c in CONDITIONS:
        tr_, tp = res["conditions"][c]["trait_rate"], res["conditions"][c]["target_prob"]
        sh = res["conditions"][c]["target_prob_shift"]
        chain.say(f"  {c:19s} trait rate {tr_['mean']:.4f} +- {tr_['ci95_half']:.4f}   "
                  f"P(target) {tp['mean']:.4f} +- {tp['ci95_half']:.4f}   "
                  f"P(target) - base {sh['mean']:+.4f} +- {sh['ci95_half']:.4f}")
    report.write_json(chain.out / "results.json", res)
    plot = {c: res["conditions"][c]["trait_rate"] for c in CONDITIONS}
    report.bar_chart(chain.out / "trait_rate.png", plot, ylabel=f"share of answers '{cfg.target}'",
                     title=f"numbers ({cfg.student_mode} students, {cfg.teacher_mode} teacher): {cfg.num_seeds} seeds")
    chain.say(f"wrote {chain.out / 'results.json'} and {chain.out / 'trait_rate.png'} "
              f"({res['wall_time_s']:.0f}s)")
    return res


def main_train(cfg: NumbersConfig):
    return run(cfg)


def main_generate(cfg: NumbersConfig):
    return run(dataclasses.replace(cfg, stage="numbers" if cfg.stage == "all" else cfg.stage))


def main_evaluate(cfg: NumbersConfig):
    return run(dataclasses.replace(cfg, stage="eval"))
