"""Train experiments; `python train.py SUBCOMMAND --help` lists each one's flags."""
from subliminal_jax import cli
from subliminal_jax.mnist import experiment as mnist
from subliminal_jax.numbers import experiment as numbers
from subliminal_jax.numbers import generations

COMMANDS = {
    **numbers.commands(numbers.main_train, "the whole chain"),
    "generations": (generations.GenerationsConfig(), generations.run, "students of students of the teacher, generation by generation: shared, broken once, control chains"),
    "generations-misalign": (generations.MISALIGN_GENERATIONS, generations.run, "the same down the misalignment analogue's chain (train.py misalign's settings)"),
    "generations-traces": (generations.TRACES_GENERATIONS, generations.run, "the same down the reasoning-traces chain (train.py traces's settings)"),
    "mnist": (mnist.MnistConfig(), mnist.main, "MNIST aux-logit transfer, defaults sized for 2 CPU cores"),
    "mnist-paper": (mnist.PAPER, mnist.main, "the same with the paper's exact settings (25 seeds)"),
}

if __name__ == "__main__":
    cli.main(COMMANDS, description=__doc__)
