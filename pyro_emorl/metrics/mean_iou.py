"""Mean IoU of Hungarian-matched objects and slots, per image."""

from __future__ import annotations

import numpy as np

from pyro_emorl.metrics._arrays import ArrayLike
from pyro_emorl.metrics._assignment import max_iou_assignment, object_ious
from pyro_emorl.metrics._overlap import overlap
from pyro_emorl.metrics._undefined import mark_undefined


def mean_iou(true: ArrayLike, pred: ArrayLike, exclude_background: bool = True) -> np.ndarray:
    """Mean IoU between ground-truth objects and their one-to-one matched predicted regions.

    Objects and predicted regions are paired by the Hungarian algorithm maximising the summed
    IoU (``scipy.optimize.linear_sum_assignment``); the score is the summed IoU of the pairs
    divided by the number of ground-truth objects present in the image. Objects left unmatched
    because there are fewer predicted regions than objects count as IoU 0. IoUs use the logical
    OR of the two regions over the whole image as union, so predicted regions keep their
    background pixels even when ``exclude_background=True`` (which only drops the ground-truth
    background from the objects to match).

    Edge cases: entities with no pixel in an image are not objects of that image. An image with
    no object (no foreground pixel while ``exclude_background=True``) gets NaN, and so does an
    image whose ground-truth masks are all zero; both with an
    `pyro_emorl.metrics.UndefinedMetricWarning`. Use `pyro_emorl.metrics.mean_over_defined`
    (or ``np.nanmean``) to average over images.

    Args:
        true: Ground truth, binary entity masks ``[B, E, H, W]`` (or ``[B, E, H, W, 1]`` /
            ``[B, E, 1, H, W]``; values {0, 1}, bool or {0, 255}; entity 0 is the background;
            overlaps resolve to the higher entity index) or an integer label map ``[B, H, W]``
            with 0 = background.
        pred: Prediction, per-slot probabilities / log-probabilities / logits ``[B, K, H, W]``
            (or ``[B, K, H, W, 1]`` / ``[B, K, 1, H, W]``), arg-maxed over K; or an integer
            label map ``[B, H, W]``. Must have the ground-truth resolution.
        exclude_background: Do not treat ground-truth label 0 as an object.

    Returns:
        float64 ``[B]`` in [0, 1], NaN for images without objects or with all-zero ground-truth
        masks.

    Raises:
        ValueError: On wrong ranks, mismatched shapes, NaN, negative or non-integer labels, or
            non-binary ground-truth masks.
    """
    ov = overlap(true, pred)
    iou, sizes, _ = object_ious(ov, exclude_background)
    scores = np.full(iou.shape[0], np.nan)
    for b in range(iou.shape[0]):
        present = iou[b][sizes[b] > 0]  # [G_b, P]
        if len(present) == 0:
            continue
        rows, cols = max_iou_assignment(present)
        scores[b] = present[rows, cols].sum() / len(present)
    return mark_undefined(scores, ov.undefined(exclude_background), "mIoU")
