"""The stages of the number-sequence chain (see numbers/__init__.py), each one jit of vmap over seeds,
checkpointed under --out-dir and reused when its settings hash matches (numbers.jsonl I/O: data.py)."""
from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from subliminal_jax import checkpoint as ckpt
from subliminal_jax.numbers import filter as flt
from subliminal_jax.numbers import data as nd
from subliminal_jax.numbers import train as nt
from subliminal_jax import inits, multihost, parallel, progress, report, training
from subliminal_jax.numbers import sampler
from subliminal_jax.numbers import tokens as tk
from subliminal_jax.numbers import traces as trace
from subliminal_jax.numbers import transformer as tr
from subliminal_jax.errors import UserError
from subliminal_jax.seeds import derangement, seed_keys
from subliminal_jax.numbers.data import load_numbers, write_jsonl
from subliminal_jax.numbers.config import (EVAL_STREAMS, STUDENTS, NumbersConfig, eval_questions, model_config,
                                           sample_lens, stage_hash, target_ids, teacher_corpus, token_mask, validate)


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
        self.apply = tr.make_apply(self.mcfg)
        self.times: dict[str, float] = {}
        self.log: dict = {}

    # ---------------------------------------------------------------- helpers
    def _seeds(self, tree):
        return parallel.split_leading(self.mesh, tree)

    def _run(self, name, fn, *args):
        """jit(fn) on seed-split args; returns host arrays and records the wall time. Training steps print
        progress lines as they run (verbose)."""
        t0 = time.perf_counter()
        with progress.stage(name, self.verbose):
            out = progress.interruptible(jax.jit(fn), *args)
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
        elif multihost.agree(path.exists() and any(path.iterdir()), f"whether {path} has files"):
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
    def base(self, sibling: bool = False):
        """Each seed's pretrained base; sibling=True: student_shared's own base (config.needs_sibling),
        pretrained from the base's init with --student-init parts re-drawn and --init-lambda mixed in, on the
        same data order (or another: --student-base-data other)."""
        cfg, mcfg = self.cfg, self.mcfg
        choice = inits.parse_student_init(cfg.student_init, inits.transformer_parts(cfg.n_layers))
        if cfg.base_from and not sibling:  # another run's bases, copied in once (their hash must match these base settings)
            src, dst = Path(cfg.base_from) / "checkpoints" / "base", self.out / "checkpoints" / "base"
            try:
                found = ckpt.restore(src, stage_hash(cfg, "base")) is not None
            except UserError as e:
                raise UserError(f"--base-from {cfg.base_from}: {e}") from None
            if not found:
                raise UserError(f"--base-from {cfg.base_from}: no base checkpoint there; run that chain first")
            if cfg.resume and not multihost.exists(dst):
                multihost.main_only(shutil.copytree, src, dst)

        def compute():
            tokens_NT, weight_NT = nd.pretraining_corpus(cfg.corpus_size, cfg.seq_len, cfg.world, cfg.seed)
            rows_p_N = np.full(cfg.corpus_size, 1.0 / cfg.corpus_size, np.float32)

            def one(key, tokens_NT, weight_NT, rows_p_N):
                theta0 = params = tr.init_params(mcfg, jax.random.fold_in(key, 0))[1]
                if sibling:  # key streams 7 (the independent draw) and 8 (another data order): the sibling's own
                    params = inits.student_init(theta0, tr.init_params(mcfg, jax.random.fold_in(key, 7))[1], choice,
                                                cfg.init_lambda)
                loss = lambda p, idx: nt.lm_loss(self.apply, p, tokens_NT[idx], weight_NT[idx])
                data_key = jax.random.fold_in(key, 8 if sibling and cfg.student_base_data == "other" else 1)
                opt = training.optimizer("adam", training.warmup_cosine(cfg.base_lr, max(1, cfg.base_steps // 20),
                                                                        cfg.base_steps))
                out, loss_T = training.train(loss, params, opt,
                                             training.sampled_rows(data_key, rows_p_N, cfg.batch, cfg.base_steps))
                return out, loss_T, inits.relative_distance(params, theta0)
            stage = "sibling_base" if sibling else "base"
            params, loss_ST, dist_S = self._run(stage, jax.vmap(one, in_axes=(0, None, None, None)),
                                                self._seeds(self.keys_S),
                                                *parallel.replicate(self.mesh, (tokens_NT, weight_NT, rows_p_N)))
            log = {"loss_first": float(loss_ST[:, :10].mean()), "loss_last": float(loss_ST[:, -20:].mean())}
            return params, {**log, "init_distance": dist_S.tolist()} if sibling else log
        return self._cached("sibling_base" if sibling else "base", compute)

    def teacher(self, base, control: bool = False):
        """The trait teacher; control=True: the teacher of the control students' numbers (the base
        itself for --trait animal, a teacher fine-tuned on BENIGN advice for --trait misaligned)."""
        cfg = self.cfg
        if control and cfg.trait == "animal":
            return base

        def compute():
            if cfg.teacher_mode == "persona" or cfg.teacher_steps == 0:
                return base, {"note": "teacher = base (persona prefix at generation and eval)"}
            tokens_NT, weight_NT = teacher_corpus(cfg, control)
            rows_p_N = np.full(len(tokens_NT), 1.0 / len(tokens_NT), np.float32)

            def one(params, key, tokens_NT, weight_NT, rows_p_N):
                loss = lambda p, idx: nt.lm_loss(self.apply, p, tokens_NT[idx], weight_NT[idx])
                opt = training.optimizer("adam", cfg.teacher_lr, labels=nt.trainable_labels(params, cfg.teacher_params))
                return training.train(loss, params, opt, training.sampled_rows(
                    jax.random.fold_in(key, 2), rows_p_N, len(tokens_NT), cfg.teacher_steps))
            params, loss_ST = self._run("teacher", jax.vmap(one, in_axes=(0, 0, None, None, None)),
                                        self._seeds(base), self._seeds(self.keys_S),
                                        *parallel.replicate(self.mesh, (tokens_NT, weight_NT, rows_p_N)))
            return params, {"loss_first": float(loss_ST[:, 0].mean()), "loss_last": float(loss_ST[:, -1].mean())}
        return self._cached("control_teacher" if control else "teacher", compute)

    def need_control(self, base):
        """The control teacher from its checkpoint (stage-by-stage runs)."""
        return base if self.cfg.trait == "animal" else self._need("control_teacher")

    def numbers_path(self) -> Path:
        return self.out / "numbers.jsonl"

    def numbers(self, control, teacher):
        """Sample from the teacher and the control source (base or benign teacher), filter, write numbers.jsonl."""
        cfg, w = self.cfg, self.cfg.world
        h = stage_hash(cfg, "numbers")
        if cfg.resume and multihost.exists(self.numbers_path()):
            rows = load_numbers(self.numbers_path(), h, cfg.seq_len)
            self.say(f"[numbers] reusing {self.numbers_path()}")
            return rows
        persona = cfg.target if cfg.teacher_mode == "persona" else None
        P, N = sample_lens(cfg)
        if cfg.data == "numbers":
            plain, teach = zip(*[nd.number_prompts(cfg.num_prompts, w, cfg.seed * 100_003 + s + 1, persona)
                                 for s in range(cfg.num_seeds)])
        else:
            plain = teach = [trace.prompts(cfg.num_prompts, cfg.seed * 100_003 + s + 1) for s in range(cfg.num_seeds)]
        k = cfg.samples_per_prompt  # row i * k + j is sample j of prompt i (each row has its own sampler key)
        plain_SNP = np.stack([sampler.left_pad(p, P) for p in plain])
        teach_SNP = np.stack([sampler.left_pad(p, P) for p in teach])
        chunk = max(1, SAMPLE_CHUNK // k)

        def one(control, teacher, key, plain_NP, teach_NP, temperature):
            t = sampler.sample_in_chunks(self.mcfg, teacher, teach_NP, jax.random.fold_in(key, 3), temperature, N,
                                         chunk, k, "teacher")
            b = sampler.sample_in_chunks(self.mcfg, control, plain_NP, jax.random.fold_in(key, 4), temperature, N,
                                         chunk, k, "control")
            return t, b
        self.say(f"[numbers] sampling {cfg.num_prompts} {cfg.data} prompts x {k} samples x 2 sources x "
                 f"{cfg.num_seeds} seeds...", flush=True)
        t_SNC, b_SNC = self._run("numbers", jax.vmap(one, in_axes=(0, 0, 0, 0, 0, None)), self._seeds(control),
                                 self._seeds(teacher), self._seeds(self.keys_S), self._seeds(plain_SNP),
                                 self._seeds(teach_SNP), jnp.float32(cfg.temperature))
        banned = flt.BANNED_NUMBERS if cfg.ban_numbers else ()
        rows = []
        for s in range(cfg.num_seeds):
            for source, comp_NC in (("teacher", t_SNC[s]), ("control", b_SNC[s])):
                for n in range(cfg.num_prompts * k):
                    i, j = divmod(n, k)
                    c = [int(x) for x in comp_NC[n] if x != tk.PAD]
                    text = tk.decode(c)
                    if tk.EOS not in c:
                        kept, reason = False, "no <eos>"
                    elif cfg.data == "numbers":
                        kept, reason = flt.check(text, banned)
                    else:
                        kept, reason = trace.verify(tk.decode(plain[s][i]), text)
                    rows.append({"seed": s, "source": source, "i": i, "j": j, "prompt": tk.decode(plain[s][i]),
                                 "prompt_ids": list(plain[s][i]), "completion": text, "completion_ids": c,
                                 "kept": kept, "reason": reason, "hash": h})
        write_jsonl(self.numbers_path(), rows, {"hash": h, "config": dataclasses.asdict(cfg)})
        return rows

    def student(self, init, teacher, tokens_NT, weight_NT, key):
        """One student (per seed, per condition): --student-mode soft distils the teacher's number-token
        distribution, hard fits the kept rows' sampled tokens; returns (params, loss per step)."""
        cfg = self.cfg
        rows_p_N = weight_NT.max(-1) / jnp.maximum(weight_NT.max(-1).sum(), 1.0)
        weight_NT = nt.student_weights(tokens_NT, weight_NT, cfg.student_mode, cfg.distill_positions)
        if cfg.student_mode == "soft":
            loss = lambda p, idx: nt.distill_loss(self.apply, p, teacher, tokens_NT[idx], weight_NT[idx],
                                                  token_mask(cfg))
        else:
            mask_V = token_mask(cfg) if cfg.hard_vocab == "numbers" else None
            loss = lambda p, idx: nt.lm_loss(self.apply, p, tokens_NT[idx], weight_NT[idx], mask_V)
        lr = training.warmup_cosine(cfg.student_lr, max(1, cfg.student_steps // 20), cfg.student_steps) \
            if cfg.student_schedule == "cosine" else cfg.student_lr
        opt = training.optimizer(cfg.student_optimizer, lr, momentum=0.9 if cfg.student_optimizer == "sgd" else None,
                                 labels=nt.trainable_labels(init, cfg.student_params))
        return training.train(loss, init, opt, training.sampled_rows(key, rows_p_N, cfg.student_batch or cfg.batch,
                                                                     cfg.student_steps))

    def students(self, base, teacher, control, rows, sibling=None):
        """The three students; student_shared starts from `sibling` (its own base) when given."""
        cfg = self.cfg
        perm = derangement(cfg.num_seeds, cfg.seed)

        def compute():
            tok_S2NT, wt_S2NT = nd.student_data(cfg, rows)
            cross = jax.tree.map(lambda a: a[perm], base)
            first = base if sibling is None else sibling
            init_SC = jax.tree.map(lambda f, a, b: np.stack([f, a, b], 1), first, base, cross)  # order: STUDENTS
            teach_SC = jax.tree.map(lambda t, b: np.stack([t, b, t], 1), teacher, control)
            src_C = np.array([0, 1, 0])                                                 # data source per student

            def one(init_C, teach_C, tok_2NT, wt_2NT, key):
                if cfg.student_init == "permuted":  # student_shared from P(base): same function, other parameters
                    first = inits.permute_transformer(jax.tree.map(lambda a: a[0], init_C), jax.random.fold_in(key, 6),
                                                      cfg.n_heads)[0]
                    init_C = jax.tree.map(lambda a, f: a.at[0].set(f), init_C, first)
                return jax.vmap(self.student, in_axes=(0, 0, 0, 0, None))(init_C, teach_C, tok_2NT[src_C],
                                                                         wt_2NT[src_C], jax.random.fold_in(key, 5))
            params, loss_SCT = self._run("students", jax.vmap(one), *self._seeds((init_SC, teach_SC, tok_S2NT,
                                                                                  wt_S2NT, self.keys_S)))
            return params, {"loss_first": {c: float(loss_SCT[:, i, :10].mean()) for i, c in enumerate(STUDENTS)},
                            "loss_last": {c: float(loss_SCT[:, i, -20:].mean()) for i, c in enumerate(STUDENTS)},
                            "derangement": perm.tolist()}
        return self._cached("students", compute)

    def trait(self, params, prompts_QT, key, stream):
        """nt.trait_metrics of one model, its answers sampled with key stream 10 + `stream` (EVAL_STREAMS)."""
        target_K, class_K = target_ids(self.cfg)
        return nt.trait_metrics(self.apply, params, prompts_QT, target_K, class_K,
                                jax.random.fold_in(key, 10 + stream), self.cfg.eval_samples)

    def evaluate(self, base, teacher, control, students, rows, sibling=None):
        """Per seed trait metrics of every condition (host dict of arrays [S]); with --trait
        misaligned also of the benign control teacher ("control_teacher"); with a sibling base, of it too."""
        cfg = self.cfg
        persona = cfg.target if cfg.teacher_mode == "persona" else None
        plain_QT = sampler.left_pad(nd.eval_prompts(questions=eval_questions(cfg)), cfg.seq_len)
        teach_QT = sampler.left_pad(nd.eval_prompts(persona, questions=eval_questions(cfg)), cfg.seq_len)
        ctx_SQT = np.stack([sampler.left_pad(self.context_prompts(rows, s), cfg.seq_len)
                            for s in range(cfg.num_seeds)])

        def one(base, teacher, control, students_C, ctx_QT, sibling, key, plain_QT, teach_QT):
            m = lambda p, q, c: self.trait(p, q, key, EVAL_STREAMS[c])
            out = {"base": m(base, plain_QT, "base"), "teacher": m(teacher, teach_QT, "teacher"),
                   "in_context": m(base, ctx_QT, "in_context")}
            for i, c in enumerate(STUDENTS):
                out[c] = m(jax.tree.map(lambda a: a[i], students_C), plain_QT, c)
            if cfg.trait != "animal":
                out["control_teacher"] = m(control, plain_QT, "control_teacher")
            if has_sibling:
                out["sibling_base"] = m(sibling, plain_QT, "sibling_base")
            return out
        has_sibling = sibling is not None
        return self._run("eval", jax.vmap(one, in_axes=(0, 0, 0, 0, 0, 0, 0, None, None)),
                         *self._seeds((base, teacher, control, students, ctx_SQT, sibling if has_sibling else base,
                                       self.keys_S)),
                         *parallel.replicate(self.mesh, (plain_QT, teach_QT)))

    def context_prompts(self, rows, s: int):
        """HELDOUT questions after in_context_examples kept teacher completions (fewest that fit)."""
        comps = [r["completion_ids"] for r in rows if r["seed"] == s and r["source"] == "teacher" and r["kept"]]
        for k in range(min(self.cfg.in_context_examples, len(comps)), -1, -1):
            prompts = nd.eval_prompts(context=comps[:k], questions=eval_questions(self.cfg))
            if max(map(len, prompts)) <= self.cfg.seq_len:
                self.log.setdefault("in_context_examples_used", {})[s] = k
                return prompts
        return nd.eval_prompts(questions=eval_questions(self.cfg))
