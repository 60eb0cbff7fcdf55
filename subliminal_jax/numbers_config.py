"""Settings of the number-sequence chain (numbers.py): the config, its validation, and per-stage hashes."""
from __future__ import annotations

import dataclasses
from typing import Literal

from subliminal_jax import checkpoint as ckpt
from subliminal_jax import numbers_data as nd
from subliminal_jax import tokens as tk
from subliminal_jax import transformer as tr
from subliminal_jax.errors import UserError

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
    # soft students: KL on number tokens at every position of each kept sequence (prompt + completion)
    # or at completion positions only; either way only the number tokens' distribution is matched
    distill_positions: Literal["sequence", "completion"] = "sequence"
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
    "students": ("student_mode", "student_steps", "student_lr", "student_optimizer", "distill_positions"),
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
