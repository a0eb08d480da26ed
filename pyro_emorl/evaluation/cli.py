"""``emorl evaluate`` and ``emorl visualize``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from pyro_emorl import presets
from pyro_emorl.data import HDF5Dataset
from pyro_emorl.data.atomic import atomic_path, check_output
from pyro_emorl.decompose import decompose
from pyro_emorl.evaluation.checkpoint import LoadedModel, load_for_inference
from pyro_emorl.evaluation.disentanglement import codes_from_means, evaluate_dci
from pyro_emorl.evaluation.protocol import evaluate


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` and ``visualize`` sub-commands."""
    evaluate_parser = subparsers.add_parser(
        "evaluate",
        help="score a checkpoint on a test set (FG-ARI, ARI, MSE, KL, SC, mSC, mIoU)",
        description="The paper's protocol: the first --num-images test images, metrics of the "
        "last refinement step, CLEVR masks compared at 192x192.",
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
    visualize_parser.add_argument("--num-images", type=int, default=4)
    visualize_parser.add_argument("--slot", type=int, default=0, help="slot to traverse")
    visualize_parser.add_argument("--num-dims", type=int, default=10, help="dims to traverse")
    visualize_parser.add_argument("--num-samples", type=int, default=16, help="prior samples")
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
        choices=sorted(presets.PRESETS),
        default=None,
        help="configuration of an official checkpoint (ours carry their own)",
    )
    parser.add_argument(
        "--refine-objective",
        choices=("auto", "elbo", "geco"),
        default="auto",
        help="objective whose gradient drives refinement (auto: GECO if trained with it)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-progress", action="store_true")


def _load(args: argparse.Namespace, factors: bool = False) -> tuple[LoadedModel, HDF5Dataset]:
    torch.manual_seed(args.seed)
    config = None if args.preset is None else presets.get(args.preset)
    loaded = load_for_inference(args.checkpoint, config=config, map_location=args.device)
    size = loaded.config.image_shape[-1]
    dataset = HDF5Dataset(args.data, split=args.split, masks=True, factors=factors)
    image_shape = tuple(dataset[0]["imgs"].shape)
    if image_shape != loaded.config.image_shape and image_shape[-2:] == (240, 320):
        # Raw CLEVR: crop and resize like the official loader (masks stay 192x192).
        style = {96: "clevr-small", 128: "clevr-large"}.get(size)
        if style is None:
            raise ValueError(f"no CLEVR preprocessing gives {size}x{size} images")
        dataset = HDF5Dataset(
            args.data, split=args.split, masks=True, factors=factors, clevr_preprocess=style
        )
    elif image_shape != loaded.config.image_shape:
        raise ValueError(
            f"{args.data} holds {image_shape} images but the model expects "
            f"{loaded.config.image_shape}"
        )
    return loaded, dataset


def run_evaluate(args: argparse.Namespace) -> int:
    """Evaluate a checkpoint; print a table and write JSON."""
    if args.out is not None:
        check_output(args.out, inputs=[args.checkpoint, args.data], overwrite=args.overwrite)
    loaded, dataset = _load(args, factors=args.dci)
    steps = loaded.config.refinement_steps if args.refine_steps is None else args.refine_steps
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=False)
    total = min(args.num_images, len(dataset))
    with tqdm(total=total, unit="img", disable=args.no_progress) as bar:
        result = evaluate(
            loaded.model,
            loaded.guide,
            loader,
            num_steps=steps,
            num_images=args.num_images,
            num_slots=args.num_slots,
            objective=loaded.refinement_objective(args.refine_objective),
            progress=lambda done: bar.update(done - bar.n),
        )
    result.settings.update(
        checkpoint=str(args.checkpoint),
        checkpoint_kind=loaded.source,
        data=str(args.data),
        split=args.split,
        seed=args.seed,
        refine_objective=args.refine_objective,
    )
    print(result.table())
    results = result.to_dict()
    if args.dci:
        codes, factors, names, types = codes_from_means(
            loaded.model, result.posterior_means, loader
        )
        results["dci"] = evaluate_dci(codes, factors, names, types)
        scores = results["dci"]
        print(
            f"DCI: disentanglement {scores['disentanglement']:.3f}, completeness "
            f"{scores['completeness']:.3f}, informativeness {scores['informativeness']:.3f} "
            f"({scores['num_pairs']} matched slots)"
        )
    if args.out is not None:
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

    loaded, dataset = _load(args)
    steps = loaded.config.refinement_steps if args.refine_steps is None else args.refine_steps
    count = min(args.num_images, len(dataset))
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
    traversal = latent_traversal(loaded.model, out.final.loc[0], args.slot, num_dims=args.num_dims)
    written.append(
        save_figure(plot_traversal(traversal), args.out / f"traversal_slot{args.slot}.png")
    )
    written.append(save_traversal_gif(traversal, args.out / f"traversal_slot{args.slot}.gif"))
    scenes = sample_scenes(loaded.model, args.num_samples, num_slots=args.num_slots)
    written.append(save_figure(plot_samples(scenes), args.out / "prior_samples.png"))
    for path in written:
        print(f"wrote {path}")
    return 0
