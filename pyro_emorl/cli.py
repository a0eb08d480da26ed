"""The ``emorl`` console script.

Each feature module registers its own sub-command through a ``register(subparsers)`` function, so
this file only wires them together.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    """The ``emorl`` argument parser with every sub-command registered."""
    from pyro_emorl.data import cli as data_cli
    from pyro_emorl.evaluation import cli as evaluation_cli
    from pyro_emorl.train import cli as train_cli

    parser = argparse.ArgumentParser(
        prog="emorl", description="EfficientMORL scene decomposition in Pyro."
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    data_cli.register(subparsers)
    train_cli.register(subparsers)
    evaluation_cli.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``emorl`` command line; returns the process exit status."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
