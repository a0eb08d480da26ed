"""Count accuracy of the ClevrTex evaluator, per image."""

from __future__ import annotations

import numpy as np

from pyro_emorl.metrics._arrays import ArrayLike
from pyro_emorl.metrics._overlap import overlap


def count_accuracy(true: ArrayLike, pred: ArrayLike) -> np.ndarray:
    """Whether the prediction has as many regions as the ground truth has entities, per image.

    The ``acc`` of ``CLEVRTEX_Evaluator`` (``clevrtex_eval.py`` of
    github.com/karazijal/clevrtex-generation, copied by the official EfficientMORL code): after
    the arg-max over slots, the number of slots that own at least one pixel is compared with the
    number of non-empty ground-truth masks. Both counts include the background (the evaluator's
    ``masks_have_background=True``, as EfficientMORL calls it). Ground-truth masks are read as
    a partition, like every segmentation metric here; the evaluator counts the masks as given,
    which is the same for partitions such as ClevrTex's.

    Args:
        true: Ground truth, binary entity masks ``[B, E, H, W]`` (or ``[B, E, H, W, 1]`` /
            ``[B, E, 1, H, W]``; values {0, 1}, bool or {0, 255}; entity 0 is the background;
            overlaps resolve to the higher entity index) or an integer label map ``[B, H, W]``.
        pred: Prediction, per-slot probabilities / log-probabilities / logits ``[B, K, H, W]``
            (or ``[B, K, H, W, 1]`` / ``[B, K, 1, H, W]``), arg-maxed over K; or an integer
            label map ``[B, H, W]``. Must have the ground-truth resolution.

    Returns:
        float64 ``[B]``: 1.0 where the counts agree, else 0.0.

    Raises:
        ValueError: On wrong ranks, mismatched shapes, NaN, negative or non-integer labels, or
            non-binary ground-truth masks.
    """
    counts = overlap(true, pred).counts  # [B, T, P]
    true_regions = (counts.sum(axis=2) > 0).sum(axis=1)
    pred_regions = (counts.sum(axis=1) > 0).sum(axis=1)
    return (true_regions == pred_regions).astype(np.float64)
