"""Generate data from trained models; `python generate.py SUBCOMMAND --help` lists the flags."""
from subliminal_jax import cli
from subliminal_jax.numbers import experiment as numbers

COMMANDS = numbers.commands(numbers.main_generate, "teacher and control samples, filtered -> OUT/numbers.jsonl")

if __name__ == "__main__":
    cli.main(COMMANDS, description=__doc__)
