"""Per-image mean squared reconstruction error."""

from __future__ import annotations

import numpy as np

from pyro_emorl.metrics._arrays import ArrayLike, as_float64


def mse(images: ArrayLike, reconstructions: ArrayLike) -> np.ndarray:
    """Mean squared error of each reconstruction, averaged over channels and pixels.

    As in the paper's MSE, images are in [0, 1] (the official code maps its [-1, 1] inputs with
    ``(x + 1) / 2`` first) and the background is included. Reconstructions are not range-checked:
    a mixture of decoder means may leave [0, 1] slightly.

    Args:
        images: Ground-truth images ``[B, C, H, W]`` (or ``[B, H, W, C]``) with values in [0, 1].
        reconstructions: Reconstructions ``Σ_k m_k μ_k`` in the same layout and shape.

    Returns:
        float64 ``[B]``: ``mean over C, H, W of (images - reconstructions)**2`` per image.

    Raises:
        ValueError: If the inputs are not 4-d or are empty, their shapes differ, they contain
            NaN/inf, or ``images`` has values outside [0, 1].
    """
    x = as_float64(images, "images")
    y = as_float64(reconstructions, "reconstructions")
    if x.ndim != 4 or x.size == 0:
        raise ValueError(
            f"images has shape {x.shape}; expected a non-empty [B, C, H, W] (add a batch axis "
            "to a single image)."
        )
    if x.shape != y.shape:
        raise ValueError(
            f"images has shape {x.shape} but reconstructions has {y.shape}; they must match."
        )
    if x.min() < 0.0 or x.max() > 1.0:
        raise ValueError(
            f"images must lie in [0, 1], found [{x.min()}, {x.max()}]; map [-1, 1] images with "
            "(x + 1) / 2 and uint8 images with x / 255."
        )
    return ((x - y) ** 2).mean(axis=(1, 2, 3))
