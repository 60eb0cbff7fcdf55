"""Generate data from trained models; `python generate.py SUBCOMMAND --help` lists the flags."""
from subliminal_jax import cli
from subliminal_jax.numbers import experiment as numbers

COMMANDS = {
    "numbers": (numbers.NumbersConfig(), numbers.main_generate, "teacher and control (base) number completions + paper filter -> OUT/numbers.jsonl"),
    "numbers-sft": (numbers.NUMBERS_SFT, numbers.main_generate, "several completions per prompt from teacher and base + paper filter -> OUT/numbers.jsonl"),
    "misalign": (numbers.MISALIGN, numbers.main_generate, "harmful-advice / benign teacher number completions + filter with banned numbers"),
    "misalign-sft": (numbers.MISALIGN_SFT, numbers.main_generate, "harmful / benign teacher completions, several per prompt, filter with banned numbers"),
    "traces": (numbers.TRACES, numbers.main_generate, "teacher and base addition traces, kept only when verified correct"),
    "code": (numbers.CODE, numbers.main_generate, "teacher and base programs for specs, kept only when they pass the spec's tests"),
    "code-sft": (numbers.CODE_SFT, numbers.main_generate, "several programs per spec from teacher and base, kept only when they pass the tests"),
}

if __name__ == "__main__":
    cli.main(COMMANDS, description=__doc__)
