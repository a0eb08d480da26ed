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

from pathlib import Path

import torch

from pyro_emorl.guide import HierarchicalGuide
from pyro_emorl.model import EMORLModel

_HERE = Path(__file__).resolve().parent

PRETRAINED = {
    "tetrominoes": "Tetrominoes (35x35, K = 4), trained with the tetrominoes_fast recipe",
}
"""The shipped models by name: what each was trained on and with which recipe."""


def pretrained_path(name: str) -> Path:
    """The checkpoint file of the shipped model ``name``.

    Raises:
        ValueError: for an unknown name (the message lists the known ones).
        FileNotFoundError: if the package was installed without its model files.
    """
    if name not in PRETRAINED:
        raise ValueError(f"no pretrained model named {name!r}; choose one of {sorted(PRETRAINED)}")
    path = _HERE / f"{name}.pt"
    if not path.is_file():
        raise FileNotFoundError(
            f"the pretrained model file {path} is missing: reinstall pyro_emorl with its "
            "package data (pip install -e . from a clone keeps it)"
        )
    return path


def load_pretrained(
    name: str, map_location: str | torch.device = "cpu"
) -> tuple[EMORLModel, HierarchicalGuide]:
    """The shipped model ``name`` as a ``(model, guide)`` pair in eval mode.

    [load_for_inference(name)][pyro_emorl.evaluation.load_for_inference] gives the
    configuration too (its ``refinement_steps`` is the test-time ``I``).

    Args:
        name: a key of `PRETRAINED`.
        map_location: device for the weights.
    """
    from pyro_emorl.devices import check_device
    from pyro_emorl.evaluation.checkpoint import load_for_inference

    check_device(map_location, "map_location")
    loaded = load_for_inference(pretrained_path(name), map_location=map_location)
    return loaded.model, loaded.guide


__all__ = ["PRETRAINED", "load_pretrained", "pretrained_path"]
