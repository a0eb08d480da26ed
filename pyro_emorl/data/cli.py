"""The ``emorl generate`` and ``emorl convert`` sub-commands."""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import h5py

from pyro_emorl.data import clevrtex
from pyro_emorl.data.atomic import LeftoversRemovedWarning, check_output
from pyro_emorl.data.conversion import DEFAULT_SPLITS, ConversionSummary, convert
from pyro_emorl.data.generation import GENERATOR_VARIANTS, GENERATORS, PAPER_SPLIT, generate
from pyro_emorl.data.interrupts import EXIT_INTERRUPTED, Interrupted, stop_on_signals
from pyro_emorl.data.schemas import DATASETS, MULTI_DSPRITES_VARIANTS, OBJECTS_ROOM_VARIANTS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``generate`` and ``convert`` sub-commands to the ``emorl`` parser.

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers``.
    """
    gen = subparsers.add_parser(
        "generate",
        help="generate a synthetic dataset as HDF5",
        description="Generate Tetrominoes or Multi-dSprites (colored_on_grayscale, or the "
        "textured variant of the paper's appendix B.1) scenes into the HDF5 layout of the "
        "official EfficientMORL code.",
    )
    gen.add_argument("name", choices=GENERATORS)
    gen.add_argument(
        "--variant",
        choices=sorted({v for variants in GENERATOR_VARIANTS.values() for v in variants}),
        help="multi_dsprites: colored_on_grayscale (default) or textured (patterned sprites on "
        "a patterned background)",
    )
    gen.add_argument("--out", required=True, help="destination .h5 file")
    gen.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    gen.add_argument("--num-train", type=_count, default=PAPER_SPLIT[0], help="default 60000")
    gen.add_argument("--num-test", type=_count, default=PAPER_SPLIT[1], help="default 320")
    gen.add_argument("--seed", type=_count, default=0)
    gen.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    gen.set_defaults(func=_run_generate)

    variants = sorted({*MULTI_DSPRITES_VARIANTS, *OBJECTS_ROOM_VARIANTS, *clevrtex.VARIANTS})
    conv = subparsers.add_parser(
        "convert",
        help="convert DeepMind Multi-Object Datasets TFRecords or the ClevrTex release to HDF5 "
        "(no TensorFlow needed)",
        description="Convert a (GZIP) TFRecord file of DeepMind's Multi-Object Datasets, or the "
        "folder of the unpacked ClevrTex release, into the HDF5 layout of the official "
        "EfficientMORL code. TFRecords get the paper's splits by default: "
        + "; ".join(f"{k} {a}/{b}" for k, (a, b) in DEFAULT_SPLITS.items())
        + " (train/test; CLEVR keeps images with at most 6 objects, CLEVR6, unless "
        "--min-objects/--max-objects say otherwise: --min-objects 7 --max-objects 10 "
        "--num-train 0 writes the CLEVR10 test set). ClevrTex gets the official loader's "
        "splits (test, val, train: the first 10 %, the next 10 % and the rest of the scene "
        "indices), 80 % centre crop and 128x128 resize.",
    )
    conv.add_argument(
        "dataset",
        choices=(*DATASETS, "clevrtex"),
        metavar="DATASET",
        help="one of: " + ", ".join((*DATASETS, "clevrtex")),
    )
    conv.add_argument(
        "input", help="the .tfrecords file, or for clevrtex the folder holding clevrtex_<variant>/"
    )
    conv.add_argument("--out", required=True, help="destination .h5 file")
    conv.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    conv.add_argument(
        "--variant",
        choices=variants,
        metavar="VARIANT",
        help="multi_dsprites: colored_on_grayscale (default), colored_on_colored, binarized; "
        "objects_room: train (default), six_objects, empty_room, identical_color; "
        "clevrtex: full (default), pbg, vbg, grassbg, camo, outd",
    )
    conv.add_argument(
        "--split",
        choices=tuple(clevrtex.SPLITS),
        help="clevrtex: write only this split (default: train, val and test; outd: test only)",
    )
    conv.add_argument("--num-train", type=_count, help="default: the paper's split")
    conv.add_argument("--num-test", type=_count, help="default: 320")
    conv.add_argument("--min-objects", type=_count, help="keep images with >= this many objects")
    conv.add_argument(
        "--max-objects",
        type=_count,
        help="keep images with <= this many objects (CLEVR: 6, or no limit when --min-objects "
        "is above 6)",
    )
    conv.add_argument(
        "--resize",
        type=_count,
        help="CLEVR: crop 192x192 and resize to this size now (96 or 128 in the paper)",
    )
    conv.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    conv.set_defaults(func=_run_convert)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value}")
    return value


T = TypeVar("T")


class _Stopped(Exception):
    """A command stopped by SIGINT/SIGTERM (its one line is printed already)."""


@contextmanager
def _warning_lines(command: str) -> Iterator[None]:
    """Show warnings as one line each, ``emorl <command>: warning: <message>``."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        print(f"emorl {command}: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        # Always a line, never an error: the command has done what the warning reports.
        warnings.simplefilter("always", LeftoversRemovedWarning)
        yield


def _writing(command: str, out: str, write: Callable[[], T]) -> T:
    """Run ``write`` with SIGINT/SIGTERM stopping it at once (see
    `pyro_emorl.data.interrupts`) and warnings as lines; an interrupt prints one line and raises
    `_Stopped`."""
    try:
        with _warning_lines(command), stop_on_signals(exiting=True):
            return write()
    except Interrupted as stop:
        print(
            f"emorl {command}: interrupted by {stop.signal_name}: stopped before finishing; "
            f"no partial file is left ({out} is as it was before)",
            file=sys.stderr,
        )
        raise _Stopped from None


def _interruptible(run: Callable[[argparse.Namespace], int]) -> Callable[..., int]:
    """Turn `_Stopped` into the exit status `EXIT_INTERRUPTED`."""

    def wrapped(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except _Stopped:
            return EXIT_INTERRUPTED

    wrapped.__doc__ = run.__doc__
    return wrapped


@_interruptible
def _run_generate(args: argparse.Namespace) -> int:
    check_output(args.out, overwrite=args.overwrite)
    start = time.perf_counter()
    path = _writing(
        args.command,
        args.out,
        lambda: generate(
            args.name,
            args.out,
            args.num_train,
            args.num_test,
            seed=args.seed,
            progress=not args.no_progress,
            variant=args.variant,
        ),
    )
    seconds = time.perf_counter() - start
    total = args.num_train + args.num_test
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) in {seconds:.1f} s")
    _print_splits(path)
    print(f"{total / max(seconds, 1e-9):.0f} images/s, seed {args.seed}")
    return 0


#: The options of ``emorl convert`` that apply to TFRecord files only.
_TFRECORD_OPTIONS = ("num_train", "num_test", "min_objects", "max_objects", "resize")


@_interruptible
def _run_convert(args: argparse.Namespace) -> int:
    if args.dataset == "clevrtex":
        given = [
            f"--{name.replace('_', '-')}"
            for name in _TFRECORD_OPTIONS
            if getattr(args, name) is not None
        ]
        if given:
            raise ValueError(
                f"{', '.join(given)}: TFRecord options; clevrtex takes --split and --variant"
            )
    elif args.split is not None:
        raise ValueError("--split applies to clevrtex only (TFRecords: --num-train/--num-test)")
    check_output(args.out, inputs=[args.input], overwrite=args.overwrite)
    if args.dataset == "clevrtex":
        summary = _writing(
            args.command,
            args.out,
            lambda: clevrtex.convert_clevrtex(
                args.input,
                args.out,
                split=args.split,
                variant=args.variant or "full",
                progress=not args.no_progress,
            ),
        )
        _print_summary(summary, "scenes")
        return 0
    summary = _writing(
        args.command,
        args.out,
        lambda: convert(
            args.dataset,
            args.input,
            args.out,
            variant=args.variant,
            num_train=args.num_train,
            num_test=args.num_test,
            min_objects=args.min_objects,
            max_objects=args.max_objects,
            resize=args.resize,
            progress=not args.no_progress,
        ),
    )
    _print_summary(summary, "records")
    return 0


def _print_summary(summary: ConversionSummary, unit: str) -> None:
    path = summary.path
    name = summary.dataset + (f"/{summary.variant}" if summary.variant else "")
    print(
        f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) from {summary.records_read} {name} "
        f"{unit} in {summary.seconds:.1f} s "
        f"({summary.records_read / max(summary.seconds, 1e-9):.0f} {unit}/s)"
    )
    _print_splits(path)
    print(f"preprocessing: {summary.preprocessing}")


def _print_splits(path: Path) -> None:
    with h5py.File(path, "r") as f:
        for split in f:
            group = f[split]
            factors = sorted(group["factors"]) if "factors" in group else []
            print(
                f"  {split}: imgs {list(group['imgs'].shape)}, masks {list(group['masks'].shape)}"
                + (f", factors {', '.join(factors)}" if factors else "")
            )
