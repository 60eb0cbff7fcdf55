"""How a student's init relates to the teacher's: shared, re-drawn per layer, mixed, or permuted.

`--student-init LAYER=shared|random` and `--init-lambda` (a norm-preserving mix with an
independent draw) move the student's init away from the teacher's in parameter space.
Function-preserving re-parameterizations (`--student-init permuted`) move it in parameter
space while keeping the same function (issue 18).

A ReLU/GELU layer does not care in which order its hidden units are stored: permuting an MLP
layer's units (its kernel's columns and its bias) and the next layer's kernel rows to match
leaves the network's function unchanged. The same holds for attention heads (the q, k and v
columns of a head move together, and the output projection's rows follow them).

What "shared initialization" has to mean is then testable: a student that starts from the
teacher's init with its units permuted computes exactly the teacher's init function, yet its
parameters are as far from the teacher's as an independent draw. Gradient descent (SGD or
Adam, both coordinate-wise) is equivariant under such a permutation P: trained on the same
data, the permuted student ends at P(the shared student). Theorem 1 then holds for it with
the teacher's step carried over, P dT, in place of dT (theory.one_step's `transport`).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from subliminal_jax.errors import UserError


def _perm(key, n: int):
    return jax.random.permutation(key, n)


def permute_mlp(params, key, perms=None):
    """subliminal_jax.mnist.mlp params with every hidden layer's units permuted (perm i from fold_in(key, i),
    or perms[i] when given). Returns (params, perms) so that the same P can transport a step."""
    hidden = sorted((k for k in params if k.startswith("fc")), key=lambda k: int(k[2:]))
    out = {k: dict(v) for k, v in params.items()}
    used = []
    for i, name in enumerate(hidden):
        p = perms[i] if perms is not None else _perm(jax.random.fold_in(key, i), out[name]["kernel"].shape[1])
        used.append(p)
        out[name]["kernel"], out[name]["bias"] = out[name]["kernel"][:, p], out[name]["bias"][p]
        for nxt in (hidden[i + 1],) if i + 1 < len(hidden) else ("class_head", "aux_head"):
            out[nxt]["kernel"] = out[nxt]["kernel"][p, :]
    return out, used


def _head_columns(head_perm_H, d_model: int):
    """Column order of a (D, D) q/k/v kernel whose H heads of D/H columns are permuted by head_perm_H."""
    k = d_model // head_perm_H.shape[0]
    return (head_perm_H[:, None] * k + jnp.arange(k)).reshape(-1)


def permute_transformer(params, key, n_heads: int, perms=None):
    """subliminal_jax.numbers.transformer params with each block's attention heads and MLP units permuted
    (block i: heads from fold_in(key, 2i), units from fold_in(key, 2i + 1), or perms[i] = (heads, units)).
    Embeddings, norms and the unembedding are untouched (the residual stream keeps its order)."""
    out = dict(params)
    out["blocks"], used = {}, []
    for n, (i, block) in enumerate(sorted(params["blocks"].items())):
        qkv, proj = block["attn"]["qkv"]["kernel"], block["attn"]["proj"]["kernel"]
        up, down = block["mlp"]["up"], block["mlp"]["down"]
        d_model, d_ff = proj.shape[0], up["kernel"].shape[1]
        heads, units = perms[n] if perms is not None else (_perm(jax.random.fold_in(key, 2 * n), n_heads),
                                                            _perm(jax.random.fold_in(key, 2 * n + 1), d_ff))
        used.append((heads, units))
        cols = _head_columns(heads, d_model)
        out["blocks"][i] = {
            **block,
            "attn": {"qkv": {"kernel": qkv[:, jnp.concatenate([cols, d_model + cols, 2 * d_model + cols])]},
                     "proj": {"kernel": proj[cols, :]}},
            "mlp": {"up": {"kernel": up["kernel"][:, units], "bias": up["bias"][units]},
                    "down": {"kernel": down["kernel"][units, :], "bias": down["bias"]}},
        }
    return out, used


def transformer_parts(n_layers: int) -> tuple[str, ...]:
    """The parts of subliminal_jax.numbers.transformer params that --student-init can name. (The norms' init is
    all ones: re-drawing them changes nothing at init; they are named for completeness.)"""
    blocks = tuple(f"blocks.{i}.{m}" for i in range(n_layers) for m in ("attn", "mlp", "norm1", "norm2"))
    return ("tok", "pos", *blocks, "norm", "head")


def parse_student_init(spec: str, names: tuple[str, ...]) -> dict[str, str]:
    """PART=shared|random per part (unnamed parts shared; "" or "shared": all shared); "permuted" maps every
    part to "permuted"."""
    if spec.strip() == "permuted":
        return {n: "permuted" for n in names}
    choice = {n: "shared" for n in names}
    for item in filter(None, (s.strip() for s in ("" if spec.strip() == "shared" else spec).split(","))):
        part, _, how = item.partition("=")
        if part not in names or how not in ("shared", "random"):
            raise UserError(f"--student-init {item!r}: expected PART=shared|random with PART one of "
                            f"{', '.join(names)}, e.g. --student-init {names[0]}=random (or: permuted)")
        choice[part] = how
    return choice


def _part_of(path, names) -> str:
    """The part a parameter belongs to: the name that its key path ('blocks.0.attn.qkv.kernel') starts with."""
    p = ".".join(str(getattr(k, "key", k)) for k in path)
    return next(n for n in names if p == n or p.startswith(n + "."))


def student_init(shared, independent, choice: dict[str, str], lam, key=None):
    """Per part: 'random' takes the independent draw; 'shared' takes
    cos(lam*pi/2) * shared + sin(lam*pi/2) * independent, which has the init's own
    distribution for every lam (lam=0 is exactly the teacher's init). All 'permuted' (MLP): the
    shared init with its hidden units permuted by `key` (then mixed with lam alike)."""
    if "permuted" in choice.values():
        shared = permute_mlp(shared, key)[0]
        choice = {part: "shared" for part in choice}
    # where(): lam=0 is bit-identical to the shared init however XLA evaluates cos/sin.
    c = jnp.where(lam == 0, 1.0, jnp.cos(lam * jnp.pi / 2))
    s = jnp.where(lam == 0, 0.0, jnp.sin(lam * jnp.pi / 2))
    names = tuple(choice)
    return jax.tree_util.tree_map_with_path(
        lambda path, a, b: b if choice[_part_of(path, names)] == "random" else c * a + s * b, shared, independent)


def relative_distance(a, b):
    """||a - b|| / ||b|| over all parameters."""
    sq = lambda t: sum(jnp.sum(x ** 2) for x in jax.tree.leaves(t))
    return jnp.sqrt(sq(jax.tree.map(jnp.subtract, a, b)) / sq(b))
