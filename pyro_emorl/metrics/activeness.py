"""EfficientMORL activeness of each latent dimension."""

from __future__ import annotations

import numpy as np

from pyro_emorl.metrics._arrays import ArrayLike, as_float64


def activeness(decoded_images: ArrayLike, ddof: int = 1) -> np.ndarray:
    """Mean pixel variance of decoded images as one latent dimension is traversed.

    The caller does the traversal and decoding: for each latent dimension ``d`` of a chosen slot,
    set it to ``V`` values (the official evaluation uses 6 values from ``linspace(min_d, max_d)``
    with the range estimated on test posteriors), decode the whole scene and pass the ``V``
    images ``Σ_k m_k μ_k``. A dimension the decoder ignores gets activeness 0.

    Args:
        decoded_images: ``[D, V, C, H, W]``, or ``[N, D, V, C, H, W]`` for N scenes: image of
            traversal step ``v`` of dimension ``d``. Any channel layout works, since the result
            is a mean over the last three axes.
        ddof: Delta degrees of freedom of the variance over V. The default 1 (unbiased) matches
            ``torch.var`` in the official code; 0 gives the population variance.

    Returns:
        float64 ``[D]`` (or ``[N, D]``): mean over ``C, H, W`` of the variance across the V
        images.

    Raises:
        ValueError: If the input is not 5-d or 6-d, has an empty axis, has ``V <= ddof``, or
            contains NaN/inf; or if ``ddof`` is negative.
    """
    x = as_float64(decoded_images, "decoded_images")
    if x.ndim not in (5, 6) or x.size == 0:
        raise ValueError(
            f"decoded_images has shape {x.shape}; expected a non-empty [D, V, C, H, W] or "
            "[N, D, V, C, H, W]."
        )
    if ddof < 0:
        raise ValueError(f"ddof must be >= 0, got {ddof}.")
    n_values = x.shape[-4]
    if n_values <= ddof:
        raise ValueError(
            f"decoded_images has V={n_values} traversal values along axis -4; the variance with "
            f"ddof={ddof} needs V > {ddof}."
        )
    return x.var(axis=-4, ddof=ddof).mean(axis=(-3, -2, -1))
