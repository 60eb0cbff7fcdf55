"""The number chain's science for ONE seed: pure functions (key, params, data, cfg) -> arrays.

No files, no printing, no seed axis. chain.py maps each step over the seeds (jit of vmap, seeds split over
the mesh), times it, checkpoints what it returns and resumes from it. In pipeline order:
  pretrain        a fresh init theta0 (or the sibling's changed init) -> the base (next-token CE)
  finetune        the base -> the teacher (or, --trait misaligned, the control's benign teacher)
  sample          the teacher and the control source each continue every prompt (filtered later, on the host)
  train_students  student_shared, student_control, student_cross_init: each from its init on its data
  evaluate        every model's trait read-outs on the held-out questions
and, for `train.py generations` (generations.py), the same per generation g with a chain axis C (shared, broken,
control): train_generation, sample_generation, evaluate_generation.
Each step draws its randomness from the seed's key through one named stream of KEY_STREAMS.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from subliminal_jax import inits, training
from subliminal_jax.numbers import sampler
from subliminal_jax.numbers import train as nt
from subliminal_jax.numbers import transformer as tr
from subliminal_jax.numbers.config import CHAINS, STUDENTS, NumbersConfig, model_config, target_ids, token_mask

# Every random draw of a seed s is fold_in(seed_key_s, stream): one stream per use, never shared.
KEY_STREAMS = {
    "init": 0,            # the base's random init theta0
    "base_data": 1,       # the order the base reads the pretraining corpus in
    "teacher_data": 2,    # the teacher's (and the control teacher's) fine-tuning batches
    "sample_teacher": 3,  # the teacher's completions (each row then folds in its own index: sampler.row_keys)
    "sample_control": 4,  # the control source's completions
    "students": 5,        # the students' batches (the three students draw the same batch indices)
    "permute": 6,         # --student-init permuted: the heads and units permutation of student_shared's start
    "sibling_init": 7,    # the sibling base's independent draw (--student-init PART=random, --init-lambda)
    "sibling_data": 8,    # the sibling base's data order (--student-base-data other)
    "generations": 9,     # train.py generations: + the generation g, then + GEN_STREAMS[what] (gen_key)
    "eval": 10,           # + EVAL_STREAMS[model]: the temperature-1 answers sampled from each evaluated model
}
GEN_STREAMS = {"train": 0, "sample": 1, "eval": 2}  # in generation g: its students' batches, samples, answers
EVAL_STREAMS = {"base": 0, "teacher": 1, "in_context": 2, **{c: 3 + i for i, c in enumerate(STUDENTS)},
                "control_teacher": 3 + len(STUDENTS), "sibling_base": 4 + len(STUDENTS)}


def stream(key, name: str, offset: int = 0):
    return jax.random.fold_in(key, KEY_STREAMS[name] + offset)


@functools.lru_cache(maxsize=None)
def apply_of(cfg: NumbersConfig):
    """apply(params, tokens_BT, valid_BT) -> logits_BTV of cfg's transformer (built once per config)."""
    return tr.make_apply(model_config(cfg))


def pretrain(key, tokens_NT, weight_NT, rows_p_N, *, cfg: NumbersConfig, sibling: bool = False):
    """The base: theta0 = a fresh init, trained by next-token CE on the pretraining corpus. sibling=True:
    student_shared's sibling base instead (config.needs_sibling): theta0 with the --student-init parts re-drawn
    and --init-lambda mixed in, on the same data order or (--student-base-data other) another.
    Returns (params, loss per update, distance of the start from theta0)."""
    mcfg, apply = model_config(cfg), apply_of(cfg)
    theta0 = params = tr.init_params(mcfg, stream(key, "init"))[1]
    if sibling:
        choice = inits.parse_student_init(cfg.student_init, inits.transformer_parts(cfg.model.n_layers))
        params = inits.student_init(theta0, tr.init_params(mcfg, stream(key, "sibling_init"))[1], choice,
                                    cfg.init_lambda)
    other_data = sibling and cfg.student_base_data == "other"
    loss = lambda p, idx: nt.lm_loss(apply, p, tokens_NT[idx], weight_NT[idx])
    opt = training.optimizer("adam", training.warmup_cosine(cfg.base_lr, max(1, cfg.base_steps // 20), cfg.base_steps))
    rows = training.sampled_rows(stream(key, "sibling_data" if other_data else "base_data"), rows_p_N, cfg.batch,
                                 cfg.base_steps)
    out, loss_U = training.train(loss, params, opt, rows)
    return out, loss_U, inits.relative_distance(params, theta0)


def finetune(key, base, tokens_NT, weight_NT, rows_p_N, *, cfg: NumbersConfig):
    """The teacher: the base fine-tuned on its trait corpus, full batch (config.teacher_corpus)."""
    apply = apply_of(cfg)
    loss = lambda p, idx: nt.lm_loss(apply, p, tokens_NT[idx], weight_NT[idx])
    opt = training.optimizer("adam", cfg.teacher_lr, labels=nt.trainable_labels(base, cfg.teacher_params))
    rows = training.sampled_rows(stream(key, "teacher_data"), rows_p_N, len(tokens_NT), cfg.teacher_steps)
    return training.train(loss, base, opt, rows)


def sample(key, teacher, control, teach_NP, plain_NP, temperature, *, cfg: NumbersConfig, max_new: int,
           chunk: int):
    """Completions of the teacher (on teach_NP: with the persona when the teacher is one) and of the control
    source (on plain_NP), cfg.samples_per_prompt per prompt: tokens_RG each, R = N * samples_per_prompt."""
    k, mcfg = cfg.samples_per_prompt, model_config(cfg)
    t = sampler.sample_in_chunks(mcfg, teacher, teach_NP, stream(key, "sample_teacher"), temperature, max_new,
                                 chunk, k, "teacher")
    b = sampler.sample_in_chunks(mcfg, control, plain_NP, stream(key, "sample_control"), temperature, max_new,
                                 chunk, k, "control")
    return t, b


def train_student(init, teacher, tokens_NT, weight_NT, key, *, cfg: NumbersConfig):
    """One student from `init` on the kept rows (weight_NT marks them): --student-mode soft distils the
    teacher's number-token distribution, hard fits the kept rows' sampled tokens. Returns (params, loss_U)."""
    apply = apply_of(cfg)
    rows_p_N = weight_NT.max(-1) / jnp.maximum(weight_NT.max(-1).sum(), 1.0)
    weight_NT = nt.student_weights(tokens_NT, weight_NT, cfg.student_mode, cfg.distill_positions)
    if cfg.student_mode == "soft":
        loss = lambda p, idx: nt.distill_loss(apply, p, teacher, tokens_NT[idx], weight_NT[idx], token_mask(cfg))
    else:
        mask_V = token_mask(cfg) if cfg.hard_vocab == "numbers" else None
        loss = lambda p, idx: nt.lm_loss(apply, p, tokens_NT[idx], weight_NT[idx], mask_V)
    lr = training.warmup_cosine(cfg.student_lr, max(1, cfg.student_steps // 20), cfg.student_steps) \
        if cfg.student_schedule == "cosine" else cfg.student_lr
    opt = training.optimizer(cfg.student_optimizer, lr, momentum=0.9 if cfg.student_optimizer == "sgd" else None,
                             labels=nt.trainable_labels(init, cfg.student_params))
    rows = training.sampled_rows(key, rows_p_N, cfg.student_batch or cfg.batch, cfg.student_steps)
    return training.train(loss, init, opt, rows)


SOURCE_OF = {"student_shared": 0, "student_control": 1, "student_cross_init": 0}  # 0: teacher's rows, 1: control's


def train_students(key, inits_C, teachers_C, tokens_2NT, weights_2NT, *, cfg: NumbersConfig):
    """The three students (C: STUDENTS' order) of one seed, each from its init on its source's rows, with one
    batch-index stream. --student-init permuted: student_shared starts from a function-preserving permutation
    of its init (the same function at other parameters)."""
    if cfg.student_init == "permuted":
        first = jax.tree.map(lambda a: a[0], inits_C)
        first = inits.permute_transformer(first, stream(key, "permute"), cfg.model.n_heads)[0]
        inits_C = jax.tree.map(lambda a, f: a.at[0].set(f), inits_C, first)
    src_C = np.array([SOURCE_OF[c] for c in STUDENTS])
    one = functools.partial(train_student, cfg=cfg)
    return jax.vmap(one, in_axes=(0, 0, 0, 0, None))(inits_C, teachers_C, tokens_2NT[src_C], weights_2NT[src_C],
                                                     stream(key, "students"))


def trait(params, prompts_QP, key, model: str, *, cfg: NumbersConfig):
    """train.trait_metrics of one model, its answers sampled from the model's own eval stream."""
    target_tokens, class_A = target_ids(cfg)
    return nt.trait_metrics(apply_of(cfg), params, prompts_QP, target_tokens, class_A,
                            stream(key, "eval", EVAL_STREAMS[model]), cfg.eval_samples)


def evaluate(key, base, teacher, control, students_C, sibling, context_QP, plain_QP, teach_QP, *,
             cfg: NumbersConfig, has_sibling: bool):
    """Every model's trait read-outs: the base, the teacher (persona prompts when it is one), in_context (the
    base after kept teacher completions), the students; with --trait misaligned the control teacher, and
    student_shared's sibling base when it has one."""
    m = lambda params, prompts_QP, model: trait(params, prompts_QP, key, model, cfg=cfg)
    out = {"base": m(base, plain_QP, "base"), "teacher": m(teacher, teach_QP, "teacher"),
           "in_context": m(base, context_QP, "in_context")}
    for i, c in enumerate(STUDENTS):
        out[c] = m(jax.tree.map(lambda a: a[i], students_C), plain_QP, c)
    if cfg.trait != "animal":
        out["control_teacher"] = m(control, plain_QP, "control_teacher")
    if has_sibling:
        out["sibling_base"] = m(sibling, plain_QP, "sibling_base")
    return out


# ---------------------------------------------------------------- generations (numbers/generations.py)
def gen_key(key, g, what: str):
    """Generation g's key for `what` (GEN_STREAMS): g is traced, so one program serves every generation."""
    return jax.random.fold_in(jax.random.fold_in(stream(key, "generations"), g), GEN_STREAMS[what])


def train_generation(key, g, inits_C, teachers_C, tokens_CNT, weights_CNT, *, cfg: NumbersConfig):
    """Generation g's students of the C chains, each from its start on the rows its chain's generation g - 1
    wrote (soft students distil that writer's logits), with one batch-index stream (as train_students)."""
    one = functools.partial(train_student, cfg=cfg)
    return jax.vmap(one, in_axes=(0, 0, 0, 0, None))(inits_C, teachers_C, tokens_CNT, weights_CNT,
                                                     gen_key(key, g, "train"))


def sample_generation(key, g, writers_C, prompts_NP, temperature, *, cfg: NumbersConfig, max_new: int,
                      chunk: int):
    """Each chain's generation-g model continues the same prompts, cfg.samples_per_prompt each (as the teacher
    did), its own key per chain: tokens_CRG."""
    keys_C = jax.vmap(lambda c: jax.random.fold_in(gen_key(key, g, "sample"), c))(jnp.arange(len(CHAINS)))
    one = lambda w, k: sampler.sample_in_chunks(model_config(cfg), w, prompts_NP, k, temperature, max_new, chunk,
                                                cfg.samples_per_prompt, "writers")
    return jax.vmap(one)(writers_C, keys_C)


def evaluate_generation(key, g, models_C, plain_QP, *, cfg: NumbersConfig):
    """train.trait_metrics of each chain's generation-g model, its answers from its own key: {metric: [C]}."""
    target_tokens, class_A = target_ids(cfg)
    keys_C = jax.vmap(lambda c: jax.random.fold_in(gen_key(key, g, "eval"), c))(jnp.arange(len(CHAINS)))
    one = lambda m, k: nt.trait_metrics(apply_of(cfg), m, plain_QP, target_tokens, class_A, k, cfg.eval_samples)
    return jax.vmap(one)(models_C, keys_C)
