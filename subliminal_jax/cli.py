"""Shared entry point of train.py / generate.py / evaluate.py.

Each subcommand is a frozen config dataclass instance (its defaults) and a
function taking the config; tyro turns the fields into flags. User errors
and unanticipated file errors print as one line (exit 2) instead of a traceback.
`--distributed`, anywhere on the line, makes this process one of several (multihost.py).
"""
from __future__ import annotations

import os
import sys

import tyro

from subliminal_jax import multihost
from subliminal_jax.errors import UserError


def main(commands: dict, description: str, argv: list[str] | None = None) -> None:
    """commands: subcommand name -> (default config instance, function(config), one-line help)."""
    argv = sys.argv[1:] if argv is None else argv
    distributed = "--distributed" in argv  # (not a config field: it says how to run, not what)
    argv = [a for a in argv if a != "--distributed"]
    prog = sys.argv[0].rsplit("/", 1)[-1]
    if not argv or argv[0] not in commands:
        print(f"usage: python {prog} {{{','.join(commands)}}} [--help | flags] [--distributed]\n\n"
              f"{description.strip()}\n")
        for name, (_, _, help_line) in commands.items():
            print(f"  {name:20s} {help_line}")
        print("\n  --distributed  be one of several processes over one mesh (jax.distributed; README, Devices and hosts)")
        sys.exit(0 if argv and argv[0] in ("-h", "--help") else 2)
    default, fn, _ = commands[argv[0]]
    try:
        cfg = tyro.cli(type(default), default=default, args=argv[1:], prog=f"{prog} {argv[0]}")
        if distributed:  # before anything touches a device
            multihost.initialize()
        else:
            multihost.check_not_requested()
        fn(cfg)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:  # a read or write no module anticipated (disk full, permissions): still one line
        print(f"error: {e.filename or 'a file'}: {e.strerror or e}; check the path, its permissions and free space",
              file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        # exit without interpreter teardown: a compiled program interrupted mid-run can still be executing on
        # XLA's threads, and finalizing Python under it segfaulted (exit 139). Unfinished checkpoints are
        # temp folders orbax never restores, numbers.jsonl / JSON / PNG are renamed into place only when whole.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
