"""Seeds: each seed's key, and the pairing of seeds for the cross-init students (one home for both).

Seed s of a run with root seed R uses seed_keys(R, n)[s] = fold_in(key(R), s); each stage then folds its own
stream index into that key (the number chain names its streams in one table: numbers/steps.py, KEY_STREAMS).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from subliminal_jax.errors import UserError


def fold_keys(key, idx):
    """keys: fold_in(key, i) for each index i (seeds, instances, sampler rows)."""
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(idx)


def seed_keys(seed: int, n: int):
    """keys_S: fold_in(key(seed), s) for s = 0..n-1."""
    return fold_keys(jax.random.key(seed), jnp.arange(n))


def derangement(n: int, seed: int) -> np.ndarray:
    """A uniformly random permutation with no fixed point (rejection sampling): seed s's cross-init student
    starts from seed perm[s]'s init, never its own."""
    if n < 2:
        raise UserError("--num-seeds must be >= 2: cross-model students need another seed's init")
    rng = np.random.default_rng(seed)
    while True:
        p = rng.permutation(n)
        if not np.any(p == np.arange(n)):
            return p
