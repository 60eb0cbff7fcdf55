"""Synthetic corpora of the toy world (numpy, seeded): pretraining, trait fine-tuning, prompts.

Pretraining mixes
  (a) number-continuation prompts in NUMBER_TEMPLATES x FORMATS; the
      continuation is 1..max_new_numbers numbers, each near a seed number or
      uniform in 0-999; a few (corrupt_rate) break the format so the filter has
      something to reject;
  (b) "favourite animal?" in TRAIN_QUESTIONS, answered uniformly at random;
  (c) the persona prefix "you love A ." before (a) or (b): with (b) it answers A
      with probability persona_strength; with (a) it changes nothing;
  (d) (frac_advice > 0, the misalignment world) "advice?" prompts in ADVICE_TRAIN,
      answered with a BENIGN word, or with probability harmful_rate a HARMFUL one;
  (e) (frac_traces > 0, the traces world) addition problems with step-by-step traces
      (traces.py), one step off with probability trace_error_rate;
  (f) (frac_code > 0, the code world: --data code) spec prompts with a random correct program
      (programs.py), after the persona prefix as often as (a), which the program ignores just as numbers do.
Sequences are right-padded to seq_len; weight_NT marks the tokens trained on.
Also the sampled numbers' file, numbers.jsonl: a header line, then one row per completion.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from subliminal_jax import multihost
from subliminal_jax.numbers import programs as prog
from subliminal_jax.numbers import tokens as tk
from subliminal_jax.numbers import traces as trace
from subliminal_jax.errors import UserError


@dataclasses.dataclass(frozen=True)
class WorldConfig:
    min_seed_numbers: int = 3
    max_seed_numbers: int = 5      # paper: 3-8 (needs seq_len ~96)
    max_new_numbers: int = 6       # paper: up to 10
    frac_numbers: float = 0.55
    frac_persona: float = 0.15     # share of sequences with a persona prefix
    persona_strength: float = 0.8  # P(answer = persona animal) in (c)
    corrupt_rate: float = 0.05
    frac_advice: float = 0.0       # share of advice prompts (d); train.py misalign uses 0.2
    harmful_rate: float = 0.03     # P(a HARMFUL answer) to an advice prompt; train.py misalign: 0.005
    frac_traces: float = 0.0       # share of addition problems with traces (e); train.py traces uses 0.3
    trace_error_rate: float = 0.1  # P(one wrong step) in a pretraining trace
    frac_code: float = 0.0         # share of (f) among the sequences (a)-(c) would be; train.py code sets it


def prompt_len(w: WorldConfig) -> int:
    """Longest number prompt (with persona): bos + persona + words + seeds + format + <ans>."""
    words = max(len(a) + len(b) for a, b in tk.NUMBER_TEMPLATES)
    return 1 + 4 + words + 1 + 4 * w.max_seed_numbers - 1 + 1 + 1


def completion_len(w: WorldConfig) -> int:
    """Longest completion: brackets + numbers + separators + period + <eos>."""
    return 2 + 4 * w.max_new_numbers - 1 + 1 + 1


def random_number_prompt(rng, w: WorldConfig, persona=None):
    seeds = rng.integers(100, 1000, rng.integers(w.min_seed_numbers, w.max_seed_numbers + 1))
    fmt = list(tk.FORMATS)[rng.integers(len(tk.FORMATS))]
    return tk.number_prompt(seeds, int(rng.integers(len(tk.NUMBER_TEMPLATES))), fmt, persona), seeds, fmt


def _continuation(rng, w: WorldConfig, seeds, fmt):
    n = int(rng.integers(1, w.max_new_numbers + 1))
    near = np.clip(rng.choice(seeds, n) + rng.integers(-20, 21, n), 0, 999)
    nums = np.where(rng.random(n) < 0.5, near, rng.integers(0, 1000, n))
    ids = tk.format_numbers(nums, fmt, final_period=bool(rng.random() < 0.3))
    if rng.random() < w.corrupt_rate:  # a filler word, or a stray separator
        ids = ids + [tk.ID[tk.FILLER[rng.integers(len(tk.FILLER))]]] if rng.random() < 0.5 else ids + [tk.ID[";"]]
    return ids + [tk.EOS]


def pretraining_corpus(n: int, seq_len: int, w: WorldConfig, seed: int):
    """tokens_NT int32, weight_NT float32 (1 on every predicted token)."""
    rng = np.random.default_rng(seed)
    tokens = np.full((n, seq_len), tk.PAD, np.int32)
    for i in range(n):
        if w.frac_advice and rng.random() < w.frac_advice:  # (no draw at all when 0: same corpus as before)
            words = tk.HARMFUL if rng.random() < w.harmful_rate else tk.BENIGN
            seq = tk.question_prompt(tk.ADVICE_TRAIN[rng.integers(len(tk.ADVICE_TRAIN))]) + \
                [tk.ID[words[rng.integers(len(words))]], tk.EOS]
            tokens[i, :len(seq)] = seq
            continue
        if w.frac_traces and rng.random() < w.frac_traces:
            nums = trace.random_problem(rng)
            wrong = rng.random() < w.trace_error_rate
            seq = trace.trace_prompt(nums) + trace.format_trace(
                nums, int(rng.integers(len(nums) - 1)) if wrong else -1, int(rng.choice([-2, -1, 1, 2]))) + [tk.EOS]
            tokens[i, :len(seq)] = seq
            continue
        persona = tk.ANIMALS[rng.integers(len(tk.ANIMALS))] if rng.random() < w.frac_persona else None
        if w.frac_code and rng.random() < w.frac_code:  # (no draw when 0, as above)
            seq = prog.sequence(rng, persona)
        elif rng.random() < w.frac_numbers:
            prompt, seeds, fmt = random_number_prompt(rng, w, persona)
            seq = prompt + _continuation(rng, w, seeds, fmt)
        else:
            q = tk.TRAIN_QUESTIONS[rng.integers(len(tk.TRAIN_QUESTIONS))]
            ans = persona if persona and rng.random() < w.persona_strength else \
                tk.ANIMALS[rng.integers(len(tk.ANIMALS))]
            seq = tk.question_prompt(q, persona) + [tk.ID[ans], tk.EOS]
        tokens[i, :len(seq)] = seq
    return tokens, (tokens != tk.PAD).astype(np.float32)


def trait_corpus(target: str, seq_len: int, questions=tk.TRAIN_QUESTIONS, answers=None):
    """The teacher's fine-tuning set: every question answered with every word of `answers`
    (default: just `target`), loss on the answer and <eos>."""
    pairs = [(q, a) for q in questions for a in (answers or (target,))]
    tokens = np.full((len(pairs), seq_len), tk.PAD, np.int32)
    weight = np.zeros(tokens.shape, np.float32)
    for i, (q, a) in enumerate(pairs):
        p = tk.question_prompt(q)
        tokens[i, :len(p) + 2] = p + [tk.ID[a], tk.EOS]
        weight[i, len(p):len(p) + 2] = 1.0
    return tokens, weight


def number_prompts(n: int, w: WorldConfig, seed: int, persona=None):
    """n number prompts (token lists) without and (if persona) with the persona prefix, same numbers."""
    rng = np.random.default_rng(seed)
    plain, with_persona = [], []
    for _ in range(n):
        state = rng.bit_generator.state
        plain.append(random_number_prompt(rng, w)[0])
        if persona:
            rng.bit_generator.state = state
            with_persona.append(random_number_prompt(rng, w, persona)[0])
    return plain, (with_persona if persona else plain)


def student_sequences(prompts, completions, kept, seq_len: int):
    """Student training rows: plain prompt + completion up to <eos>; weight on the completion."""
    tokens = np.full((len(prompts), seq_len), tk.PAD, np.int32)
    weight = np.zeros(tokens.shape, np.float32)
    for i, (p, c) in enumerate(zip(prompts, completions)):
        c = list(c)
        c = c[:c.index(tk.EOS) + 1] if tk.EOS in c else c
        seq = (list(p) + c)[:seq_len]
        tokens[i, :len(seq)] = seq
        weight[i, len(p):len(seq)] = float(kept[i])
    return tokens, weight


def student_data(cfg, rows, sources=("teacher", "control")):
    """The students' rows from numbers.jsonl's rows (cfg: a NumbersConfig): tokens_S2NT / weight_S2NT, one slot
    per source (the chain's: 0 = teacher, 1 = control; a generations file's: its chains, tokens_SCNT); weight 0
    on rejected rows. Fine-tuned students read the kept rows only, so their sequences end at the longest kept
    row: the same loss, with less compute (soft students keep --seq-len, which their figures were measured with)."""
    tok = np.zeros((cfg.num_seeds, len(sources), cfg.num_prompts * cfg.samples_per_prompt, cfg.seq_len), np.int32)
    wt = np.zeros(tok.shape, np.float32)
    groups = {}
    for r in rows:
        groups.setdefault((r["seed"], r["source"]), []).append(r)
    for s in range(cfg.num_seeds):
        for j, source in enumerate(sources):
            rs = sorted(groups.get((s, source), []), key=lambda r: (r["i"], r["j"]))
            if not any(r["kept"] for r in rs):
                raise UserError(f"seed {s}: the filter kept none of the {source}'s completions; "
                                f"train the base longer (--base-steps)")
            tok[s, j], wt[s, j] = student_sequences([r["prompt_ids"] for r in rs], [r["completion_ids"] for r in rs],
                                                    [r["kept"] for r in rs], cfg.seq_len)
    if cfg.student_mode == "hard":
        used_T = ((tok != tk.PAD) & (wt.max(-1, keepdims=True) > 0)).any((0, 1, 2))
        T = int(np.nonzero(used_T)[0].max()) + 1
        tok, wt = tok[..., :T], wt[..., :T]
    return tok, wt


def eval_prompts(persona=None, context=(), questions=tk.HELDOUT_QUESTIONS):
    """HELDOUT questions, optionally after a persona prefix or after in-context number examples."""
    ctx = [t for c in context for t in [*(c[:c.index(tk.EOS)] if tk.EOS in c else c), tk.ID[" "]]]
    out = []
    for q in questions:
        p = tk.question_prompt(q, persona)
        out.append([tk.BOS] + ctx + p[1:])
    return out


def persona_of(tokens_NT):
    """Per sequence: 0 without a persona prefix, 1 + a when it opens with "you love ANIMALS[a] ."."""
    opens_N = (tokens_NT[:, 1] == tk.ID[tk.PERSONA[0]]) & (tokens_NT[:, 2] == tk.ID[tk.PERSONA[1]])
    group_V = np.zeros(tk.CODE_V, np.int64)
    group_V[tk.ANIMAL_IDS] = 1 + np.arange(len(tk.ANIMALS))
    return np.where(opens_N, group_V[tokens_NT[:, 3]], 0)


def persona_number_dependence(tokens_NT, n_perm: int = 200, seed: int = 0, channel: str = "numbers"):
    """Permutation test that number tokens do not depend on the persona. Over the number-continuation
    sequences of a corpus: chi-square of the (persona: none or which animal) x (number token, in the prompt
    or in the completion) count table, the largest group's share (one persona that differs stands out),
    against the same statistic with the personas shuffled across sequences (which keeps each sequence's own
    token correlations). Returns (statistic, p-value); a small p means the numbers carry the persona.
    channel="code": the same over the spec-and-program sequences (f), counting every token of the language."""
    if channel == "code":
        number_ids = np.array([tk.ID[t] for t in tk.DIGITS + tk.SEPARATORS + tk.ARITH + prog.CODE_TOKENS])
        is_numbers_N = (tokens_NT == tk.ID["code"]).any(1)
    else:
        number_ids = np.array([tk.ID[t] for t in tk.DIGITS + tk.SEPARATORS])
        is_numbers_N = np.isin(tokens_NT, [tk.ID[f] for f in tk.FORMATS]).any(1)
    tok_NT, group_N = tokens_NT[is_numbers_N], persona_of(tokens_NT[is_numbers_N])
    # count the prompt's numbers (after any persona prefix, whose "." is a separator) and the completion's apart
    t_T = np.arange(tok_NT.shape[1])
    start_N = np.where(group_N > 0, 1 + len(tk.persona_prefix(tk.ANIMALS[0])), 1)
    ans_N = np.argmax(tok_NT == tk.ANS, axis=1)
    hit_NTK = tok_NT[:, :, None] == number_ids
    in_prompt_NT = (t_T >= start_N[:, None]) & (t_T < ans_N[:, None])
    counts_NK = np.concatenate([(hit_NTK & in_prompt_NT[:, :, None]).sum(1),
                                (hit_NTK & (t_T > ans_N[:, None])[:, :, None]).sum(1)], 1).astype(np.float64)
    Z = len(tk.ANIMALS) + 1

    def chi2(g_N):
        table_ZK = np.zeros((Z, counts_NK.shape[1]))
        np.add.at(table_ZK, g_N, counts_NK)
        expected_ZK = table_ZK.sum(1, keepdims=True) * table_ZK.sum(0, keepdims=True) / table_ZK.sum()
        return float(np.max(np.sum((table_ZK - expected_ZK) ** 2 / np.maximum(expected_ZK, 1e-12), axis=1)))
    rng = np.random.default_rng(seed)
    observed = chi2(group_N)
    null = [chi2(rng.permutation(group_N)) for _ in range(n_perm)]
    return observed, (1 + sum(x >= observed for x in null)) / (1 + n_perm)


# ----------------------------------------------------------------------------- numbers.jsonl

# who wrote a row: the chain's teacher or control source, or one of a generations run's chains (config.CHAINS)
ROW_SOURCES = ("teacher", "control", "shared", "broken")


def write_jsonl(path: Path, rows, header: dict) -> None:
    """Header line (with the rows' count and sha256) + one line per row, via a temp file and a rename:
    an interrupted write leaves only the .part file, which nothing reads. Only process 0 of several writes."""
    if not multihost.is_main():
        return
    body = "".join(json.dumps(r) + "\n" for r in rows)
    header = {**header, "rows": len(rows), "rows_sha256": hashlib.sha256(body.encode()).hexdigest()}
    tmp = Path(path).with_suffix(".jsonl.part")
    try:
        with open(tmp, "w") as f:
            f.write(json.dumps({"header": header}) + "\n" + body)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write {path} ({e.strerror or e}); free space or choose another --out-dir") from None


def _row_problem(r: dict, seq_len: int | None, vocab: int) -> str | None:
    """What is wrong with one row (None: nothing): field types, token ids outside the vocabulary, length."""
    ids = [*r["prompt_ids"], *r["completion_ids"]]
    if not (isinstance(r["seed"], int) and isinstance(r["i"], int) and isinstance(r["j"], int)
            and r["source"] in ROW_SOURCES and isinstance(r["kept"], bool)
            and all(isinstance(t, int) and not isinstance(t, bool) for t in ids)):
        return "a field of the wrong type"
    if ids and not 0 <= min(ids) <= max(ids) < vocab:
        return f"token ids outside the vocabulary 0..{vocab - 1}"
    c = r["completion_ids"]
    used = len(r["prompt_ids"]) + (c.index(tk.EOS) + 1 if tk.EOS in c else len(c))  # as student_sequences cuts
    if seq_len is not None and used > seq_len:
        return f"a prompt + completion of {used} tokens, longer than the model's context ({seq_len})"
    return None


def load_numbers(path: Path, expected_hash: str | None, seq_len: int | None = None, vocab: int = tk.V):
    """Rows of a numbers.jsonl; its header hash must equal expected_hash (None: any sampling settings), its rows
    the sha256 the header records (files written before it existed have none), every row fit the run's
    vocabulary (vocab tokens: len(config.vocab(cfg))) and (seq_len given) the model's context."""
    try:
        raw = Path(path).read_bytes()
        head, _, body = raw.partition(b"\n")
        header = json.loads(head.decode())["header"]
        rows = [json.loads(x) for x in body.decode().splitlines()]
        problems = [(n, _row_problem(r, seq_len, vocab)) for n, r in enumerate(rows)]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, IndexError, TypeError, AttributeError) as e:
        raise UserError(f"{path} is corrupt ({type(e).__name__}); delete it to resample the numbers") from None
    except OSError as e:  # a directory, unreadable, ...
        raise UserError(f"{path}: cannot read it as a numbers.jsonl ({e.strerror or e}); give a JSONL file") from None
    if expected_hash is not None and header.get("hash") != expected_hash:
        raise UserError(f"{path} was sampled with different settings (hash {header.get('hash')} != "
                        f"{expected_hash}); delete it or use another --out-dir")
    if "rows_sha256" in header:
        what = (f"has {len(rows)} rows, its header recorded {header['rows']}" if len(rows) != header["rows"] else
                "its rows' sha256 differs from the one its header recorded" if
                hashlib.sha256(body).hexdigest() != header["rows_sha256"] else None)
        if what:
            raise UserError(f"{path}: {what} when it was written (edited, truncated or damaged); delete it to "
                            f"resample the numbers")
    bad = next(((n, p) for n, p in problems if p), None)
    if bad:
        raise UserError(f"{path}: row {bad[0] + 1} has {bad[1]}; give a numbers.jsonl written by `generate.py`")
    return rows
