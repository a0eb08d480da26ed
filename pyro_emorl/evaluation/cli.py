"""``emorl evaluate`` and ``emorl visualize``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, cast

import h5py
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from pyro_emorl import presets
from pyro_emorl.data import HDF5Dataset
from pyro_emorl.data.atomic import (
    atomic_path,
    check_output,
    remove_stale_temporaries,
    report_removed,
)
from pyro_emorl.data.errors import MissingArrayError
from pyro_emorl.data.interrupts import (
    EXIT_INTERRUPTED,
    Interrupted,
    check_interrupted,
    stop_on_signals,
)
from pyro_emorl.decompose import decompose
from pyro_emorl.devices import check_device
from pyro_emorl.evaluation.disentanglement import codes_from_means, evaluate_dci
from pyro_emorl.evaluation.protocol import evaluate
from pyro_emorl.io.loading import LoadedModel, load_for_inference
from pyro_emorl.nn.precision import PRECISIONS, resolve_precision, set_conv_dtype


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` and ``visualize`` sub-commands."""
    evaluate_parser = subparsers.add_parser(
        "evaluate",
        help="score a checkpoint on a test set (FG-ARI, ARI, MSE, KL, SC, mSC, mIoU)",
        description="The paper's protocol: the first --num-images test images, metrics of the "
        "last refinement step, CLEVR masks compared at 192x192. Files written by `emorl convert "
        "clevrtex` also get the ClevrTex evaluator's count accuracy, DICE and foreground DICE "
        "(its official evaluation scores all 5000 test images: --num-images 5000).",
    )
    _common_arguments(evaluate_parser)
    evaluate_parser.add_argument("--num-images", type=int, default=320)
    evaluate_parser.add_argument("--batch-size", type=int, default=8)
    evaluate_parser.add_argument("--out", type=Path, default=None, help="results JSON file")
    evaluate_parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing --out file"
    )
    evaluate_parser.add_argument(
        "--dci", action="store_true", help="also score disentanglement (needs factors)"
    )
    evaluate_parser.set_defaults(func=run_evaluate)

    visualize_parser = subparsers.add_parser(
        "visualize",
        help="figures of decompositions, inference steps, latent traversals and prior samples",
    )
    _common_arguments(visualize_parser)
    visualize_parser.add_argument("--out", type=Path, required=True, help="output directory")
    visualize_parser.add_argument(
        "--num-images", type=int, default=None, help="images to decompose (default: 4)"
    )
    visualize_parser.add_argument("--slot", type=int, default=0, help="slot to traverse (0..K-1)")
    visualize_parser.add_argument(
        "--num-dims", type=int, default=None, help="dims to traverse (default: 10, at most D)"
    )
    visualize_parser.add_argument("--num-samples", type=int, default=16, help="prior samples")
    visualize_parser.add_argument(
        "--overwrite", action="store_true", help="replace figures already in --out"
    )
    visualize_parser.set_defaults(func=run_visualize)


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint",
        type=Path,
        help="pyro_emorl or official checkpoint, or a shipped model by name (tetrominoes)",
    )
    parser.add_argument("--data", type=Path, required=True, help="HDF5 file")
    parser.add_argument("--split", default="test")
    parser.add_argument("--refine-steps", type=int, default=None, help="I (default: config's)")
    parser.add_argument("--num-slots", type=int, default=None, help="K (default: config's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--preset",
        default=None,
        metavar="NAME",
        help="configuration of an official checkpoint (ours carry their own); one of: "
        + ", ".join(presets.names()),
    )
    parser.add_argument(
        "--refine-objective",
        choices=("auto", "elbo", "geco"),
        default="auto",
        help="objective whose gradient drives refinement (auto: GECO if trained with it)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="float32",
        help="dtype of the convolutions: bfloat16 autocast, or auto: bfloat16 where the CPU "
        "(AVX512-BF16, AMX) or GPU has it natively (default: float32)",
    )
    parser.add_argument("--no-progress", action="store_true")


def _at_least(option: str, value: int | None, minimum: int) -> None:
    if value is not None and value < minimum:
        raise ValueError(f"{option} must be >= {minimum}, got {value}")


def _check_common(args: argparse.Namespace) -> None:
    """The checks of the options both commands share, before any file is read."""
    check_device(args.device)
    _at_least("--refine-steps", args.refine_steps, 0)
    _at_least("--num-slots", args.num_slots, 1)
    _at_least("--num-images", args.num_images, 1)


def _warn(args: argparse.Namespace, message: str) -> None:
    print(f"emorl {args.command}: warning: {message}", file=sys.stderr)


def _load(
    args: argparse.Namespace, factors: bool = False, masks: bool = True
) -> tuple[LoadedModel, HDF5Dataset]:
    torch.manual_seed(args.seed)
    config = None if args.preset is None else presets.get(args.preset)
    loaded = load_for_inference(args.checkpoint, config=config, map_location=args.device)
    conv_dtype = resolve_precision(args.precision, torch.device(args.device))
    for module in (loaded.model, loaded.guide):  # as training does with --precision
        set_conv_dtype(cast(nn.Module, module), conv_dtype)  # the shipped ones are modules
    if args.preset is not None and loaded.source == "pyro_emorl":
        _warn(
            args,
            f"--preset {args.preset} is ignored: {args.checkpoint} carries its own configuration "
            "(--preset is for official EfficientMORL checkpoints)",
        )
    size = loaded.config.image_shape[-1]
    dataset = _open(args, masks=masks, factors=factors)
    image_shape = tuple(dataset[0]["imgs"].shape)
    if image_shape != loaded.config.image_shape and image_shape[-2:] == (240, 320):
        # Raw CLEVR: crop and resize like the official loader (masks stay 192x192).
        style = {96: "clevr-small", 128: "clevr-large"}.get(size)
        if style is None:
            raise ValueError(f"no CLEVR preprocessing gives {size}x{size} images")
        dataset = HDF5Dataset(
            args.data, split=args.split, masks=masks, factors=factors, clevr_preprocess=style
        )
    elif image_shape != loaded.config.image_shape:
        raise ValueError(
            f"{args.data} holds {image_shape} images but the model expects "
            f"{loaded.config.image_shape}"
        )
    return loaded, dataset


def _open(args: argparse.Namespace, **options: Any) -> HDF5Dataset:
    """``--data``'s split, with what the command needs of it named when it is missing."""
    try:
        return HDF5Dataset(args.data, split=args.split, **options)
    except MissingArrayError as error:
        need = {
            "masks": "the scores compare segmentations with its ground-truth masks",
            "factors": "--dci predicts its ground-truth factors",
        }
        fix = "" if error.key == "masks" else ", or drop --dci"
        raise ValueError(
            f"--data {args.data}: its {error.split} split has no {error.key} and "
            f"{need[error.key]}; give a file written by `emorl generate` or `emorl convert`{fix}"
        ) from None


def _dataset_name(path: Path) -> str:
    """The ``dataset`` attribute our converters and generators write (``""`` for other files,
    such as the official Zenodo ones)."""
    with h5py.File(path, "r") as f:
        return str(f.attrs.get("dataset", ""))


def run_evaluate(args: argparse.Namespace) -> int:
    """Evaluate a checkpoint; print a table and write JSON.

    SIGINT and SIGTERM stop it within a batch, with one line and exit status 130; ``--out``
    is then as it was before (a second signal changes nothing).
    """
    try:
        with stop_on_signals(exiting=True):
            return _evaluate(args)
    except Interrupted as stop:
        kept = "" if args.out is None else f"; {args.out} is as it was before"
        print(
            f"emorl {args.command}: interrupted by {stop.signal_name}: stopped before "
            f"finishing{kept}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED


def _progress(bar: tqdm) -> Callable[[int], None]:
    """Advance ``bar`` to the images done, and stop there if a signal arrived."""

    def update(done: int) -> None:
        bar.update(done - bar.n)
        check_interrupted()

    return update


def _evaluate(args: argparse.Namespace) -> int:
    _check_common(args)
    _at_least("--batch-size", args.batch_size, 1)
    if args.out is not None:
        check_output(args.out, inputs=[args.checkpoint, args.data], overwrite=args.overwrite)
    loaded, dataset = _load(args, factors=args.dci)
    steps = loaded.config.refinement_steps if args.refine_steps is None else args.refine_steps
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=False)
    total = min(args.num_images, len(dataset))
    if args.num_images > len(dataset):
        _warn(
            args,
            f"--num-images {args.num_images}: the {args.split} split of {args.data} holds "
            f"{len(dataset)} images; scoring those {len(dataset)}",
        )
    with tqdm(total=total, unit="img", disable=args.no_progress) as bar:
        result = evaluate(
            loaded.model,
            loaded.guide,
            loader,
            num_steps=steps,
            num_images=args.num_images,
            num_slots=args.num_slots,
            objective=loaded.refinement_objective(args.refine_objective),
            progress=_progress(bar),
            clevrtex=_dataset_name(args.data) == "clevrtex",
        )
    result.settings.update(
        checkpoint=str(args.checkpoint),
        checkpoint_kind=loaded.source,
        data=str(args.data),
        split=args.split,
        seed=args.seed,
        refine_objective=args.refine_objective,
        precision=args.precision,
    )
    warning = result.slot_warning()
    if warning is not None:
        _warn(args, warning)
    print(result.table())
    results = result.to_dict()
    if args.dci:
        # `evaluate` always records the posterior means.
        means = cast(Tensor, result.posterior_means)
        codes, factors, names, types = codes_from_means(loaded.model, means, loader)
        scores = evaluate_dci(codes, factors, names, types)
        results["dci"] = scores
        print(
            f"DCI: disentanglement {scores['disentanglement']:.3f}, completeness "
            f"{scores['completeness']:.3f}, informativeness {scores['informativeness']:.3f} "
            f"({scores['num_pairs']} matched slots)"
        )
    if args.out is not None:
        report_removed(args.command, remove_stale_temporaries(args.out))
        with atomic_path(args.out) as tmp:
            tmp.write_text(json.dumps(results, indent=2))
        print(f"wrote {args.out}")
    return 0


def run_visualize(args: argparse.Namespace) -> int:
    """Write decomposition, inference-step, traversal and prior-sample figures."""
    from pyro_emorl.viz.decomposition import plot_decomposition, save_figure
    from pyro_emorl.viz.samples import plot_samples, sample_scenes
    from pyro_emorl.viz.steps import plot_inference_steps
    from pyro_emorl.viz.traversal import latent_traversal, plot_traversal, save_traversal_gif

    _check_common(args)
    _at_least("--slot", args.slot, 0)
    _at_least("--num-dims", args.num_dims, 1)
    _at_least("--num-samples", args.num_samples, 1)
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} is a file: give a directory for the figures")
    loaded, dataset = _load(args, masks=False)  # figures need the images only
    count, num_dims = _visualize_ranges(args, loaded, len(dataset))
    names = [f"{kind}_{i}.png" for i in range(count) for kind in ("decomposition", "steps")]
    names += [f"traversal_slot{args.slot}.png", f"traversal_slot{args.slot}.gif"]
    names.append("prior_samples.png")
    existing = [args.out / name for name in names if (args.out / name).exists()]
    if existing and not args.overwrite:
        shown = ", ".join(p.name for p in existing[:3]) + (", ..." if len(existing) > 3 else "")
        raise FileExistsError(
            f"--out {args.out} already holds {shown}: pass --overwrite to replace them, or "
            "choose another folder"
        )
    steps = loaded.config.refinement_steps if args.refine_steps is None else args.refine_steps
    images = torch.stack([dataset[i]["imgs"] for i in range(count)]).to(args.device)
    out = decompose(
        loaded.model,
        loaded.guide,
        images,
        num_steps=steps,
        num_slots=args.num_slots,
        objective=loaded.refinement_objective(args.refine_objective),
    )
    written = []
    for i in range(count):
        written.append(
            save_figure(plot_decomposition(out, images, i), args.out / f"decomposition_{i}.png")
        )
        written.append(
            save_figure(plot_inference_steps(out, images, i), args.out / f"steps_{i}.png")
        )
    traversal = latent_traversal(loaded.model, out.final.loc[0], args.slot, num_dims=num_dims)
    written.append(
        save_figure(plot_traversal(traversal), args.out / f"traversal_slot{args.slot}.png")
    )
    written.append(save_traversal_gif(traversal, args.out / f"traversal_slot{args.slot}.gif"))
    scenes = sample_scenes(loaded.model, args.num_samples, num_slots=args.num_slots)
    written.append(save_figure(plot_samples(scenes), args.out / "prior_samples.png"))
    for path in written:
        print(f"wrote {path}")
    return 0


class _LatentConfig(Protocol):
    """A configuration with a latent width (every shipped model family's has one)."""

    z_dim: int


def _visualize_ranges(
    args: argparse.Namespace, loaded: LoadedModel, num_images: int
) -> tuple[int, int]:
    """Check the options of ``visualize`` that depend on the model and the data (before any
    decomposition); returns the number of images and of traversed dimensions."""
    slots = loaded.config.num_slots if args.num_slots is None else args.num_slots
    if args.slot >= slots:
        raise ValueError(
            f"--slot {args.slot}: the model decomposes scenes into K={slots} slots; choose a "
            f"slot in 0..{slots - 1}"
        )
    z_dim = cast(_LatentConfig, loaded.config).z_dim
    if args.num_dims is not None and args.num_dims > z_dim:
        raise ValueError(
            f"--num-dims {args.num_dims}: each slot has {z_dim} latent dimensions; choose "
            f"1..{z_dim}"
        )
    if args.num_images is not None and args.num_images > num_images:
        raise ValueError(
            f"--num-images {args.num_images}: the {args.split} split of {args.data} holds "
            f"{num_images} images; choose 1..{num_images}"
        )
    count = min(4, num_images) if args.num_images is None else args.num_images
    return count, min(10, z_dim) if args.num_dims is None else args.num_dims
