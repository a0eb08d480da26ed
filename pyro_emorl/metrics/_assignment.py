"""IoU-maximising one-to-one assignment of ground-truth objects to predicted regions.

Shared by `pyro_emorl.metrics.mean_iou` and
`pyro_emorl.metrics.match_slots_to_objects`.
"""

from __future__ import annotations

import numpy as np

from pyro_emorl.metrics._overlap import Overlap


def object_ious(ov: Overlap, exclude_background: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU of every ground-truth object with every predicted region.

    Args:
        ov: Contingency tables of the batch.
        exclude_background: Leave out ground-truth label 0.

    Returns:
        ``(iou, sizes, object_ids)``: float64 ``[B, G, P]`` IoUs (see `Overlap.iou`),
        int64 ``[B, G]`` object sizes in pixels (0 where an object is absent from an image), and
        int64 ``[G]`` ground-truth labels of the rows.
    """
    rows = ov.object_rows(exclude_background)
    return ov.iou()[:, rows, :], ov.true_sizes()[:, rows], ov.true_ids[rows]


def max_iou_assignment(iou: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hungarian assignment maximising the total IoU.

    Args:
        iou: float64 ``[G, P]`` IoU of G objects with P predicted regions (any G, P >= 0).

    Returns:
        ``(rows, cols)``: int64 ``[min(G, P)]`` each; object ``rows[i]`` is matched to region
        ``cols[i]``, with ``rows`` ascending. When ``G > P`` some objects stay unmatched.
    """
    # Imported here, not at the top: scipy.optimize adds ~40 MB to every training process.
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(iou, maximize=True)
    return rows.astype(np.int64), cols.astype(np.int64)
