"""Per-image contingency tables (pixel overlap counts) between ground-truth and predicted regions.

The tables are built for the whole batch at once with a single ``np.bincount`` over a combined
(image, true label, predicted label) index. That is the same table a one-hot ``einsum`` gives, but
needs O(B * H * W) memory instead of O(B * H * W * (T + P)) (about 1 GB in float64 for 320
CLEVR images at 192x192 with 11 slots).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pyro_emorl.metrics._arrays import ArrayLike
from pyro_emorl.metrics._labels import blank_images, label_maps
from pyro_emorl.metrics._undefined import BLANK, NO_FOREGROUND

# Above this label value the dense relabelling table gets large, so np.unique (a sort) is used.
_DENSE_LABEL_LIMIT = 1 << 20


def _compact(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Relabel to consecutive codes ``0..L-1`` in increasing label order.

    Args:
        labels: Non-negative int64 labels of any shape.

    Returns:
        ``(codes, ids)``: int64 codes with the shape of ``labels``, and the int64 ``[L]`` original
        label of each code (sorted ascending).
    """
    if labels.max() < _DENSE_LABEL_LIMIT:
        # O(n) presence table; np.unique sorts, which is ~100x slower on 10^7 pixels.
        present = np.bincount(labels.ravel()) > 0
        ids = np.flatnonzero(present)
        codes = (np.cumsum(present) - 1)[labels]
        return codes, ids
    ids, codes = np.unique(labels, return_inverse=True)
    return codes.reshape(labels.shape), ids


@dataclass(frozen=True)
class Overlap:
    """Pixel counts shared by every (ground-truth region, predicted region) pair, per image.

    Attributes:
        counts: int64 ``[B, T, P]``; ``counts[b, t, p]`` is the number of pixels of image ``b``
            with true label ``true_ids[t]`` and predicted label ``pred_ids[p]``. ``T`` and ``P``
            cover the labels present anywhere in the batch, so a row or column may be all zero
            for a given image.
        true_ids: int64 ``[T]`` ground-truth labels, ascending (label 0 = background).
        pred_ids: int64 ``[P]`` predicted labels (slot indices for score inputs), ascending.
        blank: bool ``[B]``, True for images whose ground-truth masks are all zero (see
            `pyro_emorl.metrics._labels.blank_images`); their label map reads as all
            background.
    """

    counts: np.ndarray
    true_ids: np.ndarray
    pred_ids: np.ndarray
    blank: np.ndarray

    def undefined(self, exclude_background: bool) -> dict[str, np.ndarray]:
        """Why each image has nothing to score: reason -> bool ``[B]`` (see
        `pyro_emorl.metrics._undefined.mark_undefined`). Blank ground truth always; no
        foreground pixel when the background is excluded."""
        causes = {BLANK: self.blank}
        if exclude_background:
            foreground = self.counts[:, self.true_ids != 0, :].sum(axis=(1, 2))
            causes[NO_FOREGROUND] = (foreground == 0) & ~self.blank
        return causes

    def object_rows(self, exclude_background: bool) -> np.ndarray:
        """bool ``[T]``: the ground-truth rows that count as objects (all, or all but label 0)."""
        if exclude_background:
            return self.true_ids != 0
        return np.ones(self.true_ids.shape, dtype=bool)

    def true_sizes(self) -> np.ndarray:
        """int64 ``[B, T]``: pixels per ground-truth region in each image."""
        return self.counts.sum(axis=2)

    def iou(self) -> np.ndarray:
        """float64 ``[B, T, P]`` intersection over union of every region pair.

        The union is the logical OR of the two regions over the whole image, background pixels
        included. Pairs where both regions are empty in an image get 0.
        """
        intersection = self.counts.astype(np.float64)
        union = (
            self.true_sizes()[:, :, None] + self.counts.sum(axis=1)[:, None, :] - self.counts
        ).astype(np.float64)
        return np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)


def overlap(true: ArrayLike, pred: ArrayLike) -> Overlap:
    """Contingency tables between ground-truth and predicted segmentations.

    Args:
        true: Ground truth, ``[B, H, W]`` label map or ``[B, E, H, W]`` (``[B, E, H, W, 1]``,
            ``[B, E, 1, H, W]``) binary entity masks; see `pyro_emorl.metrics._labels`.
        pred: Prediction, ``[B, H, W]`` label map or ``[B, K, H, W]`` (``[B, K, H, W, 1]``,
            ``[B, K, 1, H, W]``) per-slot scores.

    Returns:
        The `Overlap` of the batch.

    Raises:
        ValueError: If the inputs are invalid or their shapes do not match.
    """
    t, p = label_maps(true, pred)
    t_codes, true_ids = _compact(t)
    p_codes, pred_ids = _compact(p)
    n_true, n_pred = len(true_ids), len(pred_ids)
    batch = t.shape[0]
    image = np.arange(batch, dtype=np.int64)[:, None, None]
    flat = (image * n_true + t_codes) * n_pred + p_codes
    counts = np.bincount(flat.ravel(), minlength=batch * n_true * n_pred)
    return Overlap(counts.reshape(batch, n_true, n_pred), true_ids, pred_ids, blank_images(true))
