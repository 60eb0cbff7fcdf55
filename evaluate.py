"""Evaluate and check; `python evaluate.py SUBCOMMAND --help` lists each one's flags."""
from subliminal_jax import cli
from subliminal_jax.numbers import audit
from subliminal_jax.numbers import lens
from subliminal_jax.numbers import experiment as numbers
from subliminal_jax.theorem import experiment as theorem

COMMANDS = {
    **numbers.commands(numbers.main_evaluate, "trait rates of the chain's checkpoints -> OUT/results.json"),
    "audit": (audit.AuditConfig(), audit.main, "alignment of a numbers dataset with the trait at the student's init, before training -> OUT/audit.json"),
    "lens": (lens.LensConfig(), lens.main, "logit-lens read-out of the trait, layer by layer, in a numbers run's models -> OUT/lens.json"),
    "theorem": (theorem.TheoremConfig(), theorem.main, "Theorem 1 checker: <dS, dT> vs its jvp prediction (float64) + multi-step alignment -> OUT/theorem.json"),
}

if __name__ == "__main__":
    cli.main(COMMANDS, description=__doc__)
