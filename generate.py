"""Generate data from trained models; `python generate.py SUBCOMMAND --help` lists the flags."""
from subliminal_jax import cli
from subliminal_jax import numbers

COMMANDS = {
    "numbers": (numbers.NumbersConfig(), numbers.main_generate, "teacher/base number completions + paper filter -> OUT/numbers.jsonl"),
}

if __name__ == "__main__":
    cli.main(COMMANDS, description=__doc__)
