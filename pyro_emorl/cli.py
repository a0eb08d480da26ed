"""The ``emorl`` console script.

Each feature module registers its own sub-command through a ``register(subparsers)`` function, so
this file only wires them together.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

#: Exit status of a user error (bad arguments, files or data), as argparse uses.
EXIT_USER_ERROR = 2

#: What a user can cause and fix: bad values, missing, existing or unreadable files, bad data
#: (the data errors are ``ValueError``s). Anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, OSError)


def build_parser() -> argparse.ArgumentParser:
    """The ``emorl`` argument parser with every sub-command registered."""
    from pyro_emorl.data import cli as data_cli
    from pyro_emorl.evaluation import cli as evaluation_cli
    from pyro_emorl.train import cli as train_cli

    parser = argparse.ArgumentParser(
        prog="emorl", description="EfficientMORL scene decomposition in Pyro."
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    subparsers = parser.add_subparsers(dest="command", required=True)
    data_cli.register(subparsers)
    train_cli.register(subparsers)
    evaluation_cli.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``emorl`` command line; returns the process exit status.

    A user error is reported as one line, ``emorl <command>: error: <what and how to fix it>``,
    with exit status 2; ``emorl --debug <command>`` shows its traceback instead.
    """
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as error:
        if args.debug:
            raise
        message = str(error) or type(error).__name__
        if isinstance(error, OSError) and error.filename and str(error.filename) not in message:
            message = f"{error.filename}: {message}"
        print(f"emorl {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
