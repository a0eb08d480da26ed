"""The ``emorl train`` sub-command."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pyro_emorl import presets
from pyro_emorl.config import ModelConfig
from pyro_emorl.data import HDF5Dataset
from pyro_emorl.data.errors import MissingArrayError
from pyro_emorl.devices import check_device
from pyro_emorl.io.checkpoint import latest_checkpoint
from pyro_emorl.io.loading import initial_weights
from pyro_emorl.io.run_folder import RUN_MARKER
from pyro_emorl.nn.precision import PRECISIONS
from pyro_emorl.registry import REGISTRY, config_from_dict
from pyro_emorl.train.data import training_dataset
from pyro_emorl.train.loop import fit
from pyro_emorl.train.options import RunOptions
from pyro_emorl.train.starts import RECORD, check_starts, fit_best_start, start_dir, start_seeds

#: Exit status of a run stopped by SIGINT/SIGTERM (after writing a checkpoint).
EXIT_INTERRUPTED = 130


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` sub-command to the ``emorl`` parser.

    Args:
        subparsers: the object returned by ``ArgumentParser.add_subparsers``.
    """
    parser = subparsers.add_parser(
        "train",
        help="train a model on a preset's data",
        description="Train a registered model with a preset's recipe (the paper's by default). "
        "Without --data, Tetrominoes and Multi-dSprites are generated into the cache. Under "
        "torchrun the global batch is split across processes. SIGINT/SIGTERM write a checkpoint "
        f"and exit with status {EXIT_INTERRUPTED}; --resume continues exactly where a run stopped.",
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``emorl train``."""
    parser.add_argument(
        "--preset",
        required=True,
        metavar="NAME",
        help="a registered preset (`emorl list`): " + ", ".join(presets.names()),
    )
    parser.add_argument(
        "--model",
        default="emorl",
        help="a registered model: emorl (default), slot_attention, ...; with another model the "
        "preset MODEL_PRESET is used, e.g. --model slot_attention --preset tetrominoes (= "
        "--preset slot_attention_tetrominoes)",
    )
    parser.add_argument("--data", help="HDF5 training file (default: generate the preset's data)")
    parser.add_argument("--steps", type=_positive, help="training steps (default: the preset's)")
    parser.add_argument(
        "--batch-size", type=_positive, help="global batch size (default: the preset's)"
    )
    parser.add_argument("--out", help="run directory (default: runs/PRESET)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument(
        "--init-from",
        metavar="CHECKPOINT",
        help="start from this checkpoint's weights (or a shipped model's name, e.g. tetrominoes) "
        "instead of a fresh initialisation, e.g. to fine-tune with another --set likelihood=...; "
        "the optimiser and the schedules start anew",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="start in a folder holding files no run wrote (left alone) or a run stopped "
        "before its first checkpoint (replaced); checkpoints are never replaced",
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: cuda when available)")
    parser.add_argument("--seed", type=_count, default=0)
    add_override_arguments(parser)
    parser.add_argument("--log-every", type=_positive, default=RunOptions.log_every)
    parser.add_argument("--checkpoint-every", type=_positive, default=RunOptions.checkpoint_every)
    parser.add_argument(
        "--figure-every",
        type=_count,
        default=RunOptions.figure_every,
        help="steps between decomposition figures (0: none)",
    )
    parser.add_argument("--workers", type=_count, default=0, help="DataLoader worker processes")
    parser.add_argument(
        "--num-train", type=_positive, help="images to generate (default: the paper's 60,000)"
    )
    parser.add_argument(
        "--eval-data",
        help="HDF5 file whose test split (with masks) is scored while training (default: the "
        "test split of the generated data; none for --data files)",
    )
    parser.add_argument(
        "--eval-every",
        type=_count,
        default=1000,
        help="steps between held-out evaluations (0: only at the start and the end)",
    )
    parser.add_argument(
        "--eval-images", type=_positive, default=RunOptions.eval_images, help="images scored"
    )
    parser.add_argument(
        "--minutes", type=float, help="stop after this many minutes of training (checkpointed)"
    )
    parser.add_argument(
        "--starts",
        type=_positive,
        default=1,
        help="initialisations trained to --select-at; the one with the lowest negative ELBO on "
        "training images is continued (train.fit_best_start; default 1: a plain run)",
    )
    parser.add_argument(
        "--select-at", type=_positive, default=1000, help="step at which --starts are compared"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--no-tensorboard", action="store_true", help="do not log to TensorBoard")


def add_override_arguments(parser: argparse.ArgumentParser) -> None:
    """``--set KEY=VALUE`` (into ``overrides``, for `resolve_config`) and ``--precision``: how
    `emorl train` and ``benchmarks/learning.py`` change a preset and its convolutions."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a configuration field; VALUE is JSON or a bare string. Repeatable. E.g. "
        "num_slots=5, decoder=small, prior=MY_PRIOR, prior_options.scale=0.5, training.lr=2e-4, "
        'training.curriculum=[[-1,3]], geco=null, geco={"target_per_element":-1.2}',
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="float32",
        help="dtype of the convolutions: bfloat16 autocast, or auto: bfloat16 where the CPU "
        "(AVX512-BF16, AMX) or GPU has it natively (default: float32)",
    )


def resolve_config(preset: str, overrides: Sequence[str] = (), **training: Any) -> ModelConfig:
    """The preset's configuration with ``KEY=VALUE`` overrides and training fields applied.

    Args:
        preset: preset name.
        overrides: ``"field=value"``, ``"training.field=value"``, ``"geco.field=value"`` or
            ``"prior_options.name=value"`` (any option of a component); values are parsed as
            JSON, falling back to the bare string.
        **training: ``TrainingConfig`` fields to set (``None`` values are ignored).

    Raises:
        ValueError: for a malformed override, an unknown field, or a training field given both
            here and in ``overrides``.
    """
    data = presets.get(preset).to_dict()
    given = {k for k, v in training.items() if v is not None}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        *parents, name = key.split(".")
        node = data
        for parent in parents:
            if not isinstance(node.get(parent), dict):
                hint = " (the preset has no GECO: set geco={...} first)" if parent == "geco" else ""
                raise ValueError(f"unknown configuration section {parent!r} in {key!r}{hint}")
            node = node[parent]
        if name not in node and not (parents and parents[-1].endswith("_options")):
            raise ValueError(f"unknown configuration field {key!r}; fields: {sorted(node)}")
        if parents == ["training"] and name in given:
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag} and --set {key} both set {key}: give it once")
        node[name] = value
    if given:
        if not isinstance(data["training"], dict):
            raise ValueError(
                f"training must be a mapping of training fields, got {data['training']!r}"
            )
        data["training"].update({k: training[k] for k in given})
    try:
        return config_from_dict(data)
    except TypeError as error:  # e.g. a value of the wrong kind inside a nested setting
        raise ValueError(f"invalid configuration override: {error}") from error


def preset_for_model(model: str, preset: str) -> str:
    """The preset that ``--model MODEL --preset PRESET`` means (``slot_attention_<preset>``)."""
    REGISTRY.get("model", model)  # a one-line error for an unknown model
    if model == "emorl" or preset.startswith(f"{model}_"):
        return preset
    name = f"{model}_{preset}"
    if name not in presets.names():
        have = sorted(p.removeprefix(f"{model}_") for p in presets.names() if p.startswith(model))
        raise ValueError(
            f"--model {model} has no preset for {preset!r}; use --preset {' or '.join(have)}"
        )
    return name


def held_out_data(path: str | Path) -> HDF5Dataset:
    """The test split of ``path`` with its masks, for the held-out scores."""
    try:
        return HDF5Dataset(path, split="test", masks=True)
    except MissingArrayError:
        raise ValueError(
            f"--eval-data {path}: its test split has no ground-truth masks, which the held-out "
            "scores need; give a file written by `emorl generate` or `emorl convert`"
        ) from None


def run(args: argparse.Namespace) -> int:
    """Run ``emorl train``; returns the exit status."""
    args.preset = preset_for_model(args.model, args.preset)
    REGISTRY.get("preset", args.preset)  # before any file is read or written
    if args.device is not None:  # before generating or reading any data
        check_device(args.device)
    if args.minutes is not None and not args.minutes > 0:  # before generating any data
        raise ValueError(f"--minutes must be positive, got {args.minutes}")
    if args.init_from is not None and args.starts > 1:
        raise ValueError("--init-from starts one run from given weights; drop --starts")
    out_dir = Path(args.out or f"runs/{args.preset}")
    runs = [out_dir]
    if args.starts > 1:
        runs = [start_dir(out_dir, s) for s in start_seeds(args.seed, args.starts)]
    started = (out_dir / RECORD).is_file() or any(
        latest_checkpoint(r / "checkpoints") or (r / RUN_MARKER).is_file() for r in runs
    )
    if (
        args.resume
        and not started
        and args.starts > 1
        and latest_checkpoint(out_dir / "checkpoints")
    ):
        raise ValueError(
            f"--resume --starts {args.starts}: {out_dir} holds a run of one start (its "
            "checkpoints are in checkpoints/): resume it without --starts"
        )
    if args.resume and not started:
        raise ValueError(
            f"--resume: {out_dir} holds no checkpoint to continue; drop --resume to start a new run"
        )
    if args.init_from is not None and not args.resume:  # a bad file named before any work
        initial_weights(args.init_from)
    config = resolve_config(
        args.preset, args.overrides, steps=args.steps, batch_size=args.batch_size
    )
    if args.starts > 1:
        check_starts(config, args.starts, args.select_at)
    dataset = training_dataset(
        args.preset, config, args.data, num_train=args.num_train, progress=not args.no_progress
    )
    eval_data = args.eval_data or (None if args.data else dataset.path)
    held_out = None if eval_data is None else held_out_data(eval_data)
    options = RunOptions(
        out_dir=out_dir,
        device=args.device,
        seed=args.seed,
        resume=args.resume,
        overwrite=args.overwrite,
        log_every=args.log_every,
        checkpoint_every=args.checkpoint_every,
        figure_every=args.figure_every,
        num_workers=args.workers,
        progress=not args.no_progress,
        tensorboard=not args.no_tensorboard,
        eval_every=args.eval_every,
        eval_images=args.eval_images,
        time_budget_s=None if args.minutes is None else 60 * args.minutes,
        precision=args.precision,
        init_from=args.init_from,
    )
    if args.starts == 1:
        result = fit(config, dataset, options, eval_data=held_out)
    else:
        result = fit_best_start(
            config,
            dataset,
            options,
            starts=args.starts,
            select_at=args.select_at,
            eval_data=held_out,
        ).result
    return EXIT_INTERRUPTED if result.interrupted else 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text}")
    return value
