"""DICE of IoU-aligned masks, as the ClevrTex evaluator computes it, per image."""

from __future__ import annotations

import numpy as np

from pyro_emorl.metrics._arrays import ArrayLike
from pyro_emorl.metrics._assignment import max_iou_assignment
from pyro_emorl.metrics._overlap import overlap

# The alignment table has (entities or slots)^2 cells per image; label maps index it by label.
_MAX_INDICES = 4096


def _index_count(x: ArrayLike, ids: np.ndarray) -> int:
    """How many masks the evaluator builds from an input: its mask axis, or for a label map
    the largest label + 1 (over the whole batch, as the evaluator's one-hot encoding does)."""
    return int(x.shape[1]) if x.ndim > 3 else int(ids.max()) + 1


def dice(true: ArrayLike, pred: ArrayLike, exclude_background: bool = False) -> np.ndarray:
    """Mean DICE of the ground-truth masks and their IoU-matched predicted masks, per image.

    The ``DICE`` and, with ``exclude_background=True``, ``DICE_FG`` of ``CLEVRTEX_Evaluator``
    (``clevrtex_eval.py`` of github.com/karazijal/clevrtex-generation, copied by the official
    EfficientMORL code), step by step:

    1. Predictions are arg-maxed over slots into one-hot masks; both sides are padded with empty
       masks to ``N = max(E, K)`` masks.
    2. The ``N x N`` IoU table (0 where either mask is empty) is aligned one-to-one by
       ``scipy.optimize.linear_sum_assignment(..., maximize=True)``: ground-truth mask ``t`` gets
       predicted mask ``π(t)``.
    3. ``DICE_t = 2 |T_t ∩ P_π(t)| / (|T_t| + |P_π(t)|)``, 0 when both are empty.
    4. A pair is visible when ``T_t`` or ``P_π(t)`` is non-empty; ``DICE`` is the sum of
       ``DICE_t`` over all pairs divided by the number of visible pairs, ``DICE_FG`` the sum over
       ``t >= 1`` divided by the number of visible pairs minus 1 (the background pair).

    Unmatched regions thus lower the score: a predicted region paired with an empty ground-truth
    mask, or an object paired with an empty slot, is a visible pair with DICE 0. The IoU table is
    computed in float32 like the evaluator's, so that ties between assignments (which decide
    which pairs are visible) resolve as there; the DICE values are then float64 (the evaluator's
    float32 sums agree to about 1e-7). Ground-truth masks are read as a partition, like every
    segmentation metric here; the evaluator takes them as given, which is the same for
    partitions such as ClevrTex's.

    Edge cases (the evaluator's arithmetic): ``DICE_FG`` of an image whose only visible pair is
    the background's is NaN (0 / 0), and infinite if that single visible pair is an object's
    (an image filled by one object); use ``np.nanmean`` to average over images.

    Args:
        true: Ground truth, binary entity masks ``[B, E, H, W]`` (or ``[B, E, H, W, 1]`` /
            ``[B, E, 1, H, W]``; values {0, 1}, bool or {0, 255}; entity 0 is the background;
            overlaps resolve to the higher entity index) or an integer label map ``[B, H, W]``
            (then ``E`` is its largest label + 1).
        pred: Prediction, per-slot probabilities / log-probabilities / logits ``[B, K, H, W]``
            (or ``[B, K, H, W, 1]`` / ``[B, K, 1, H, W]``), arg-maxed over K; or an integer
            label map ``[B, H, W]`` (then ``K`` is its largest label + 1). Must have the
            ground-truth resolution.
        exclude_background: Leave the pair of ground-truth entity 0 out (``DICE_FG``).

    Returns:
        float64 ``[B]`` in [0, 1] (NaN or inf for ``DICE_FG`` in the edge cases above).

    Raises:
        ValueError: On wrong ranks, mismatched shapes, NaN, negative or non-integer labels,
            non-binary ground-truth masks, or more than 4096 masks or labels.
    """
    ov = overlap(true, pred)
    size = max(_index_count(true, ov.true_ids), _index_count(pred, ov.pred_ids))
    if size > _MAX_INDICES:
        raise ValueError(
            f"dice aligns {size} masks per image (the largest label + 1 of a label map); "
            f"relabel to 0..N-1 with N <= {_MAX_INDICES}"
        )
    batch = ov.counts.shape[0]
    table = np.zeros((batch, size, size), dtype=np.int64)  # [B, t, p] pixel counts
    table[:, ov.true_ids[:, None], ov.pred_ids[None, :]] = ov.counts
    true_sizes = table.sum(axis=2)  # [B, N]
    pred_sizes = table.sum(axis=1)  # [B, N]
    union = true_sizes[:, :, None] + pred_sizes[:, None, :] - table
    iou = np.divide(
        table.astype(np.float32),
        union.astype(np.float32),
        out=np.zeros(table.shape, dtype=np.float32),
        where=table > 0,
    )
    matched = np.empty((batch, size), dtype=np.int64)  # matched[b, t] = π(t)
    for b in range(batch):
        _, matched[b] = max_iou_assignment(iou[b])
    intersection = np.take_along_axis(table, matched[:, :, None], axis=2)[..., 0]
    matched_sizes = np.take_along_axis(pred_sizes, matched, axis=1)
    total = (true_sizes + matched_sizes).astype(np.float64)
    dices = np.divide(2.0 * intersection, total, out=np.zeros_like(total), where=total > 0)
    pairs = ((true_sizes > 0) | (matched_sizes > 0)).sum(axis=1).astype(np.float64)
    if exclude_background:
        dices, pairs = dices[:, 1:], pairs - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        return dices.sum(axis=1) / pairs
