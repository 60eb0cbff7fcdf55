"""Evaluate and check; `python evaluate.py SUBCOMMAND --help` lists each one's flags."""
from subliminal_jax import cli
from subliminal_jax.numbers import audit
from subliminal_jax.numbers import lens
from subliminal_jax.numbers import experiment as numbers
from subliminal_jax.theorem import experiment as theorem

COMMANDS = {
    "numbers": (numbers.NumbersConfig(), numbers.main_evaluate, "trait rates of the number chain's checkpoints -> OUT/results.json"),
    "numbers-sft": (numbers.NUMBERS_SFT, numbers.main_evaluate, "trait rates of the fine-tuned (paper-protocol) chain's checkpoints -> OUT/results.json"),
    "misalign": (numbers.MISALIGN, numbers.main_evaluate, "harmful-answer rates of the misalignment chain's checkpoints -> OUT/results.json"),
    "misalign-sft": (numbers.MISALIGN_SFT, numbers.main_evaluate, "harmful-answer rates of the fine-tuned misalignment chain's checkpoints -> OUT/results.json"),
    "traces": (numbers.TRACES, numbers.main_evaluate, "trait rates of the traces chain's checkpoints -> OUT/results.json"),
    "code": (numbers.CODE, numbers.main_evaluate, "trait rates of the code chain's checkpoints (soft students) -> OUT/results.json"),
    "code-sft": (numbers.CODE_SFT, numbers.main_evaluate, "trait rates of the code chain's checkpoints (fine-tuned students) -> OUT/results.json"),
    "audit": (audit.AuditConfig(), audit.main, "alignment of a numbers dataset with the trait at the student's init, before training -> OUT/audit.json"),
    "lens": (lens.LensConfig(), lens.main, "logit-lens read-out of the trait, layer by layer, in a numbers run's models -> OUT/lens.json"),
    "theorem": (theorem.TheoremConfig(), theorem.main, "Theorem 1 checker: <dS, dT> vs its jvp prediction (float64) + multi-step alignment -> OUT/theorem.json"),
}

if __name__ == "__main__":
    cli.main(COMMANDS, description=__doc__)
