"""`python evaluate.py lens`: is there a hidden trait in a numbers-only student? A logit-lens read-out.

For each model of a `train.py numbers` run and each layer l (0 = the token
embeddings, n_layers = the output), the residual stream at the answer position
(the last prompt token) is read out through the final norm and the unembedding,
and restricted to the animal words:

  P_l(target | animals) = softmax_{a in ANIMALS}(head(norm(h_l)))_target

on two prompt sets: the HELDOUT "favourite animal?" questions (where the trait
shows in behaviour), and number prompts (where a student trained on numbers only
answers with numbers, so the animal words are a channel nobody looks at). The
shift is paired per seed: each student minus its own init (the cross-init
student's init is another seed's base); the teacher minus its base.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from subliminal_jax import numbers_data as nd
from subliminal_jax import report, sampler
from subliminal_jax import tokens as tk
from subliminal_jax import transformer as tr
from subliminal_jax.mnist import derangement
from subliminal_jax.numbers_chain import Chain
from subliminal_jax.numbers_config import STUDENTS, NumbersConfig
from subliminal_jax.stats import summarize

MODELS = ("teacher",) + STUDENTS


@dataclasses.dataclass(frozen=True)
class LensConfig:
    """Logit-lens read-out of a numbers run's checkpoints (flags: --run.* as `train.py numbers`)."""
    run: NumbersConfig = NumbersConfig()
    number_prompts: int = 64        # number prompts read at their answer position (fresh, not the training ones)


def target_share(lens, params, prompts_QT, target_id):
    """P_l(target | animals) averaged over prompts, for every layer l -> [L]."""
    logits_LQV = lens(params, prompts_QT, prompts_QT != tk.PAD)[:, :, -1]
    animal_LQA = jax.nn.log_softmax(logits_LQV[..., jnp.asarray(tk.ANIMAL_IDS)], -1)
    return jnp.exp(animal_LQA[..., tk.ANIMALS.index(tk.VOCAB[target_id])]).mean(-1)


def main(lcfg: LensConfig) -> dict:
    cfg = lcfg.run
    chain = Chain(cfg, verbose=False)
    base, teacher, students = chain._need("base"), chain._need("teacher"), chain._need("students")
    persona = cfg.target if cfg.teacher_mode == "persona" else None
    # prompts: the held-out questions, and fresh number prompts (a seed no stage of the chain uses)
    plain, teach = nd.number_prompts(lcfg.number_prompts, cfg.world, cfg.seed * 100_003 + 99_991, persona)
    sets = {"questions": (nd.eval_prompts(), nd.eval_prompts(persona)), "number_prompts": (plain, teach)}
    lens = tr.make_lens(chain.mcfg)
    target = tk.ID[cfg.target]
    perm = derangement(cfg.num_seeds, cfg.seed)
    share = jax.jit(jax.vmap(lambda p, q: target_share(lens, p, q, target), in_axes=(0, None)))

    out = {}
    for name, (plain_rows, teach_rows) in sets.items():
        plain_QT = sampler.left_pad(plain_rows, cfg.seq_len)
        teach_QT = sampler.left_pad(teach_rows, cfg.seq_len)
        got = {"base": np.asarray(share(base, plain_QT)), "teacher": np.asarray(share(teacher, teach_QT))}
        for i, c in enumerate(STUDENTS):
            got[c] = np.asarray(share(jax.tree.map(lambda a: a[:, i], students), plain_QT))     # [S, L]
        init = {"teacher": got["base"], "student_shared": got["base"], "student_control": got["base"],
                "student_cross_init": got["base"][perm]}
        out[name] = {"base": [summarize(got["base"][:, l]) for l in range(got["base"].shape[1])]}
        for c in MODELS:
            out[name][c] = [summarize(got[c][:, l]) for l in range(got[c].shape[1])]
            out[name][c + "_shift"] = [summarize(got[c][:, l] - init[c][:, l]) for l in range(got[c].shape[1])]
        print(f"[{name}] P({cfg.target} | animal words) by layer (0 = embeddings), shift from the model's own init:")
        for c in MODELS:
            print(f"  {c:19s} " + "  ".join(f"L{l} {s['mean']:+.4f}+-{s['ci95_half']:.4f}"
                                          for l, s in enumerate(out[name][c + "_shift"])))
    res = {"sets": out, "layers": chain.mcfg.n_layers + 1, "config": dataclasses.asdict(lcfg)}
    report.write_json(chain.out / "lens.json", res)
    plot(chain.out / "lens.png", out, cfg)
    print(f"wrote {chain.out / 'lens.json'} and {chain.out / 'lens.png'}")
    return res


def plot(path, out: dict, cfg: NumbersConfig) -> None:
    fig, axes = report.plt.subplots(1, len(out), figsize=(5 * len(out), 3.8), squeeze=False)
    for ax, (name, d) in zip(axes[0], out.items()):
        for j, c in enumerate(MODELS):
            m = np.array([s["mean"] for s in d[c + "_shift"]])
            h = np.array([s["ci95_half"] for s in d[c + "_shift"]])
            ax.errorbar(np.arange(len(m)) + 0.04 * (j - 1.5), m, yerr=h, marker="o", ms=4, capsize=3, label=c)
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xticks(range(len(m)), ["emb"] + [f"block {l + 1}" for l in range(len(m) - 1)])
        ax.set_title(f"{name}: {cfg.num_seeds} seeds")
        ax.set_ylabel(f"P({cfg.target} | animal words) - own init")
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.legend(fontsize=7)
    fig.suptitle("logit lens at the answer position (95% CI over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    report.plt.close(fig)
