"""Is a run on the plateau? How alike a model's slots are, per checkpoint, as JSON lines.

A start that has not separated its objects sits on a symmetric plateau: its slots attend to the
pixels nearly uniformly, decode nearly the same colours, and share every pixel's mask. This
script measures the three on held-out images, for each checkpoint given:

* ``attention_entropy``: the entropy of the last bottom-up layer's attention over slots, per
  pixel, as a fraction of ``ln K`` (1: every slot attends equally to every pixel);
* ``mask_entropy``: the same for the decoded masks of the last step;
* ``colour_spread``: the standard deviation across slots of the decoded colours, averaged over
  pixels and channels (0: every slot paints the same image);
* ``slot_distance``: the mean distance between two slots' posterior means, and ``scale``, the
  mean posterior standard deviation, to compare it with;
* ``position_share``: the share of the variance of the encoder's pixel features (over images
  and pixels) that the pixel's position alone explains (1: the features say where a pixel is,
  nothing of what it shows).

With ``--initial PRESET --seeds N`` it measures freshly initialised models of seeds 0..N-1
instead of checkpoints.

    python benchmarks/plateau.py runs/screen/baseline/seed*/checkpoints/step-*.pt
    python benchmarks/plateau.py --initial tetrominoes_fast --seeds 3
    # checkpoints of a component of your own: the file that registers it
    python benchmarks/plateau.py --import my_decoder.py runs/mine/checkpoints/step-*.pt
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

import torch
from torch import Tensor

import pyro_emorl as pe
from pyro_emorl.cli import add_import_argument
from pyro_emorl.data import HDF5Dataset, default_dataset
from pyro_emorl.decompose import Decomposition
from pyro_emorl.io.loading import load_for_inference


def entropy_fraction(probabilities: Tensor, dim: int) -> float:
    """Mean entropy of ``probabilities`` over ``dim``, as a fraction of its maximum ``ln K``."""
    k = probabilities.shape[dim]
    p = probabilities.clamp_min(1e-12)
    return float((-(p * p.log()).sum(dim) / math.log(k)).mean())


def position_share(features: Tensor) -> float:
    """The share of the variance of ``features [B, P, F]`` (over images ``B`` and pixels ``P``,
    summed over ``F``) explained by the pixel: the variance of the per-pixel means over the
    pixels, divided by the total."""
    total = features.var(dim=(0, 1), unbiased=False).sum()
    by_pixel = features.mean(0).var(dim=0, unbiased=False).sum()
    return float(by_pixel / total)


def symmetry(out: Decomposition) -> dict[str, float]:
    """The plateau's signs in a decomposition (see the module docstring)."""
    final = out.final
    k = final.loc.shape[-2]
    distances = torch.cdist(final.loc, final.loc).sum((-1, -2)) / (k * (k - 1))
    return {
        "attention_entropy": entropy_fraction(out.attention[-1], 1),
        "mask_entropy": entropy_fraction(final.masks, 1),
        "colour_spread": float(final.components.std(dim=1).mean()),
        "slot_distance": float(distances.mean()),
        "scale": float(final.scale.mean()),
    }


def measure(model: Any, guide: Any, images: Tensor, steps: int) -> dict[str, float]:
    """Every measure of the module docstring, for one model on ``images [B, C, H, W]``."""
    with torch.no_grad():
        out = pe.decompose(model, guide, images, num_steps=steps, decode_layers=False)
        features = guide.encoder(images)
    measured = {**symmetry(out), "position_share": position_share(features)}
    return {name: round(value, 4) for name, value in measured.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="*")
    parser.add_argument("--initial", metavar="PRESET", help="measure new models of this preset")
    parser.add_argument("--seeds", type=int, default=3, help="seeds of --initial (from 0)")
    parser.add_argument("--images", type=int, default=64, help="held-out images")
    parser.add_argument("--data", help="HDF5 file (default: the generated Tetrominoes file)")
    add_import_argument(
        parser,
        "a module or Python file registering the components the checkpoints were trained with "
        "(repeatable), as `emorl evaluate`",
    )
    args = parser.parse_args()
    try:
        for spec in args.imports:
            pe.import_components(spec)
        config = None if args.initial is None else pe.presets.get(args.initial)
    except ValueError as error:
        parser.error(str(error))
    if (config is None) == (not args.checkpoints):
        parser.error("give either checkpoints or --initial PRESET (one of the two)")
    data = args.data or default_dataset("tetrominoes", num_train=60_000, progress=False)
    dataset = HDF5Dataset(data, split="test")
    images = torch.stack([dataset[i]["imgs"] for i in range(args.images)])
    if config is not None:
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            model, guide = pe.build(config)
            measured = measure(model, guide, images, config.refinement_steps)
            print(json.dumps({"initial": args.initial, "seed": seed, **measured}))
    for path in args.checkpoints:
        torch.manual_seed(0)
        try:
            loaded = load_for_inference(path)
        except (ValueError, OSError) as error:
            parser.error(str(error))
        # at the I it was trained for
        measured = measure(loaded.model, loaded.guide, images, loaded.config.refinement_steps)
        print(json.dumps({"checkpoint": path, **measured}))


if __name__ == "__main__":
    main()
