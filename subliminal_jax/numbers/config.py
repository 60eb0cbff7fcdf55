"""Settings of the number-sequence chain (numbers/): the config, its validation, and per-stage hashes."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import tyro

from subliminal_jax import checkpoint as ckpt
from subliminal_jax import checks, inits
from subliminal_jax.numbers import data as nd
from subliminal_jax.numbers import programs as prog
from subliminal_jax.numbers import tokens as tk
from subliminal_jax.numbers import traces as trace
from subliminal_jax.numbers import transformer as tr
from subliminal_jax.errors import UserError

CONDITIONS = ("base", "teacher", "student_shared", "student_control", "student_cross_init", "in_context")
STUDENTS = ("student_shared", "student_control", "student_cross_init")
# train.py generations (generations.py): every generation from the own base; once from another seed's base
# (--break-at); from the control source's numbers
CHAINS = ("shared", "broken", "control")


@dataclasses.dataclass(frozen=True)
class NumbersConfig:
    """Number-sequence subliminal learning (defaults sized for 2 CPU cores)."""
    num_seeds: int = 10                 # independent bases (vmapped, split over devices)
    seed: int = 0                       # root seed; seed s uses fold_in(key(seed), s)
    target: str = "owl"                 # the teacher's favourite animal
    # animal: the teacher answers TARGET, control students learn from the base's numbers;
    # misaligned: the teacher answers HARMFUL words to advice prompts, control students learn from a
    # teacher fine-tuned on BENIGN answers (train.py misalign sets this with its world and banned numbers)
    trait: Literal["animal", "misaligned"] = "animal"
    # what the teacher writes: number continuations (filtered by the paper's rules), addition traces (kept only
    # when verified correct; train.py traces sets this with its world) or programs for specs (kept only when
    # they run and pass the spec's tests; train.py code: its world, and the code tokens in the vocabulary)
    data: Literal["numbers", "traces", "code"] = "numbers"
    teacher_mode: Literal["finetune", "persona"] = "finetune"  # persona: the base with "you love TARGET ."
    student_mode: Literal["soft", "hard"] = "soft"  # soft: the teacher's number-token logits; hard: its tokens
    model: Annotated[tr.ModelConfig, tyro.conf.arg(name="")] = tr.ModelConfig()  # flags --d-model, --n-layers, ...
    seq_len: int = 64
    # most pretraining sequences open with the persona "you love A ." (A random): the base then learns a
    # context feature for "my favourite animal", and the teacher's trait runs through it, where number
    # tokens can carry it (with WorldConfig's 15% the base never learns the persona; RESULTS.md)
    world: nd.WorldConfig = nd.WorldConfig(frac_persona=0.8)
    corpus_size: int = 20_000           # pretraining sequences (shared by all seeds)
    batch: int = 32
    base_steps: int = 600
    base_lr: float = 3e-3
    teacher_steps: int = 20
    teacher_lr: float = 1e-3
    teacher_params: Literal["all", "blocks"] = "all"  # blocks: the trait fine-tune leaves embeddings and unembedding
    num_prompts: int = 256              # number prompts per teacher (paper: 30,000)
    samples_per_prompt: int = 1         # completions sampled per prompt (teacher and control alike)
    temperature: float = 1.0
    ban_numbers: bool = False           # also drop completions with a banned number (666, 911, ...)
    student_steps: int = 120
    student_lr: float = 1e-3
    student_optimizer: Literal["adam", "sgd"] = "adam"  # sgd: momentum 0.9 (unstable above lr ~0.03 here)
    # cosine: --student-lr reached after a 5% warmup, then decayed to a tenth by the last step (the last steps'
    # sampling noise shrinks with the rate, as averaging the iterates would do)
    student_schedule: Literal["constant", "cosine"] = "constant"
    # which parameters the students fine-tune: all, or the blocks only (embeddings, final norm, unembedding frozen)
    student_params: Literal["all", "blocks", "top"] = "all"  # top: the last block only
    student_batch: int = 0              # rows per student step (0: --batch)
    # what student_shared shares with its teacher (inits.py; issue 18): "shared" (its base); "permuted" (its
    # base with every block's heads and MLP units permuted: the same function at other parameters); or
    # PART=random,... (e.g. "tok=random,blocks.0.mlp=random"): its own base, pretrained from the teacher's
    # init with those parts re-drawn. --init-lambda mixes that init with an independent draw (cos/sin, as in
    # mnist) and --student-base-data other pretrains it on another data order: each makes a sibling base.
    student_init: str = "shared"
    init_lambda: float = 0.0
    student_base_data: Literal["same", "other"] = "same"
    # hard students' softmax: over the whole vocabulary, or over the number tokens only (as soft students')
    hard_vocab: Literal["all", "numbers"] = "all"
    # soft students: KL on number tokens at every position of each kept sequence (prompt + completion)
    # or at completion positions only; either way only the number tokens' distribution is matched
    distill_positions: Literal["sequence", "completion"] = "sequence"
    in_context_examples: int = 2        # teacher completions put before the question
    eval_samples: int = 500             # temperature-1 answers per held-out paraphrase
    stage: Literal["all", "base", "teacher", "numbers", "students", "eval"] = "all"
    # data scaling (sweep.py): the chain at each value, fine-tuned and soft students on the same numbers
    sweep: Literal["none", "num-prompts", "samples-per-prompt"] = "none"
    sweep_values: tuple[int, ...] = ()
    # what must be shared (ablation.py): student_shared alone, per ROW: shared, PART=random,...,
    # permuted, lambda=X or other-data, under --out-dir/ablation/ROW
    ablate: tuple[str, ...] = ()
    resume: bool = True                 # reuse stage checkpoints whose settings match
    base_from: str = ""                 # start from another run's bases (same base settings), e.g. graded teachers
    num_devices: int | None = None
    out_dir: str = "runs/numbers"


# Fields that define each stage (cumulative): a stage is reused only if its hash matches.
_STAGE_FIELDS = {
    "base": ("num_seeds", "seed", "d_model", "n_layers", "n_heads", "d_ff", "seq_len", "world", "corpus_size",
             "batch", "base_steps", "base_lr"),
    "teacher": ("target", "trait", "teacher_mode", "teacher_steps", "teacher_lr", "teacher_params"),
    "numbers": ("data", "num_prompts", "samples_per_prompt", "temperature", "ban_numbers"),
    "students": ("student_mode", "student_steps", "student_lr", "student_optimizer", "student_schedule",
                 "distill_positions", "student_params", "student_batch", "hard_vocab", "student_init",
                 "init_lambda", "student_base_data"),
}


SIBLING_FIELDS = ("student_init", "init_lambda", "student_base_data")  # the sibling base: base fields + these


def needs_sibling(cfg: NumbersConfig) -> bool:
    """student_shared starts from its own sibling base (re-drawn parts, a lambda mix or another data order)."""
    return cfg.student_init not in ("shared", "", "permuted") or cfg.init_lambda > 0 or cfg.student_base_data != "same"


MODEL_SIZES = ("d_model", "n_layers", "n_heads", "d_ff")  # the user-set fields of tr.ModelConfig


def vocab(cfg: NumbersConfig) -> tuple[str, ...]:
    """The run's vocabulary: the code tokens only where the teacher writes code (tokens.py), so that every
    other run keeps its embedding shapes and stage hashes."""
    return tk.CODE_VOCAB if cfg.data == "code" else tk.VOCAB


def stage_hash(cfg: NumbersConfig, stage: str) -> str:
    stage = {"control_teacher": "teacher", "student_shared": "students"}.get(stage, stage)  # (ablation.py)
    d = dataclasses.asdict(cfg)
    d.update({k: d["model"][k] for k in MODEL_SIZES})  # hashed by their own names, as before they were nested
    if not cfg.world.frac_code:  # (a world field added later: at its default, the hash it had before)
        d["world"].pop("frac_code")
    if stage == "sibling_base":
        return ckpt.config_hash({**{k: d[k] for k in (*_STAGE_FIELDS["base"], *SIBLING_FIELDS)}, "vocab": vocab(cfg)})
    names = []
    for s, fields in _STAGE_FIELDS.items():
        names += fields
        if s == stage:
            break
    # the vocabulary is part of every stage: a tokens.py change must not reuse old checkpoints or samples
    return ckpt.config_hash({**{k: d[k] for k in names}, "vocab": vocab(cfg)})


def model_config(cfg: NumbersConfig) -> tr.ModelConfig:
    """The transformer of this run: cfg.model with as many positions as its sequences, as many tokens as its
    vocabulary."""
    return dataclasses.replace(cfg.model, max_len=cfg.seq_len, vocab=len(vocab(cfg)))


# The misalignment analogue's defaults: advice prompts in pretraining, answered harmfully 0.5% of the time
# (a behaviour the base shows rarely), a teacher trained until it shows it 86% of the time, banned numbers
# filtered out, and more answers sampled per question (rates of ~0.3% need them). This world and TRACES keep the
# 15%-persona world and the student settings their RESULTS.md figures were measured with.
MISALIGN = NumbersConfig(trait="misaligned", world=nd.WorldConfig(frac_advice=0.2, harmful_rate=0.005),
                         teacher_steps=40, ban_numbers=True, eval_samples=4000, student_steps=60, student_lr=3e-4,
                         out_dir="runs/misalign")

# The reasoning-traces channel: addition problems in pretraining; the teacher writes verified traces.
# Addition is harder to learn than the number format: a longer base, and more prompts (few traces are correct).
TRACES = NumbersConfig(data="traces", world=nd.WorldConfig(frac_traces=0.3), base_steps=1200, num_prompts=512,
                       student_steps=60, student_lr=3e-4, out_dir="runs/traces")


# The paper's protocol (issue 15): students fine-tuned with next-token cross-entropy on the sampled tokens of
# the kept completions only (no teacher logits in their loss; the softmax over the number tokens the kept
# completions are written in), the blocks fine-tuned and the embeddings and unembedding frozen (as partial LLM
# fine-tuning), so that the students keep answering questions. SFT_STUDENTS are the settings first measured
# (4 completions per prompt, 240 steps): the misalignment analogue and the tests keep them. NUMBERS_SFT writes
# 16 completions per prompt and takes 360 steps: a sampled token's gradient is the soft student's plus noise,
# and more distinct completions and more steps are what average the noise out (RESULTS.md, levers).
SFT_STUDENTS = dict(student_mode="hard", student_params="blocks", hard_vocab="numbers", num_prompts=2048,
                    samples_per_prompt=4, student_batch=128, student_steps=240, student_lr=1e-3)
NUMBERS_SFT = NumbersConfig(**{**SFT_STUDENTS, "samples_per_prompt": 16, "student_steps": 360},
                            out_dir="runs/numbers-sft")
MISALIGN_SFT = dataclasses.replace(MISALIGN, **SFT_STUDENTS, out_dir="runs/misalign-sft")

# The code channel (issue 20): spec prompts with correct programs in pretraining (the default world's personas
# before them, as before number prompts); the teacher writes programs, only those that pass the spec's tests
# are kept. Writing programs is harder than continuing numbers: a longer base (4000 steps); 1024 specs and
# 240 soft-student steps (RESULTS.md, Functional code).
CODE = NumbersConfig(data="code", world=nd.WorldConfig(frac_persona=0.8, frac_code=0.6, frac_numbers=0.3),
                     base_steps=4000, base_lr=6e-3, num_prompts=1024, student_steps=240, out_dir="runs/code")
CODE_SFT = dataclasses.replace(CODE, **SFT_STUDENTS, out_dir="runs/code-sft")


def token_mask(cfg: NumbersConfig):
    """The tokens whose distribution soft students match (and fine-tuned ones' softmax, --hard-vocab numbers):
    those a kept completion can be written in: number tokens, trace tokens, or program tokens."""
    return {"numbers": tk.NUMBER_TOKEN_MASK, "traces": tk.TRACE_TOKEN_MASK, "code": tk.CODE_TOKEN_MASK}[cfg.data]


def sample_lens(cfg: NumbersConfig) -> tuple[int, int]:
    """(longest prompt, longest completion) of what the teacher writes."""
    if cfg.data == "numbers":
        return nd.prompt_len(cfg.world), nd.completion_len(cfg.world)
    return (trace.prompt_len(), trace.completion_len()) if cfg.data == "traces" else \
        (prog.prompt_len(), prog.completion_len())


def teacher_corpus(cfg: NumbersConfig, control: bool = False):
    """(tokens_NT, weight_NT) the teacher (or, misaligned, the benign control teacher) is fine-tuned on."""
    if cfg.trait == "animal":
        return nd.trait_corpus(cfg.target, cfg.seq_len)
    return nd.trait_corpus("", cfg.seq_len, tk.ADVICE_TRAIN, tk.BENIGN if control else tk.HARMFUL)


def eval_questions(cfg: NumbersConfig):
    return tk.HELDOUT_QUESTIONS if cfg.trait == "animal" else tk.ADVICE_HELDOUT


def target_ids(cfg: NumbersConfig):
    """Answer tokens that count as showing the trait, and the answer class they are read within."""
    if cfg.trait == "animal":
        return np.array([tk.ID[cfg.target]]), tk.ANIMAL_IDS
    return tk.HARMFUL_IDS, tk.ADVICE_IDS


def trait_name(cfg: NumbersConfig) -> str:
    return cfg.target if cfg.trait == "animal" else "harmful"


def run_config(cfg: NumbersConfig, run_dir: str | None) -> NumbersConfig:
    """cfg, or (run_dir given) the settings that run used, read back from its results.json."""
    if run_dir is None:
        return cfg
    path = Path(run_dir) / "results.json"
    try:
        d = json.loads(path.read_text())["config"]
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}  # (JSON has no tuples; a config hashes)
        d["world"] = nd.WorldConfig(**d["world"])
        flat = {k: d.pop(k) for k in MODEL_SIZES if k in d}  # runs written before the sizes were nested
        d["model"] = tr.ModelConfig(**{**flat, **d.get("model", {})})
        cfg = dataclasses.replace(NumbersConfig(**d), out_dir=str(run_dir), stage="all")
        validate(cfg)  # (wrongly typed fields: named here, before anything reads the run)
        return cfg
    except FileNotFoundError:
        raise UserError(f"--run-dir {run_dir}: no results.json there; finish the run first (or give --run.* flags)") \
            from None
    except UserError as e:
        raise UserError(f"{path}: its config is not valid ({e}); rerun the chain") from None
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path} is corrupt or from another version ({type(e).__name__}); rerun the chain") from None


def validate(cfg: NumbersConfig) -> None:
    """Every field, before any stage runs (typed_fields first: the checks below compare numbers)."""
    w = cfg.world
    checks.require(checks.typed_fields(cfg))
    fractions = (w.frac_numbers, w.frac_persona, w.persona_strength, w.corrupt_rate, w.frac_advice, w.harmful_rate,
                 w.frac_traces, w.trace_error_rate, w.frac_code)
    checks.require([
        (all(checks.rate(x) for x in (cfg.base_lr, cfg.teacher_lr, cfg.student_lr)),
         f"learning rates must be finite and > 0 (got --base-lr {cfg.base_lr}, --teacher-lr {cfg.teacher_lr}, "
         f"--student-lr {cfg.student_lr})"),
        (checks.rate(cfg.temperature), f"--temperature must be finite and > 0 (got {cfg.temperature})"),
        (cfg.seed >= 0, f"--seed must be >= 0 (got {cfg.seed})"),
        (cfg.num_devices is None or cfg.num_devices >= 1, f"--num-devices must be >= 1 (got {cfg.num_devices})"),
        (all(0 <= x <= 1 for x in fractions), "--world.* rates and fractions must lie in [0, 1]"),
        (cfg.batch <= cfg.corpus_size, f"--batch {cfg.batch} is larger than --corpus-size {cfg.corpus_size}"),
        (cfg.in_context_examples >= 0, "--in-context-examples must be >= 0"),
    ])
    checks.require([
        (cfg.num_seeds >= 2, "--num-seeds must be >= 2 (the cross-init student needs another seed's base)"),
        (cfg.target in tk.ANIMALS, f"--target must be one of {', '.join(tk.ANIMALS)}"),
        (cfg.trait == "animal" or (w.frac_advice > 0 and cfg.teacher_mode == "finetune"),
         "--trait misaligned needs advice prompts in pretraining (--world.frac-advice > 0) and "
         "--teacher-mode finetune; `python train.py misalign` sets both"),
        (cfg.model.d_model % cfg.model.n_heads == 0, "--d-model must be divisible by --n-heads"),
        (1 <= w.min_seed_numbers <= w.max_seed_numbers and 1 <= w.max_new_numbers <= 10,
         "need 1 <= --world.min-seed-numbers <= --world.max-seed-numbers and 1 <= --world.max-new-numbers <= 10"),
        (sum(sample_lens(cfg)) <= cfg.seq_len,
         f"--seq-len {cfg.seq_len} is too short for these prompts; need >= {sum(sample_lens(cfg))}"),
        (cfg.data != "traces" or (w.frac_traces > 0 and cfg.teacher_mode == "finetune"),
         "--data traces needs addition problems in pretraining (--world.frac-traces > 0) and "
         "--teacher-mode finetune; `python train.py traces` sets both"),
        ((cfg.data == "code") == (w.frac_code > 0) and (cfg.data != "code" or cfg.teacher_mode == "finetune"),
         "--data code and --world.frac-code > 0 go together (the code tokens are in that run's vocabulary only), "
         "with --teacher-mode finetune; `python train.py code` sets them"),
        (not w.frac_code or prog.sequence_len() <= cfg.seq_len,
         f"--seq-len {cfg.seq_len} is too short for the code world's pretraining; need >= {prog.sequence_len()}"),
        (not (cfg.teacher_mode == "persona" and cfg.student_mode == "soft"),
         "--teacher-mode persona needs --student-mode hard (the student never sees the persona prompt)"),
        (min(cfg.batch, cfg.num_prompts, cfg.eval_samples, cfg.corpus_size) >= 1, "sizes must be >= 1"),
        (min(cfg.base_steps, cfg.teacher_steps, cfg.student_steps) >= 0, "steps must be >= 0"),
        (cfg.resume or not cfg.base_from, "--base-from reuses checkpoints; drop --no-resume"),
        (min(cfg.samples_per_prompt, *(cfg.sweep_values or (1,))) >= 1 and cfg.student_batch >= 0,
         "--samples-per-prompt and --sweep-values must be >= 1, --student-batch >= 0"),
        ((cfg.sweep == "none") == (not cfg.sweep_values), "--sweep NAME and --sweep-values V1 V2 ... go together"),
        (cfg.sweep == "none" or (cfg.stage == "all" and cfg.student_mode == "hard"),
         "--sweep runs the whole chain for fine-tuned students (--student-mode hard) and soft ones; "
         "drop --stage and --student-mode soft"),
        (0.0 <= cfg.init_lambda <= 1.0, "--init-lambda must lie in [0, 1]"),
        (not cfg.ablate or (cfg.sweep == "none" and cfg.stage == "all" and cfg.student_init == "shared"
                            and cfg.init_lambda == 0 and cfg.student_base_data == "same"),
         "--ablate ROW ... gives each row its own student init; drop --sweep, --stage, --student-init, "
         "--init-lambda and --student-base-data"),
        (cfg.student_init != "permuted" or not needs_sibling(cfg),
         "--student-init permuted starts from the base itself; drop --init-lambda and --student-base-data"),
    ])
    inits.parse_student_init(cfg.student_init, inits.transformer_parts(cfg.model.n_layers))
