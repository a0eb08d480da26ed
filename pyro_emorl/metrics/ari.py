"""Adjusted Rand Index (ARI / FG-ARI) per image."""

from __future__ import annotations

import numpy as np

from pyro_emorl.metrics._arrays import ArrayLike
from pyro_emorl.metrics._overlap import overlap
from pyro_emorl.metrics._undefined import mark_undefined


def _ari_from_contingency(counts: np.ndarray) -> np.ndarray:
    """Adjusted Rand Index from per-image contingency tables.

    Uses the pair-counting form of ``sklearn.metrics.adjusted_rand_score``, including its special
    case: when no pair of pixels is split by one partition but joined by the other (identical
    partitions up to relabelling, which covers 0 or 1 pixel and a single non-empty cell), the
    score is 1.0.

    Args:
        counts: Non-negative integer ``[B, T, P]``; ``counts[b, t, p]`` = number of pixels of
            image ``b`` in true cluster ``t`` and predicted cluster ``p``.

    Returns:
        float64 ``[B]`` ARI in ``[-0.5, 1]``.
    """
    counts = counts.astype(np.int64, copy=False)
    n = counts.sum(axis=(1, 2))
    sum_squares = (counts**2).sum(axis=(1, 2))
    # Ordered pairs of distinct pixels: together in both partitions, only in the predicted
    # one, only in the true one, and in neither (sklearn's pair_confusion_matrix, exact in int64).
    together_both = sum_squares - n
    only_pred = (counts.sum(axis=1) ** 2).sum(axis=1) - sum_squares
    only_true = (counts.sum(axis=2) ** 2).sum(axis=1) - sum_squares
    neither = n**2 - only_pred - only_true - sum_squares
    tp, fp, fn, tn = (x.astype(np.float64) for x in (together_both, only_pred, only_true, neither))
    identical = (only_pred == 0) & (only_true == 0)
    denominator = (tp + fn) * (fn + tn) + (tp + fp) * (fp + tn)
    # denominator == 0 implies `identical`, so the division is only skipped where 1.0 is used.
    score = np.divide(
        2.0 * (tp * tn - fn * fp),
        denominator,
        out=np.ones_like(denominator),
        where=~identical,
    )
    return score


def ari(
    true_masks: ArrayLike, pred_masks: ArrayLike, exclude_background: bool = True
) -> np.ndarray:
    """Adjusted Rand Index between ground-truth and predicted segmentations, per image.

    With ``exclude_background=True`` (the default) this is FG-ARI, the number reported by the
    EfficientMORL paper: pixels whose ground-truth label is 0 are dropped before scoring, so the
    predicted segmentation of the background is not evaluated. With ``False`` the background is
    scored as one more ground-truth cluster (plain ARI). The score equals
    ``sklearn.metrics.adjusted_rand_score(true_labels[fg], pred_labels[fg])`` for each image.

    Edge cases (sklearn's conventions, except where the score is undefined):

    * one ground-truth object covered by a single slot (a single non-empty contingency cell):
      1.0, also what the official code returns;
    * one object split over several slots: 0.0 (the expected index equals the achieved one);
    * a single foreground pixel: 1.0 (identical partitions);
    * no foreground pixel at all (FG-ARI): undefined, NaN with an
      `pyro_emorl.metrics.UndefinedMetricWarning`. sklearn would score the empty partitions
      1.0, the official code 0.0 (NaN replaced by 0); either would pass for a result. Images
      without objects do not occur in the EfficientMORL benchmarks;
    * ground-truth masks all zero (no pixel belongs to any entity, not even the background):
      undefined for FG-ARI and ARI alike, NaN with a warning. Average with
      `pyro_emorl.metrics.mean_over_defined` (or ``np.nanmean``).

    Args:
        true_masks: Ground truth: binary entity masks ``[B, E, H, W]`` (or ``[B, E, H, W, 1]`` /
            ``[B, E, 1, H, W]``; values {0, 1}, bool or {0, 255}; entity 0 is the background;
            overlaps resolve to the higher entity index) or an integer label map ``[B, H, W]``
            with 0 = background.
        pred_masks: Prediction: per-slot probabilities, log-probabilities or logits
            ``[B, K, H, W]`` (or ``[B, K, H, W, 1]`` / ``[B, K, 1, H, W]``), arg-maxed over K;
            or an integer label map ``[B, H, W]``. Must have the ground-truth resolution.
        exclude_background: Drop ground-truth background pixels (FG-ARI).

    Returns:
        float64 ``[B]`` ARI of each image, NaN where undefined.

    Raises:
        ValueError: On wrong ranks, mismatched batch/spatial shapes, NaN, negative or
            non-integer labels, or non-binary ground-truth masks.
    """
    ov = overlap(true_masks, pred_masks)
    scores = _ari_from_contingency(ov.counts[:, ov.object_rows(exclude_background), :])
    return mark_undefined(
        scores, ov.undefined(exclude_background), "FG-ARI" if exclude_background else "ARI"
    )
