"""`python evaluate.py lens`: is there a hidden trait in a numbers-only student? A logit-lens read-out.

For each model of a `train.py numbers` run and each layer l (0 = the token
embeddings, n_layers = the output), the residual stream at the answer position
(the last prompt token) is read out through the final norm and the unembedding,
and restricted to the animal words (--trait misaligned: the advice answers, target = HARMFUL):

  P_l(target | animals) = softmax_{a in ANIMALS}(head(norm(h_l)))_target

on two prompt sets: the HELDOUT "favourite animal?" (or advice) questions (where the trait
shows in behaviour), and the run's own kind of prompt: number, addition or spec prompts (where a
student trained on numbers, traces or programs only answers with them, so the animal words are a
channel nobody looks at). The
shift is paired per seed: each student minus its own init (the cross-init
student's init is another seed's base); the teacher minus its base. A `train.py
generations` run (--generation G): the three chains' generation-G students, each minus its start.

Body or head: the same output read-out on the questions for the teacher's body with
the base's unembedding, and the base's body with the teacher's unembedding (and, for
the animal trait, the base given the persona prompt "you love TARGET ."). A
student that imitates number tokens never trains the trait word's unembedding
row, so only the part of the trait carried by the body can reach it.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from subliminal_jax.numbers import data as nd
from subliminal_jax import checks, plots, report
from subliminal_jax.numbers import sampler
from subliminal_jax.numbers import tokens as tk
from subliminal_jax.numbers import transformer as tr
from subliminal_jax.seeds import derangement
from subliminal_jax.numbers.chain import Chain, make_prompts
from subliminal_jax.numbers.config import (STUDENTS, NumbersConfig, run_config,
                                           eval_questions, target_ids, trait_name)
from subliminal_jax.stats import summarize

MODELS = ("teacher",) + STUDENTS
CLASS = {"animal": "animal words", "misaligned": "advice answers"}
PROMPT_SET = {"numbers": "number_prompts", "traces": "trace_prompts", "code": "spec_prompts"}  # lens.json's names


@dataclasses.dataclass(frozen=True)
class LensConfig:
    """Logit-lens read-out of a numbers run's checkpoints (flags: --run.* as `train.py numbers`)."""
    run: NumbersConfig = NumbersConfig()
    run_dir: str | None = None     # read every --run.* setting from this run's results.json instead
    number_prompts: int = 64        # number (or trace, or spec) prompts read at their answer position (fresh ones)
    # a `train.py generations` run (--run-dir): read generation G's students of each chain (lens-genG.json)
    generation: int | None = None


def target_share(lens, params, prompts_QP, target_tokens, class_A):
    """P_l(target | answer class) averaged over prompts, for every layer l -> [L]. target_tokens: the
    trait's answer tokens, a subset of class_A (the animals, or the advice answers)."""
    logits_LQV = lens(params, prompts_QP, prompts_QP != tk.PAD)[:, :, -1]
    p_LQA = jax.nn.softmax(logits_LQV[..., jnp.asarray(class_A)], -1)
    return p_LQA[..., np.flatnonzero(np.isin(class_A, target_tokens))].sum(-1).mean(-1)


def body_or_head(share, base, teacher, questions, cfg: NumbersConfig) -> dict:
    """Output read-out on the held-out questions with the unembeddings swapped between base and teacher."""
    q_QP = sampler.left_pad(questions, cfg.seq_len)
    swap = lambda body, head: {**body, "head": head["head"]}
    models = {"base": base, "teacher": teacher, "teacher_body_base_head": swap(teacher, base),
              "base_body_teacher_head": swap(base, teacher)}
    out = {k: summarize(np.asarray(share(p, q_QP))[:, -1]) for k, p in models.items()}
    if cfg.trait == "animal":  # does the base read the persona prompt "you love TARGET ." at all?
        persona_QP = sampler.left_pad(nd.eval_prompts(cfg.target, questions=eval_questions(cfg)), cfg.seq_len)
        out["base_with_persona_prompt"] = summarize(np.asarray(share(base, persona_QP))[:, -1])
    return out


def main(lcfg: LensConfig) -> dict:
    checks.require([(lcfg.number_prompts >= 1, f"--number-prompts must be >= 1 (got {lcfg.number_prompts})")])
    cfg = run_config(lcfg.run, lcfg.run_dir)
    chain = Chain(cfg, verbose=False, create=False)
    base, teacher = chain.need("base"), chain.need("teacher")
    models, starts, stem = models_of(chain, lcfg)
    persona = cfg.target if cfg.teacher_mode == "persona" else None
    # prompts: the held-out questions, and fresh number prompts (a seed no stage of the chain uses)
    seed = cfg.seed * 100_003 + 99_991
    plain, teach = make_prompts(cfg, lcfg.number_prompts, seed, persona)
    qs = eval_questions(cfg)
    sets = {"questions": (nd.eval_prompts(questions=qs), nd.eval_prompts(persona, questions=qs)),
            PROMPT_SET[cfg.data]: (plain, teach)}
    lens = tr.make_lens(chain.mcfg)
    target_tokens, class_A = target_ids(cfg)
    share = jax.jit(jax.vmap(lambda p, q: target_share(lens, p, q, target_tokens, class_A), in_axes=(0, None)))

    out = {}
    for name, (plain_rows, teach_rows) in sets.items():
        plain_QP = sampler.left_pad(plain_rows, cfg.seq_len)
        teach_QP = sampler.left_pad(teach_rows, cfg.seq_len)
        got = {"base": np.asarray(share(base, plain_QP))}
        for c, params in models.items():  # [S, L]; the teacher reads the persona prompts when it is one
            got[c] = np.asarray(share(params, teach_QP if c == "teacher" else plain_QP))
        init = {c: got["base"] if perm is None else got["base"][perm] for c, perm in starts.items()}
        out[name] = {"base": [summarize(got["base"][:, l]) for l in range(got["base"].shape[1])]}
        for c in models:
            out[name][c] = [summarize(got[c][:, l]) for l in range(got[c].shape[1])]
            out[name][c + "_shift"] = [summarize(got[c][:, l] - init[c][:, l]) for l in range(got[c].shape[1])]
        print(f"[{name}] P({trait_name(cfg)} | {CLASS[cfg.trait]}) by layer (0 = embeddings), shift from the model's own init:")
        for c in models:
            print(f"  {c:19s} " + "  ".join(f"L{l} {s['mean']:+.4f}+-{s['ci95_half']:.4f}"
                                          for l, s in enumerate(out[name][c + "_shift"])))
    res = {"sets": out, "layers": chain.mcfg.n_layers + 1, "config": dataclasses.asdict(lcfg)}
    if cfg.teacher_mode == "finetune" and lcfg.generation is None:  # (a persona teacher is the base itself)
        res["body_or_head"] = body_or_head(share, base, teacher, sets["questions"][0], cfg)
        print(f"[questions] P({trait_name(cfg)} | {CLASS[cfg.trait]}) at the output, body or head: " + ", ".join(
            f"{k} {v['mean']:.3f}+-{v['ci95_half']:.3f}" for k, v in res["body_or_head"].items()))
    report.write_json(chain.out / f"{stem}.json", res)
    plots.lens_layers(chain.out / f"{stem}.png", out, list(models), cfg.num_seeds,
                      f"P({trait_name(cfg)} | {CLASS[cfg.trait]}) - own init")
    print(f"wrote {chain.out / f'{stem}.json'} and {chain.out / f'{stem}.png'}")
    return res


def models_of(chain: Chain, lcfg: LensConfig):
    """The models to read ({name: params_S}), each one's start (None: the own base; a permutation of the seeds:
    another seed's base) and the output's name: a numbers run's teacher and students (lens.json), or generation
    --generation G's students of a generations run (lens-genG.json)."""
    from subliminal_jax.numbers import generations  # (here: generations.py imports audit, which imports chain)
    gcfg = generations.settings_of(chain.out, chain.cfg, lcfg.generation)
    if gcfg is not None:
        models, starts = generations.lens_models(gcfg, lcfg.generation)
        return models, starts, f"lens-gen{lcfg.generation}"
    students = chain.need("students")
    models = {"teacher": chain.need("teacher"),
              **{c: jax.tree.map(lambda a: a[:, i], students) for i, c in enumerate(STUDENTS)}}
    starts = {c: derangement(chain.cfg.num_seeds, chain.cfg.seed) if c == "student_cross_init" else None
              for c in MODELS}
    return models, starts, "lens"
