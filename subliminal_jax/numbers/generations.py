"""`python train.py generations`: does the trait travel down a chain of students? (issue 20; research notes, 7)

Generation 0 is the chain's teacher (chain.py: base, teacher, its filtered numbers). Generation g + 1 is a student
from the base, trained (soft or fine-tuned, as the config says) on the numbers generation g wrote, which were
sampled and filtered as the teacher's were: as many fresh prompts per generation, the same temperature, filter and
counts. Three chains run side by side (config.CHAINS, the C axis of every stage):
  shared   every generation starts from the seed's own base
  broken   generation --break-at starts from another seed's base (seeds.derangement, as the cross-init student);
           the others from the own base, each learning from what this chain's previous generation wrote
  control  generation 1 learns from the control source's numbers (the base's; --trait misaligned: the benign
           control teacher's), and so on
Each stage of a generation (students, numbers, eval, audit) is one Chain.map_seeds call: one jit over the seeds,
the chains vmapped inside, the generation index a traced argument. Each is checkpointed per generation
(checkpoints/gen{g}_*, numbers-gen{g}.jsonl) under a hash without --num-generations: a longer run resumes a
shorter one, and a finished run reruns without computing anything.

results.json / generations.png: per chain and generation the trait read-outs, paired against each model's own
base; the filter's kept share; a geometric fit of the shared chain's P(target) shift over the generations; and
Theorem 1's first-order predictor: the audit score (audit.py) of generation g's kept rows at generation g + 1's
start (with generation g as the soft teacher) against the shift generation g + 1 then showed.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import time
from pathlib import Path
from typing import Annotated

import jax
import jax.numpy as jnp
import numpy as np
import tyro

from subliminal_jax import checkpoint as ckpt
from subliminal_jax import checks, multihost, plots, report
from subliminal_jax.errors import UserError
from subliminal_jax.numbers import audit, sampler, steps
from subliminal_jax.numbers import generations_report as gr
from subliminal_jax.numbers import data as nd
from subliminal_jax.numbers.chain import SAMPLE_CHUNK, Chain, label_rows, prompts
from subliminal_jax.numbers.config import (CHAINS, MISALIGN, TRACES, NumbersConfig, eval_questions, needs_sibling,
                                           sample_lens, stage_hash, teacher_corpus, trait_name, validate, vocab)
from subliminal_jax.seeds import derangement


@dataclasses.dataclass(frozen=True)
class GenerationsConfig:
    """Transfer down a chain of students (flags: those of `train.py numbers`, and these two)."""
    run: Annotated[NumbersConfig, tyro.conf.arg(name="")] = NumbersConfig(out_dir="runs/generations")
    num_generations: int = 4   # students after the teacher (generation 0), each taught by the one before
    break_at: int = 1          # the broken chain's generation that starts from another seed's base


# the other channels' generations (train.py generations-misalign / -traces): their chains' settings
MISALIGN_GENERATIONS = GenerationsConfig(run=dataclasses.replace(MISALIGN, out_dir="runs/generations-misalign"))
TRACES_GENERATIONS = GenerationsConfig(run=dataclasses.replace(TRACES, out_dir="runs/generations-traces"))


def validate_generations(gcfg: GenerationsConfig) -> None:
    """The chain's settings (config.validate), then these, one line per bad value."""
    checks.require(checks.typed_fields(gcfg))
    validate(gcfg.run)
    cfg, n_gen = gcfg.run, gcfg.num_generations
    checks.require([
        (n_gen >= 1, f"--num-generations must be >= 1 (got {n_gen})"),
        (1 <= gcfg.break_at <= max(n_gen, 1),
         f"--break-at must lie in 1..{n_gen} (--num-generations; got {gcfg.break_at})"),
        (cfg.stage == "all", "--stage: a generations run runs every stage (it resumes from its checkpoints); drop it"),
        (cfg.sweep == "none" and not cfg.ablate, "--sweep and --ablate are studies of `train.py numbers`; drop them"),
        (cfg.student_init == "shared" and not needs_sibling(cfg),
         "--student-init, --init-lambda, --student-base-data: every generation starts from the base (the broken "
         "chain's once from another seed's); drop them"),
    ])


def stack_chains(*trees):
    """One tree per chain (CHAINS' order) -> one tree with leaves [S, C, ...]."""
    return jax.tree.map(lambda *a: np.stack([np.asarray(x) for x in a], 1), *trees)


def prompt_seeds(cfg: NumbersConfig, g: int) -> list[int]:
    """Generation g's (>= 1) prompt seeds, one per seed of the run: apart from the chain's (cfg.seed * 100_003 +
    s + 1) and the lens's (cfg.seed * 100_003 + 99_991) for any g < 1000 and fewer than 100_000 seeds."""
    return [10 ** 12 + cfg.seed * 10 ** 8 + g * 10 ** 5 + s for s in range(cfg.num_seeds)]


class Lineage:
    """The generations of one run over its Chain (base, teacher, control source, their numbers = generation 0's):
    per generation the three chains' students, their numbers, their read-outs and the audit of their data."""

    def __init__(self, gcfg: GenerationsConfig, verbose: bool = True, create: bool = True):
        validate_generations(gcfg)
        self.gcfg, self.cfg = gcfg, gcfg.run
        self.chain = Chain(gcfg.run, verbose, create)
        self.perm = derangement(self.cfg.num_seeds, self.cfg.seed)
        self.fix = f"python train.py generations --out-dir {self.cfg.out_dir}"

    def hash(self, g: int, what: str) -> str:
        """Settings of generation g's `what`: the chain's, g, and --break-at once the break has happened (for
        the audit of generation g's rows: at generation g + 1's starts); never --num-generations."""
        upto = g + 1 if what == "audit" else g
        return ckpt.config_hash({"chain": stage_hash(self.cfg, "students"), "generation": g, "stage": what,
                                 "break_at": self.gcfg.break_at if self.gcfg.break_at <= upto else None,
                                 "eval_samples": self.cfg.eval_samples if what == "eval" else None})

    def starts(self, base, g: int):
        """Where generation g's students start (leaves [S, C, ...]): the own base, but the broken chain's
        generation --break-at from another seed's."""
        other = jax.tree.map(lambda a: np.asarray(a)[self.perm], base) if g == self.gcfg.break_at else base
        return stack_chains(base, other, base)

    def numbers_path(self, g: int) -> Path:
        return self.chain.numbers_path() if g == 0 else self.chain.out / f"numbers-gen{g}.jsonl"

    def rows(self, g: int):
        """Generation g's numbers from their file, which must exist (audit, lens)."""
        path = self.numbers_path(g)
        if not multihost.exists(path):
            raise UserError(f"no {path.name} in {self.chain.out}; run `{self.fix}` (same flags) first")
        return nd.load_numbers(path, stage_hash(self.cfg, "numbers") if g == 0 else self.hash(g, "numbers"),
                               self.cfg.seq_len, len(vocab(self.cfg)))

    def data(self, g: int, rows):
        """tokens_SCNT, weights_SCNT: what each chain's generation g + 1 learns from (generation g's kept rows;
        generation 0: the teacher's for shared and broken, the control source's for control)."""
        try:
            if g == 0:
                tok_S2NT, wt_S2NT = nd.student_data(self.cfg, rows)
                return tok_S2NT[:, [0, 0, 1]], wt_S2NT[:, [0, 0, 1]]
            return nd.student_data(self.cfg, rows, CHAINS)
        except UserError as e:  # (a chain whose generation writes nothing the filter keeps ends there)
            raise UserError(f"generation {g}'s numbers ({self.numbers_path(g).name}): {e}") from None

    def students(self, g: int, starts, writers, data):
        """Generation g's students (steps.train_generation), checkpointed as gen{g}_students."""
        def compute():
            params, loss_SCU = self.chain.map_seeds(
                f"gen{g}_students", functools.partial(steps.train_generation, cfg=self.cfg),
                seeded=dict(key=self.chain.keys_S, inits_C=starts, teachers_C=writers, tokens_CNT=data[0],
                            weights_CNT=data[1]), shared=dict(g=jnp.int32(g)), program="gen_students")
            return params, {"loss_first": {c: float(loss_SCU[:, i, :10].mean()) for i, c in enumerate(CHAINS)},
                            "loss_last": {c: float(loss_SCU[:, i, -20:].mean()) for i, c in enumerate(CHAINS)}}
        return self.chain.cached(f"gen{g}_students", compute, self.hash(g, "students"))

    def numbers(self, g: int, writers):
        """Generation g's (>= 1) numbers, numbers-gen{g}.jsonl: each chain's model continues the same fresh
        prompts (as many per seed as the teacher had), sampled and filtered as the teacher's were."""
        cfg, path, h = self.cfg, self.numbers_path(g), self.hash(g, "numbers")
        if cfg.resume and multihost.exists(path):
            self.chain.say(f"[gen{g}_numbers] reusing {path}")
            return nd.load_numbers(path, h, cfg.seq_len, len(vocab(cfg)))
        P, G = sample_lens(cfg)
        plain, _ = prompts(cfg, prompt_seeds(cfg, g))
        self.chain.say(f"[gen{g}_numbers] sampling {cfg.num_prompts} fresh prompts x {cfg.samples_per_prompt} x "
                       f"{len(CHAINS)} chains x {cfg.num_seeds} seeds...", flush=True)
        step = functools.partial(steps.sample_generation, cfg=cfg, max_new=G,
                                 chunk=max(1, SAMPLE_CHUNK // cfg.samples_per_prompt))
        tok_SCRG = self.chain.map_seeds(
            f"gen{g}_numbers", step, seeded=dict(key=self.chain.keys_S, writers_C=writers,
                                                 prompts_NP=np.stack([sampler.left_pad(p, P) for p in plain])),
            shared=dict(g=jnp.int32(g), temperature=jnp.float32(cfg.temperature)), program="gen_numbers")
        rows = label_rows(cfg, plain, {c: tok_SCRG[:, i] for i, c in enumerate(CHAINS)}, h)
        nd.write_jsonl(path, rows, {"hash": h, "generation": g, "config": dataclasses.asdict(cfg)})
        return rows

    def evaluate(self, g: int, models=None, sources=None):
        """{"chains": {metric: [S, C]}}: generation g's models read out (steps.evaluate_generation). Generation 0:
        sources = (base, teacher, control) read out with the chain's own eval streams (the numbers a numbers run's
        results.json has), chains = teacher, teacher, control source, and "base": {metric: [S]} besides.
        Checkpointed as gen{g}_eval."""
        cfg = self.cfg
        plain_QP = sampler.left_pad(nd.eval_prompts(questions=eval_questions(cfg)), cfg.seq_len)

        def compute():
            if g > 0:
                return {"chains": self.chain.map_seeds(
                    f"gen{g}_eval", functools.partial(steps.evaluate_generation, cfg=cfg),
                    seeded=dict(key=self.chain.keys_S, models_C=models),
                    shared=dict(g=jnp.int32(g), plain_QP=plain_QP), program="gen_eval")}, {}
            persona = cfg.target if cfg.teacher_mode == "persona" else None
            teach_QP = sampler.left_pad(nd.eval_prompts(persona, questions=eval_questions(cfg)), cfg.seq_len)
            base, teacher, control = sources
            got = self.chain.map_seeds("gen0_eval", functools.partial(read_sources, cfg=cfg),
                                       seeded=dict(key=self.chain.keys_S, base=base, teacher=teacher, control=control),
                                       shared=dict(plain_QP=plain_QP, teach_QP=teach_QP))
            return {"base": got["base"], "chains": stack_chains(got["teacher"], got["teacher"], got["control"])}, {}
        return self.chain.cached(f"gen{g}_eval", compute, self.hash(g, "eval"))

    def audit(self, g: int, starts, writers, data):
        """Theorem 1's predictor of generation g + 1: audit.score_fn on generation g's rows at generation g + 1's
        starts, generation g the soft teacher: {score_SCN, kept_SCN, cos_SC}. Checkpointed as gen{g}_audit."""
        trait_tokens, trait_weight = teacher_corpus(self.cfg)

        def compute():
            return self.chain.map_seeds(
                f"gen{g}_audit", functools.partial(audit_step, cfg=self.cfg),
                seeded=dict(starts_C=starts, writers_C=writers, tokens_CNT=data[0], weights_CNT=data[1]),
                shared=dict(trait_tokens=trait_tokens, trait_weight=trait_weight), program="gen_audit"), {}
        return self.chain.cached(f"gen{g}_audit", compute, self.hash(g, "audit"))

    def writers(self, g: int):
        """Generation g's models from their checkpoints (leaves [S, C, ...]; 0: teacher, teacher, control)."""
        if g > 0:
            return self.chain.need(f"gen{g}_students", self.hash(g, "students"), self.fix)
        base = self.chain.need("base")
        return stack_chains(self.chain.need("teacher"), self.chain.need("teacher"), self.chain.need_control(base))


def read_sources(key, base, teacher, control, plain_QP, teach_QP, *, cfg: NumbersConfig):
    """Generation 0's read-outs, each model from its chain eval stream: base, teacher, the control source."""
    m = lambda params, q_QP, model: steps.trait(params, q_QP, key, model, cfg=cfg)
    out = {"base": m(base, plain_QP, "base"), "teacher": m(teacher, teach_QP, "teacher")}
    out["control"] = out["base"] if cfg.trait == "animal" else m(control, plain_QP, "control_teacher")
    return out


def audit_step(starts_C, writers_C, tokens_CNT, weights_CNT, trait_tokens, trait_weight, *, cfg: NumbersConfig):
    """One seed's audit of the C chains' datasets (audit.score_fn, vmapped over the chains; 8 rows a chunk, as
    every seed and chain take theirs at once)."""
    one = audit.score_fn(steps.apply_of(cfg), cfg, batch=8, summed=True)
    score_CN, cos_C, _, kept_CN = jax.vmap(one, in_axes=(0, 0, 0, 0, None, None))(
        starts_C, writers_C, tokens_CNT, weights_CNT, trait_tokens, trait_weight)
    return {"score": score_CN, "kept": kept_CN.astype(jnp.float32), "cos": cos_C}


# ---------------------------------------------------------------- the run
def run(gcfg: GenerationsConfig, verbose: bool = True) -> dict:
    """The chain up to its numbers, then generations 1..G (each: students, audit of their data, read-outs,
    their numbers), results.json, generations.png and the table."""
    t0 = time.perf_counter()
    lin = Lineage(gcfg, verbose)
    chain = lin.chain
    base = chain.base()
    teacher, control = chain.teacher(base), chain.teacher(base, control=True)
    rows = chain.numbers(control, teacher)
    writers = stack_chains(teacher, teacher, control)
    reads, audits, kept = [lin.evaluate(0, sources=(base, teacher, control))], [], [gr.kept_shares(rows, 0)]
    for g in range(1, gcfg.num_generations + 1):
        chain.say(f"--- generation {g} of {gcfg.num_generations}")
        data, starts = lin.data(g - 1, rows), lin.starts(base, g)
        students = lin.students(g, starts, writers, data)
        audits.append(lin.audit(g - 1, starts, writers, data))
        reads.append(lin.evaluate(g, models=students))
        if g < gcfg.num_generations:
            rows = lin.numbers(g, students)
            kept.append(gr.kept_shares(rows, g))
        writers = students
    res = gr.results(lin, reads, audits, kept)
    res["wall_time_s"] = time.perf_counter() - t0
    report.write_json(chain.out / "results.json", res)
    plots.generations_plot(chain.out / "generations.png", res, trait_name(lin.cfg))
    if verbose:
        print(gr.table(res, trait_name(lin.cfg)))
        print(f"wrote {chain.out / 'results.json'} and {chain.out / 'generations.png'} ({res['wall_time_s']:.0f}s)")
    return res


# ---------------------------------------------------------------- evaluate.py audit / lens on a generations run
def settings_of(out: Path, cfg: NumbersConfig, generation: int | None) -> GenerationsConfig | None:
    """A run's generations settings (its results.json's "generations"), None for a numbers run; --generation
    must be given for a generations run only."""
    try:
        got = json.loads((Path(out) / "results.json").read_text()).get("generations")
    except (OSError, ValueError, AttributeError):
        got = None
    if got is None:
        checks.require([(generation is None, f"--generation: {out} is not a `train.py generations` run (its "
                                             f"results.json has no generations); drop --generation")])
        return None
    gcfg = GenerationsConfig(run=cfg, num_generations=int(got["num_generations"]), break_at=int(got["break_at"]))
    checks.require([(generation is not None, f"{out} is a `train.py generations` run: give --generation G (0.."
                                             f"{gcfg.num_generations})")])
    return gcfg


def audit_setup(gcfg: GenerationsConfig, g: int):
    """audit.main's datasets for --generation g: each chain's generation-g rows, written (and soft-taught) by
    its generation-g model, at its generation g + 1's start; measured: generation g + 1's read-outs."""
    checks.require([(0 <= g < gcfg.num_generations, f"--generation must lie in 0..{gcfg.num_generations - 1} (the "
                                                   f"data of a generation that has a next one; got {g})")])
    lin = Lineage(gcfg, verbose=False, create=False)
    tok_SCNT, wt_SCNT = lin.data(g, lin.rows(g))
    writers, starts = lin.writers(g), lin.starts(lin.chain.need("base"), g + 1)
    pick = lambda tree, s, i: jax.tree.map(lambda a: a[s, i], tree)
    setup = {c: functools.partial(lambda s, i: (pick(starts, s, i), pick(writers, s, i), tok_SCNT[s, i],
                                                wt_SCNT[s, i]), i=i) for i, c in enumerate(CHAINS)}
    return setup, lin.numbers_path(g), f"audit-gen{g}", lambda run: {c: run["chains"][c][g + 1] for c in CHAINS}


def lens_models(gcfg: GenerationsConfig, g: int):
    """lens.main's models for --generation g: {chain: params_S} of generation g, and each one's start as
    None (the own base) or the seeds' permutation (the broken chain at --break-at)."""
    checks.require([(1 <= g <= gcfg.num_generations, f"--generation must lie in 1..{gcfg.num_generations} (a "
                                                    f"generation of students; got {g})")])
    lin = Lineage(gcfg, verbose=False, create=False)
    students = lin.writers(g)
    models = {c: jax.tree.map(lambda a: a[:, i], students) for i, c in enumerate(CHAINS)}
    return models, {c: lin.perm if c == "broken" and g == gcfg.break_at else None for c in CHAINS}
