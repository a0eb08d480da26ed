"""Disentanglement and completeness from an importance matrix (Eastwood & Williams, 2018).

The definitions follow ``disentanglement_lib`` (``dci.py``), including its ``1e-11`` added to the
importances before the entropy, so that scores agree with published DCI numbers.
"""

from __future__ import annotations

import numpy as np

from pyro_emorl.metrics._arrays import ArrayLike, as_float64

# disentanglement_lib's offset: makes an all-zero row/column a uniform (maximum-entropy) one.
_EPS = 1e-11


def _importance(importance: ArrayLike) -> np.ndarray:
    """Validate a ``[D, F]`` importance matrix and return it as float64."""
    r = as_float64(importance, "importance")
    if r.ndim != 2 or r.size == 0:
        raise ValueError(
            f"importance has shape {r.shape}; expected a non-empty [D codes, F factors] matrix."
        )
    if (r < 0).any():
        raise ValueError("importance has negative entries; pass absolute importances.")
    return r


def _one_minus_normalised_entropy(r: np.ndarray, axis: int) -> np.ndarray:
    """``1 - H(p) / log(n)`` of the distributions ``p ∝ r + 1e-11`` along ``axis`` of size n.

    A single-element distribution (n = 1) has zero entropy, so it scores 1: a code can only
    inform about the one factor there is, and a factor can only be captured by the one code.
    """
    n = r.shape[axis]
    if n == 1:
        return np.ones(r.shape[1 - axis])
    import scipy.stats  # here, not at the top: it adds ~60 MB to every pyro_emorl process

    score = 1.0 - scipy.stats.entropy(r + _EPS, base=n, axis=axis)
    # A uniform distribution can come out a few ulps above entropy 1; keep scores in [0, 1].
    return np.clip(score, 0.0, 1.0)


def disentanglement_per_code(importance: ArrayLike) -> np.ndarray:
    """How exclusively each code dimension informs about a single factor.

    Args:
        importance: Non-negative ``[D, F]`` importance of code ``d`` for predicting factor ``f``.

    Returns:
        float64 ``[D]``: ``1 - H_F(p_d)`` with ``p_d`` the normalised row ``d`` (entropy with
        base F). 1 for F = 1; 0 for an unused (all-zero) code.

    Raises:
        ValueError: If ``importance`` is not a non-empty 2-d, finite, non-negative matrix.
    """
    return _one_minus_normalised_entropy(_importance(importance), axis=1)


def completeness_per_factor(importance: ArrayLike) -> np.ndarray:
    """How exclusively each factor is captured by a single code dimension.

    Args:
        importance: Non-negative ``[D, F]`` importance of code ``d`` for predicting factor ``f``.

    Returns:
        float64 ``[F]``: ``1 - H_D(p_f)`` with ``p_f`` the normalised column ``f`` (entropy with
        base D). 1 for D = 1; 0 for a factor no code informs about.

    Raises:
        ValueError: If ``importance`` is not a non-empty 2-d, finite, non-negative matrix.
    """
    return _one_minus_normalised_entropy(_importance(importance), axis=0)


def _share(totals: np.ndarray) -> np.ndarray:
    """Normalise non-negative totals to sum to 1; uniform if they are all zero (as the library)."""
    if totals.sum() == 0.0:
        return np.full(totals.shape, 1.0 / totals.size)
    return totals / totals.sum()


def disentanglement(importance: ArrayLike) -> float:
    """Disentanglement D: per-code scores weighted by each code's share of the total importance.

    Args:
        importance: Non-negative ``[D, F]`` importance matrix.

    Returns:
        ``Σ_d disentanglement_per_code[d] · Σ_f R[d, f] / Σ R``, in [0, 1] (uniform weights when
        the matrix is all zero).

    Raises:
        ValueError: If ``importance`` is not a non-empty 2-d, finite, non-negative matrix.
    """
    r = _importance(importance)
    return float(disentanglement_per_code(r) @ _share(r.sum(axis=1)))


def completeness(importance: ArrayLike) -> float:
    """Completeness C: per-factor scores weighted by each factor's share of the total importance.

    Args:
        importance: Non-negative ``[D, F]`` importance matrix.

    Returns:
        ``Σ_f completeness_per_factor[f] · Σ_d R[d, f] / Σ R``, in [0, 1] (uniform weights when
        the matrix is all zero).

    Raises:
        ValueError: If ``importance`` is not a non-empty 2-d, finite, non-negative matrix.
    """
    r = _importance(importance)
    return float(completeness_per_factor(r) @ _share(r.sum(axis=0)))
