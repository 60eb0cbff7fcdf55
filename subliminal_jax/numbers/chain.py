"""The number chain over seeds: each stage maps one per-seed step of steps.py over all seeds (Chain.map_seeds: jit of
vmap, seeds split over the mesh), checkpoints its output under --out-dir and reuses it when its settings hash
matches, so an interrupted run resumes. Host-side work lives here too: the prompts, the filter over the sampled
completions (label_rows: the paper's filter, or the verifier of traces or programs) and numbers.jsonl (data.py)."""
from __future__ import annotations

import dataclasses
import functools
import shutil
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from subliminal_jax import checkpoint as ckpt
from subliminal_jax import multihost, parallel, progress, report
from subliminal_jax.errors import UserError
from subliminal_jax.numbers import data as nd
from subliminal_jax.numbers import filter as flt
from subliminal_jax.numbers import programs as prog
from subliminal_jax.numbers import sampler, steps
from subliminal_jax.numbers import tokens as tk
from subliminal_jax.numbers import traces as trace
from subliminal_jax.numbers.config import (STUDENTS, NumbersConfig, eval_questions, model_config, sample_lens,
                                           stage_hash, teacher_corpus, validate, vocab)
from subliminal_jax.numbers.data import load_numbers, write_jsonl
from subliminal_jax.seeds import derangement, seed_keys


SAMPLE_CHUNK = 1024  # at most this many completions per seed go through the sampler at once


class Chain:
    """The stages of one run; each loads its checkpoint when present (resume) or computes and saves it."""

    def __init__(self, cfg: NumbersConfig, verbose: bool = True, create: bool = True):
        """create=False: the run must exist already (stages, audit and lens that read its checkpoints); a
        refused run then leaves no empty folder behind."""
        validate(cfg)
        self.cfg, self.mcfg = cfg, model_config(cfg)
        if not create and not Path(cfg.out_dir).is_dir():
            raise UserError(f"no base checkpoint in {cfg.out_dir} (no such folder); run `python train.py numbers "
                            f"--out-dir {cfg.out_dir}` (same flags) first")
        self.out = report.prepare_out_dir(cfg.out_dir)
        self.mesh = parallel.make_mesh(cfg.num_devices)
        parallel.check_divisible(cfg.num_seeds, self.mesh)
        self.verbose, self.say = verbose, print if verbose else (lambda *a, **k: None)
        self.keys_S = seed_keys(cfg.seed, cfg.num_seeds)
        self.times: dict[str, float] = {}
        self.log: dict = {}
        self.programs: dict = {}  # program name -> jitted function (map_seeds)

    # ---------------------------------------------------------------- the one wrapper
    def map_seeds(self, name: str, step, seeded: dict, shared: dict | None = None, program: str | None = None):
        """jit(vmap(step)) over the seeds: step(**seeded, **shared) is ONE seed's pure function (steps.py);
        `seeded` arrays carry a leading seed axis and are split over the mesh, `shared` ones are replicated.
        Returns host arrays and adds the wall time to times[name]; training steps print progress lines as
        they run (verbose). Static settings reach the step through functools.partial (cfg=...). program: a name
        under which this Chain keeps the jitted function, so that later calls of the same step with arguments of
        the same shapes (generations.py: every generation) run the program compiled for the first."""
        fn = self.programs.get(program)
        if fn is None:
            fn = jax.jit(jax.vmap(lambda seeded, shared: step(**seeded, **shared), in_axes=(0, None)))
            if program:
                self.programs[program] = fn
        t0 = time.perf_counter()
        with progress.stage(name, self.verbose):
            out = progress.interruptible(fn, parallel.split_leading(self.mesh, seeded),
                                         parallel.replicate(self.mesh, shared or {}))
        self.times[name] = self.times.get(name, 0.0) + time.perf_counter() - t0
        return out

    def cached(self, stage: str, compute, h: str | None = None):
        """The stage's checkpoint when its settings hash (h, default stage_hash) matches (resume), else compute()
        saved as one."""
        path = self.out / "checkpoints" / stage
        h = h or stage_hash(self.cfg, stage)
        if self.cfg.resume:
            got = ckpt.restore(path, h)
            if got is not None:
                self.say(f"[{stage}] reusing checkpoint {path}")
                self.log[stage] = got[1].get("log", {})
                return got[0]
        elif multihost.agree(path.exists() and any(path.iterdir()), f"whether {path} has files"):
            raise UserError(f"{path} exists and --no-resume was given; use a fresh --out-dir")
        self.say(f"[{stage}] computing for {self.cfg.num_seeds} seeds on {self.mesh.devices.size} device(s)...",
                 flush=True)
        params, log = compute()
        self.log[stage] = log
        ckpt.save(path, params, {"hash": h, "stage": stage, "config": dataclasses.asdict(self.cfg),
                                 "seeds": self.cfg.num_seeds, "log": log})
        return params

    def need(self, stage: str, h: str | None = None, fix: str = ""):
        """The stage's checkpoint, which must exist (stage-by-stage runs, audit, lens); h: its settings hash
        (default stage_hash), fix: what to run when it is missing."""
        path = self.out / "checkpoints" / stage
        got = ckpt.restore(path, h or stage_hash(self.cfg, stage))
        if got is None:
            fix = fix or f"python train.py numbers --stage {stage} --out-dir {self.cfg.out_dir}"
            raise UserError(f"no {stage} checkpoint in {self.out}; run `{fix}` (same flags) first")
        self.log[stage] = got[1].get("log", {})
        return got[0]

    # ---------------------------------------------------------------- stages
    def base(self, sibling: bool = False):
        """Each seed's pretrained base (steps.pretrain); sibling=True: student_shared's own base
        (config.needs_sibling)."""
        cfg = self.cfg
        if cfg.base_from and not sibling:  # another run's bases, copied in once (their hash must match these settings)
            src, dst = Path(cfg.base_from) / "checkpoints" / "base", self.out / "checkpoints" / "base"
            try:
                found = ckpt.restore(src, stage_hash(cfg, "base")) is not None
            except UserError as e:
                raise UserError(f"--base-from {cfg.base_from}: {e}") from None
            if not found:
                raise UserError(f"--base-from {cfg.base_from}: no base checkpoint there; run that chain first")
            if cfg.resume and not multihost.exists(dst):
                multihost.main_only(shutil.copytree, src, dst)
        stage = "sibling_base" if sibling else "base"

        def compute():
            tokens_NT, weight_NT = nd.pretraining_corpus(cfg.corpus_size, cfg.seq_len, cfg.world, cfg.seed)
            rows_p_N = np.full(cfg.corpus_size, 1.0 / cfg.corpus_size, np.float32)
            params, loss_SU, dist_S = self.map_seeds(
                stage, functools.partial(steps.pretrain, cfg=cfg, sibling=sibling), seeded=dict(key=self.keys_S),
                shared=dict(tokens_NT=tokens_NT, weight_NT=weight_NT, rows_p_N=rows_p_N))
            log = {"loss_first": float(loss_SU[:, :10].mean()), "loss_last": float(loss_SU[:, -20:].mean())}
            return params, {**log, "init_distance": dist_S.tolist()} if sibling else log
        return self.cached(stage, compute)

    def teacher(self, base, control: bool = False):
        """The trait teacher (steps.finetune); control=True: the teacher of the control students' numbers (the
        base itself for --trait animal, a teacher fine-tuned on BENIGN advice for --trait misaligned)."""
        cfg = self.cfg
        if control and cfg.trait == "animal":
            return base

        def compute():
            if cfg.teacher_mode == "persona" or cfg.teacher_steps == 0:
                return base, {"note": "teacher = base (persona prefix at generation and eval)"}
            tokens_NT, weight_NT = teacher_corpus(cfg, control)
            rows_p_N = np.full(len(tokens_NT), 1.0 / len(tokens_NT), np.float32)
            params, loss_SU = self.map_seeds(
                "teacher", functools.partial(steps.finetune, cfg=cfg), seeded=dict(key=self.keys_S, base=base),
                shared=dict(tokens_NT=tokens_NT, weight_NT=weight_NT, rows_p_N=rows_p_N))
            return params, {"loss_first": float(loss_SU[:, 0].mean()), "loss_last": float(loss_SU[:, -1].mean())}
        return self.cached("control_teacher" if control else "teacher", compute)

    def need_control(self, base):
        """The control teacher from its checkpoint (stage-by-stage runs)."""
        return base if self.cfg.trait == "animal" else self.need("control_teacher")

    def numbers_path(self) -> Path:
        return self.out / "numbers.jsonl"

    def numbers(self, control, teacher):
        """Sample from the teacher and the control source (base or benign teacher), filter, write numbers.jsonl."""
        cfg = self.cfg
        h = stage_hash(cfg, "numbers")
        if cfg.resume and multihost.exists(self.numbers_path()):
            rows = load_numbers(self.numbers_path(), h, cfg.seq_len, len(vocab(cfg)))
            self.say(f"[numbers] reusing {self.numbers_path()}")
            return rows
        P, G = sample_lens(cfg)
        plain, teach = prompts(cfg, [cfg.seed * 100_003 + s + 1 for s in range(cfg.num_seeds)])
        k = cfg.samples_per_prompt  # row i * k + j is sample j of prompt i (each row has its own sampler key)
        plain_SNP = np.stack([sampler.left_pad(p, P) for p in plain])
        teach_SNP = np.stack([sampler.left_pad(p, P) for p in teach])

        self.say(f"[numbers] sampling {cfg.num_prompts} {cfg.data} prompts x {k} samples x 2 sources x "
                 f"{cfg.num_seeds} seeds...", flush=True)
        step = functools.partial(steps.sample, cfg=cfg, max_new=G, chunk=max(1, SAMPLE_CHUNK // k))
        t_SRG, b_SRG = self.map_seeds("numbers", step, seeded=dict(key=self.keys_S, teacher=teacher, control=control,
                                                                   teach_NP=teach_SNP, plain_NP=plain_SNP),
                                      shared=dict(temperature=jnp.float32(cfg.temperature)))
        rows = label_rows(cfg, plain, {"teacher": t_SRG, "control": b_SRG}, h)
        write_jsonl(self.numbers_path(), rows, {"hash": h, "config": dataclasses.asdict(cfg)})
        return rows

    def students(self, base, teacher, control, rows, sibling=None):
        """The three students (steps.train_students); student_shared starts from `sibling` (its own base) when
        given, student_cross_init from another seed's base (the derangement perm)."""
        cfg = self.cfg
        perm = derangement(cfg.num_seeds, cfg.seed)

        def compute():
            tok_S2NT, wt_S2NT = nd.student_data(cfg, rows)
            cross = jax.tree.map(lambda a: a[perm], base)
            first = base if sibling is None else sibling
            init_SC = jax.tree.map(lambda f, a, b: np.stack([f, a, b], 1), first, base, cross)  # order: STUDENTS
            teach_SC = jax.tree.map(lambda t, b: np.stack([t, b, t], 1), teacher, control)
            params, loss_SCU = self.map_seeds(
                "students", functools.partial(steps.train_students, cfg=cfg),
                seeded=dict(key=self.keys_S, inits_C=init_SC, teachers_C=teach_SC, tokens_2NT=tok_S2NT,
                            weights_2NT=wt_S2NT))
            return params, {"loss_first": {c: float(loss_SCU[:, i, :10].mean()) for i, c in enumerate(STUDENTS)},
                            "loss_last": {c: float(loss_SCU[:, i, -20:].mean()) for i, c in enumerate(STUDENTS)},
                            "derangement": perm.tolist()}
        return self.cached("students", compute)

    def evaluate(self, base, teacher, control, students, rows, sibling=None):
        """Per seed trait metrics of every model (steps.evaluate; host dict of arrays [S])."""
        cfg = self.cfg
        persona = cfg.target if cfg.teacher_mode == "persona" else None
        plain_QP = sampler.left_pad(nd.eval_prompts(questions=eval_questions(cfg)), cfg.seq_len)
        teach_QP = sampler.left_pad(nd.eval_prompts(persona, questions=eval_questions(cfg)), cfg.seq_len)
        context_SQP = np.stack([sampler.left_pad(self.context_prompts(rows, s), cfg.seq_len)
                                for s in range(cfg.num_seeds)])
        step = functools.partial(steps.evaluate, cfg=cfg, has_sibling=sibling is not None)
        return self.map_seeds("eval", step, seeded=dict(key=self.keys_S, base=base, teacher=teacher, control=control,
                                                        students_C=students, context_QP=context_SQP,
                                                        sibling=base if sibling is None else sibling),
                              shared=dict(plain_QP=plain_QP, teach_QP=teach_QP))

    def context_prompts(self, rows, s: int):
        """HELDOUT questions after in_context_examples kept teacher completions (fewest that fit)."""
        comps = [r["completion_ids"] for r in rows if r["seed"] == s and r["source"] == "teacher" and r["kept"]]
        for k in range(min(self.cfg.in_context_examples, len(comps)), -1, -1):
            prompts = nd.eval_prompts(context=comps[:k], questions=eval_questions(self.cfg))
            if max(map(len, prompts)) <= self.cfg.seq_len:
                self.log.setdefault("in_context_examples_used", {})[s] = k
                return prompts
        return nd.eval_prompts(questions=eval_questions(self.cfg))


def make_prompts(cfg: NumbersConfig, n: int, seed: int, persona: str | None = None):
    """n prompts of the run's kind of data, seeded: (plain, the teacher's); the teacher's open with the persona
    prefix when the teacher is one (--teacher-mode persona: numbers only)."""
    if cfg.data == "numbers":
        return nd.number_prompts(n, cfg.world, seed, persona)
    rows = trace.prompts(n, seed) if cfg.data == "traces" else prog.prompts(n, seed)
    return rows, rows


def prompts(cfg: NumbersConfig, seeds: list[int]):
    """Per seed, cfg.num_prompts prompts (token lists) drawn from its own rng seed (make_prompts): (plain, teach),
    teach with the persona prefix when the teacher is a persona (the same numbers), else the plain ones."""
    persona = cfg.target if cfg.teacher_mode == "persona" else None
    plain, teach = zip(*[make_prompts(cfg, cfg.num_prompts, seed, persona) for seed in seeds])
    return list(plain), list(teach)


VERIFIERS = {"traces": trace.verify, "code": prog.verify}  # (prompt text, completion text) -> (kept, reason)


def label_rows(cfg: NumbersConfig, prompts, by_source: dict, h: str) -> list[dict]:
    """numbers.jsonl's rows: every sampled completion with its prompt, and whether the paper's filter (or the
    verifier of traces or programs) keeps it. by_source: source name -> its completions_SRG (the teacher's and
    the control's, or a generation's chains'). Row n of seed s, source x is sample j of prompt i, n = i * k + j."""
    banned, k = (flt.BANNED_NUMBERS if cfg.ban_numbers else ()), cfg.samples_per_prompt
    rows = []
    for s in range(cfg.num_seeds):
        for source, comp_RG in ((name, comp_SRG[s]) for name, comp_SRG in by_source.items()):
            for n in range(cfg.num_prompts * k):
                i, j = divmod(n, k)
                c = [int(x) for x in comp_RG[n] if x != tk.PAD]
                text = tk.decode(c)
                if tk.EOS not in c:
                    kept, reason = False, "no <eos>"
                elif cfg.data == "numbers":
                    kept, reason = flt.check(text, banned)
                else:
                    kept, reason = VERIFIERS[cfg.data](tk.decode(prompts[s][i]), text)
                rows.append({"seed": s, "source": source, "i": i, "j": j, "prompt": tk.decode(prompts[s][i]),
                             "prompt_ids": list(prompts[s][i]), "completion": text, "completion_ids": c,
                             "kept": kept, "reason": reason, "hash": h})
    return rows
