"""Train experiments; `python train.py SUBCOMMAND --help` lists each one's flags."""
from subliminal_jax import cli
from subliminal_jax.mnist import experiment as mnist
from subliminal_jax.numbers import experiment as numbers

COMMANDS = {
    "numbers": (numbers.NumbersConfig(), numbers.main_train, "number-sequence trait transfer, whole chain (base->teacher->numbers->students->eval)"),
    "numbers-sft": (numbers.NUMBERS_SFT, numbers.main_train, "the paper's protocol: students fine-tuned on the teacher's sampled, filtered numbers (no logits)"),
    "misalign": (numbers.MISALIGN, numbers.main_train, "the misalignment analogue: harmful-advice teacher, banned-number filter, benign-teacher control"),
    "misalign-sft": (numbers.MISALIGN_SFT, numbers.main_train, "the misalignment analogue with students fine-tuned on the sampled, filtered numbers"),
    "traces": (numbers.TRACES, numbers.main_train, "reasoning traces: the teacher writes step-by-step additions, only verified-correct ones kept"),
    "code": (numbers.CODE, numbers.main_train, "functional code: the teacher writes programs for specs, only those passing the tests kept; soft students"),
    "code-sft": (numbers.CODE_SFT, numbers.main_train, "functional code with students fine-tuned on the kept programs' sampled tokens (no logits)"),
    "mnist": (mnist.MnistConfig(), mnist.main, "MNIST aux-logit transfer, defaults sized for 2 CPU cores"),
    "mnist-paper": (mnist.PAPER, mnist.main, "the same with the paper's exact settings (25 seeds)"),
}

if __name__ == "__main__":
    cli.main(COMMANDS, description=__doc__)
