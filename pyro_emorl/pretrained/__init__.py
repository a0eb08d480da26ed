"""Trained models that ship with the library, loadable by name.

    import pyro_emorl as pe

    model, guide = pe.load_pretrained("tetrominoes")
    # images: [B, 3, 35, 35] in [0, 1]
    decomposition = pe.decompose(model, guide, images, num_steps=1)

Each model is a weights-only checkpoint (``torch.load(path, weights_only=True)`` reads it) in the
format ``emorl train`` writes, less the optimizer state, beside the training log of the run that
made it (``<name>.metrics.jsonl``): the recipe, the seed, the steps and the training seconds are
in the checkpoint, every logged loss and held-out score in the log. The command-line tools take
the name wherever they take a checkpoint (``emorl evaluate tetrominoes --data test.h5``).
"""

from __future__ import annotations

import torch

from pyro_emorl.devices import check_device
from pyro_emorl.io.loading import load_for_inference
from pyro_emorl.io.pretrained import PRETRAINED, pretrained_path
from pyro_emorl.protocols import Guide, SceneModel


def load_pretrained(
    name: str, map_location: str | torch.device = "cpu"
) -> tuple[SceneModel, Guide]:
    """The shipped model ``name`` as a ``(model, guide)`` pair in eval mode.

    [load_for_inference(name)][pyro_emorl.io.load_for_inference] gives the configuration too
    (its ``refinement_steps`` is the test-time ``I``).

    Args:
        name: a key of [PRETRAINED][pyro_emorl.io.pretrained.PRETRAINED].
        map_location: device for the weights.
    """
    check_device(map_location, "map_location")
    loaded = load_for_inference(pretrained_path(name), map_location=map_location)
    return loaded.model, loaded.guide


__all__ = ["PRETRAINED", "load_pretrained", "pretrained_path"]
