"""Train experiments; `python train.py SUBCOMMAND --help` lists each one's flags."""
from subliminal_jax import cli, mnist
from subliminal_jax import numbers

COMMANDS = {
    "numbers": (numbers.NumbersConfig(), numbers.main_train, "number-sequence trait transfer, whole chain (base->teacher->numbers->students->eval)"),
    "mnist": (mnist.MnistConfig(), mnist.main, "MNIST aux-logit transfer, defaults sized for 2 CPU cores"),
    "mnist-paper": (mnist.PAPER, mnist.main, "the same with the paper's exact settings (25 seeds)"),
}

if __name__ == "__main__":
    cli.main(COMMANDS, description=__doc__)
