"""Segmentation covering (SC) and mean segmentation covering (mSC) per image."""

from __future__ import annotations

import numpy as np

from pyro_emorl.metrics._arrays import ArrayLike
from pyro_emorl.metrics._overlap import overlap
from pyro_emorl.metrics._undefined import mark_undefined


def segmentation_covering(
    true: ArrayLike,
    pred: ArrayLike,
    exclude_background: bool = True,
    mean: bool = False,
) -> np.ndarray:
    """Covering of the ground-truth regions by the predicted regions, per image.

    For every ground-truth region ``A`` present in an image, take the best IoU with any predicted
    region ``B``, ``max_B |A ∩ B| / |A ∪ B|``, where the union is the logical OR of the two
    regions over the whole image (as in GENESIS and the MONet literature). SC averages these
    maxima weighted by ``|A|``; mSC (``mean=True``) takes their unweighted mean.

    Only the *ground-truth* background is excluded by ``exclude_background``; predicted regions
    always include their background pixels, so a slot that spills onto the background lowers the
    IoU of the object it covers (GENESIS' convention).

    Edge cases: a ground-truth region that has no pixels in an image (e.g. an absent entity) is
    not counted. An image with no region to cover (no foreground pixel while
    ``exclude_background=True``) gets NaN, since the average is over an empty set, and so does
    an image whose ground-truth masks are all zero; both with an
    `pyro_emorl.metrics.UndefinedMetricWarning`. Use `pyro_emorl.metrics.mean_over_defined`
    (or ``np.nanmean``) to average over images (GENESIS reports 0 there).

    Args:
        true: Ground truth, binary entity masks ``[B, E, H, W]`` (or ``[B, E, H, W, 1]`` /
            ``[B, E, 1, H, W]``; values {0, 1}, bool or {0, 255}; entity 0 is the background;
            overlaps resolve to the higher entity index) or an integer label map ``[B, H, W]``
            with 0 = background.
        pred: Prediction, per-slot probabilities / log-probabilities / logits ``[B, K, H, W]``
            (or ``[B, K, H, W, 1]`` / ``[B, K, 1, H, W]``), arg-maxed over K; or an integer
            label map ``[B, H, W]``. Must have the ground-truth resolution.
        exclude_background: Do not count the ground-truth background (label 0) as a region to
            cover.
        mean: Return mSC (unweighted mean over regions) instead of SC (size-weighted).

    Returns:
        float64 ``[B]`` in [0, 1], NaN for images without a region to cover or with all-zero
        ground-truth masks.

    Raises:
        ValueError: On wrong ranks, mismatched shapes, NaN, negative or non-integer labels, or
            non-binary ground-truth masks.
    """
    ov = overlap(true, pred)
    rows = ov.object_rows(exclude_background)
    best_iou = ov.iou()[:, rows, :].max(axis=2)  # [B, G]
    sizes = ov.true_sizes()[:, rows].astype(np.float64)  # [B, G]
    weights = (sizes > 0).astype(np.float64) if mean else sizes
    total = weights.sum(axis=1)
    scores = np.divide(
        (weights * best_iou).sum(axis=1),
        total,
        out=np.full_like(total, np.nan),
        where=total > 0,
    )
    return mark_undefined(scores, ov.undefined(exclude_background), "mSC" if mean else "SC")
