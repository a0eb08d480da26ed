"""The ``emorl`` console script.

Each feature module registers its own sub-command through a ``register(subparsers)`` function, so
this file only wires them together.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from pyro_emorl.registry import KINDS, import_components, registered

#: Exit status of a user error (bad arguments, files or data), as argparse uses.
EXIT_USER_ERROR = 2
#: Exit status of a command stopped by SIGINT (128 + 2, as shells report it).
EXIT_INTERRUPTED = 130

#: What a user can cause and fix: bad values, missing, existing or unreadable files, bad data
#: (the data errors are ``ValueError``s). Anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, OSError)

#: The sub-commands that build models, and so take ``--import`` for a user's components.
IMPORTING_COMMANDS = ("train", "evaluate", "visualize", "list")


def build_parser() -> argparse.ArgumentParser:
    """The ``emorl`` argument parser with every sub-command registered."""
    from pyro_emorl.data import cli as data_cli
    from pyro_emorl.evaluation import cli as evaluation_cli
    from pyro_emorl.train import cli as train_cli

    parser = argparse.ArgumentParser(
        prog="emorl", description="Slot-based scene decomposition (EfficientMORL) in Pyro."
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    subparsers = parser.add_subparsers(dest="command", required=True)
    data_cli.register(subparsers)
    train_cli.register(subparsers)
    evaluation_cli.register(subparsers)
    list_parser = subparsers.add_parser(
        "list",
        help="what is registered: models, presets, priors, likelihoods, decoders",
        description="Every registered model, preset and component, with its options (the "
        "library's and those of --import).",
    )
    list_parser.add_argument("kind", nargs="?", choices=KINDS, help="only this kind")
    list_parser.add_argument("--json", action="store_true", help="print JSON")
    list_parser.set_defaults(func=run_list)
    for name in IMPORTING_COMMANDS:
        add_import_argument(
            subparsers.choices[name],
            "import a module or Python file that registers components (repeatable); "
            "needed to train, resume, evaluate or visualize with them",
        )
    return parser


def add_import_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """``--import MODULE_OR_FILE.py``, repeatable, collected in ``args.imports`` (for
    [import_components][pyro_emorl.import_components]); the benchmark scripts take it too."""
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE_OR_FILE.py",
        help=help,
    )


def run_list(args: argparse.Namespace) -> int:
    """Print the registered models, presets and components (``emorl list``)."""
    entries = registered(args.kind)
    if args.json:
        records = [
            {
                "kind": e.kind,
                "name": e.name,
                "options": e.options(),
                "summary": e.summary,
                "source": e.source,
            }
            for e in entries
        ]
        print(json.dumps(records, indent=2, default=repr))
        return 0
    for kind in KINDS:
        shown = [e for e in entries if e.kind == kind]
        if not shown:
            continue
        print(f"{kind}s:")
        for entry in shown:
            options = ", ".join(f"{k}={v!r}" for k, v in entry.options().items())
            print(f"  {entry.name:<32} {entry.summary}")
            if options:
                print(f"  {'':<32} options: {options}")
            if not entry.source.startswith("pyro_emorl."):
                print(f"  {'':<32} from {entry.source}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``emorl`` command line; returns the process exit status.

    A user error is reported as one line, ``emorl <command>: error: <what and how to fix it>``,
    with exit status 2; ``emorl --debug <command>`` shows its traceback instead.
    """
    args = build_parser().parse_args(argv)
    try:
        for spec in getattr(args, "imports", ()):
            import_components(spec)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        # A second Ctrl-C (the first asks a run to stop after its step and checkpoint).
        if args.debug:
            raise
        print(f"emorl {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
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
