"""Matching of predicted slots to ground-truth objects, e.g. to pair slot codes with factors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pyro_emorl.metrics._arrays import ArrayLike, as_float64
from pyro_emorl.metrics._assignment import max_iou_assignment, object_ious
from pyro_emorl.metrics._overlap import overlap


@dataclass(frozen=True)
class SlotMatch:
    """The accepted (object, slot) pairs of one image, ordered by ascending object id.

    Attributes:
        object_ids: int64 ``[M]`` ground-truth labels; for entity-mask input the entity index
            ``e`` (so ``factors[b, e]`` describes the object).
        slot_ids: int64 ``[M]`` predicted labels; for per-slot score input the slot index ``k``.
        ious: float64 ``[M]`` IoU of each pair.
    """

    object_ids: np.ndarray
    slot_ids: np.ndarray
    ious: np.ndarray


def match_slots_to_objects(
    true: ArrayLike,
    pred: ArrayLike,
    min_object_pixels: int = 50,
    min_iou: float = 0.1,
    exclude_background: bool = True,
) -> list[SlotMatch]:
    """Hungarian matching of ground-truth objects to predicted slots, per image.

    Follows the official EfficientMORL DCI evaluation (``matching_iou``): objects with fewer than
    ``min_object_pixels`` ground-truth pixels (occluded or cropped out) are dropped, the
    remaining objects are assigned one-to-one to slots maximising the summed IoU, and pairs with
    IoU below ``min_iou`` are removed. Dropping small objects *before* the assignment gives the
    same pairs as the official code, which keeps them with IoU -1e6 so that they never compete
    for a slot. Entities absent from an image (0 pixels) are never matched, whatever the
    thresholds; visibility flags therefore need not be passed.

    Args:
        true: Ground truth, binary entity masks ``[B, E, H, W]`` (or ``[B, E, H, W, 1]`` /
            ``[B, E, 1, H, W]``; values {0, 1}, bool or {0, 255}; entity 0 is the background;
            overlaps resolve to the higher entity index) or an integer label map ``[B, H, W]``
            with 0 = background.
        pred: Prediction, per-slot probabilities / log-probabilities / logits ``[B, K, H, W]``
            (or ``[B, K, H, W, 1]`` / ``[B, K, 1, H, W]``), arg-maxed over K; or an integer
            label map ``[B, H, W]``. Must have the ground-truth resolution.
        min_object_pixels: Objects with fewer ground-truth pixels are not matched.
        min_iou: Matched pairs with a lower IoU are discarded.
        exclude_background: Never match ground-truth label 0.

    Returns:
        A list of ``B`` `SlotMatch`, one per image (possibly with ``M = 0`` pairs).

    Raises:
        ValueError: On invalid segmentations (see `pyro_emorl.metrics.ari`), a negative
            ``min_object_pixels`` or a ``min_iou`` outside [0, 1].
    """
    if min_object_pixels < 0:
        raise ValueError(f"min_object_pixels must be >= 0, got {min_object_pixels}.")
    if not 0.0 <= min_iou <= 1.0:
        raise ValueError(f"min_iou must lie in [0, 1], got {min_iou}.")
    ov = overlap(true, pred)
    iou, sizes, object_ids = object_ious(ov, exclude_background)
    matches = []
    for b in range(iou.shape[0]):
        kept = (sizes[b] > 0) & (sizes[b] >= min_object_pixels)
        candidates = iou[b][kept]  # [G_b, P]
        rows, cols = max_iou_assignment(candidates)
        pair_iou = candidates[rows, cols]
        good = pair_iou >= min_iou
        matches.append(
            SlotMatch(
                object_ids=object_ids[kept][rows[good]],
                slot_ids=ov.pred_ids[cols[good]],
                ious=pair_iou[good],
            )
        )
    return matches


def gather_matched(
    matches: Sequence[SlotMatch], codes: ArrayLike, factors: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Stack the slot codes and ground-truth factors of all matched pairs (input to DCI).

    Args:
        matches: ``B`` per-image matches from `match_slots_to_objects`, computed with
            per-slot scores (so ``slot_ids`` index slots) and entity masks (so ``object_ids``
            index entities).
        codes: Slot codes ``[B, K, D]``, e.g. posterior means.
        factors: Ground-truth factors ``[B, E, F]`` of each entity.

    Returns:
        ``(codes, factors)``: float64 ``[M, D]`` and ``[M, F]``, rows paired, images in order.

    Raises:
        ValueError: If the shapes are not 3-d, the batch is empty, the batch sizes differ, an
            id is out of range, or the inputs contain NaN/inf.
    """
    z = as_float64(codes, "codes")
    y = as_float64(factors, "factors")
    if z.ndim != 3 or y.ndim != 3 or z.shape[0] == 0:
        raise ValueError(
            f"codes {z.shape} and factors {y.shape} must be [B, K, D] and [B, E, F] with B >= 1."
        )
    if not len(matches) == z.shape[0] == y.shape[0]:
        raise ValueError(
            f"got {len(matches)} matches, codes for {z.shape[0]} images and factors for "
            f"{y.shape[0]}; pass one entry per image for all three."
        )
    code_rows, factor_rows = [], []
    for b, match in enumerate(matches):
        if (match.slot_ids >= z.shape[1]).any() or (match.object_ids >= y.shape[1]).any():
            raise ValueError(
                f"image {b}: matched slot ids {match.slot_ids} / object ids {match.object_ids} "
                f"exceed codes' K={z.shape[1]} / factors' E={y.shape[1]}; match with per-slot "
                "scores and entity masks so that ids are indices."
            )
        code_rows.append(z[b, match.slot_ids])
        factor_rows.append(y[b, match.object_ids])
    return np.concatenate(code_rows, axis=0), np.concatenate(factor_rows, axis=0)
