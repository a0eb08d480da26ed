"""Scores that are undefined for an image, and averages that skip them.

A segmentation metric is undefined for an image whose ground truth gives it nothing to score:
FG-ARI, segmentation covering and mean IoU of an image without a foreground pixel (no object),
and every segmentation metric of an image whose ground-truth masks are all zero (no pixel
belongs to any entity, not even the background: broken or mis-scaled masks). Such images get
NaN, never a number that looks like a result (sklearn's convention scores an empty partition
1.0), and an `UndefinedMetricWarning` says why. `mean_over_defined` averages the rest and gives
``None`` when nothing is left, for reports that must not print a bare NaN (JSON has none).
"""

from __future__ import annotations

import warnings

import numpy as np

from pyro_emorl.metrics._arrays import ArrayLike, to_numpy

#: Why an image's score is undefined, by cause.
BLANK = (
    "its ground-truth masks are all zero (no pixel belongs to any entity, not even the "
    "background; check how the masks were stored and scaled)"
)
NO_FOREGROUND = "its ground truth has no foreground pixel (no object to segment)"


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined for some images (reported as NaN) or for all of them."""


def mark_undefined(scores: np.ndarray, causes: dict[str, np.ndarray], metric: str) -> np.ndarray:
    """Set NaN where a metric is undefined, with one warning per cause that occurs.

    The message holds no image count, so Python's default filter shows it once per call site
    rather than once per batch.

    Args:
        scores: float64 ``[B]`` per-image scores; changed in place.
        causes: reason (`BLANK`, `NO_FOREGROUND`) -> bool ``[B]``, True where it applies.
        metric: The metric's name for the message, e.g. ``"FG-ARI"``.

    Returns:
        ``scores``.
    """
    for reason, where in causes.items():
        if where.any():
            scores[where] = np.nan
            warnings.warn(
                f"{metric} is undefined for an image where {reason}: reported as NaN (null in "
                "JSON) and left out of averages",
                UndefinedMetricWarning,
                stacklevel=3,
            )
    return scores


def mean_over_defined(values: ArrayLike, name: str = "metric") -> float | None:
    """The mean of the defined (non-NaN) per-image values, or ``None`` if there is none.

    Args:
        values: ``[N]`` per-image scores, NaN where undefined.
        name: The metric's name for the warning.

    Returns:
        The mean as a float, or ``None`` (with an `UndefinedMetricWarning`) when every value is
        NaN or there are no values: a report should print ``null``/"undefined", never a NaN.
    """
    arr = np.asarray(to_numpy(values, "values"), dtype=np.float64).ravel()
    defined = arr[~np.isnan(arr)]
    if defined.size == 0:
        warnings.warn(
            f"{name} is undefined for every image ({arr.size} scored): no mean; reported as "
            "None (null in JSON)",
            UndefinedMetricWarning,
            stacklevel=2,
        )
        return None
    return float(defined.mean())
