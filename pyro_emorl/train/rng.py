"""Capture and restore every random number generator the training loop touches.

States are stored as tensors and plain Python values only, so a checkpoint holding them loads with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

RNGState = dict[str, Any]


def capture_rng_state(device: torch.device) -> RNGState:
    """The states of Python's ``random``, NumPy's legacy global generator, torch's CPU generator
    and, on a CUDA device, that device's generator (Pyro samples with torch's generators).

    Args:
        device: the training device.

    Returns:
        ``{"python": {...}, "numpy": {...}, "torch": uint8 [N], "cuda": uint8 [M] or None}``.
    """
    version, internal, gauss_next = random.getstate()
    numpy_state = np.random.get_state(legacy=False)
    return {
        "python": {
            "version": version,
            "internal": torch.tensor(internal, dtype=torch.int64),
            "gauss_next": gauss_next,
        },
        "numpy": {
            "bit_generator": numpy_state["bit_generator"],
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }


def restore_rng_state(state: RNGState, device: torch.device) -> None:
    """Inverse of `capture_rng_state`.

    Args:
        state: a captured state.
        device: the training device; a captured CUDA state is restored onto it when it is a CUDA
            device (a run moved between CPU and GPU cannot continue bit for bit anyway).
    """
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"].tolist()), py["gauss_next"]))
    npy = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": npy["bit_generator"],
            "state": {"key": npy["key"].numpy().astype(np.uint32), "pos": npy["pos"]},
            "has_gauss": npy["has_gauss"],
            "gauss": npy["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
