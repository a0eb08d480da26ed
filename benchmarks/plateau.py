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
  mean posterior standard deviation, to compare it with.

    python benchmarks/plateau.py runs/screen/baseline/seed*/checkpoints/step-*.pt
"""

from __future__ import annotations

import argparse
import json
import math

import torch
from torch import Tensor

import pyro_emorl as pe
from pyro_emorl.data import HDF5Dataset, default_dataset
from pyro_emorl.decompose import Decomposition
from pyro_emorl.io.loading import load_for_inference


def entropy_fraction(probabilities: Tensor, dim: int) -> float:
    """Mean entropy of ``probabilities`` over ``dim``, as a fraction of its maximum ``ln K``."""
    k = probabilities.shape[dim]
    p = probabilities.clamp_min(1e-12)
    return float((-(p * p.log()).sum(dim) / math.log(k)).mean())


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--images", type=int, default=64, help="held-out images")
    parser.add_argument("--data", help="HDF5 file (default: the generated Tetrominoes file)")
    args = parser.parse_args()
    data = args.data or default_dataset("tetrominoes", num_train=60_000, progress=False)
    dataset = HDF5Dataset(data, split="test")
    images = torch.stack([dataset[i]["imgs"] for i in range(args.images)])
    for path in args.checkpoints:
        torch.manual_seed(0)
        loaded = load_for_inference(path)
        with torch.no_grad():
            out = pe.decompose(
                loaded.model,
                loaded.guide,
                images,
                num_steps=loaded.config.refinement_steps,  # the I it was trained for
                decode_layers=False,
            )
        measured = {name: round(value, 4) for name, value in symmetry(out).items()}
        print(json.dumps({"checkpoint": path, **measured}))


if __name__ == "__main__":
    main()
