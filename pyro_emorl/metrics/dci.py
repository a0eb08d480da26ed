"""DCI (disentanglement, completeness, informativeness) with gradient-boosted trees."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, TypedDict

import numpy as np

from pyro_emorl.metrics._arrays import ArrayLike, as_float64
from pyro_emorl.metrics.importance_scores import (
    completeness,
    completeness_per_factor,
    disentanglement,
    disentanglement_per_code,
)

FactorType = Literal["continuous", "discrete"]
"""How a factor is predicted from the codes: a regressor (``"continuous"``) or a classifier
(``"discrete"``)."""


class DCIResult(TypedDict):
    """Scores returned by `dci` (a plain dict at runtime).

    Attributes:
        disentanglement: D in [0, 1].
        completeness: C in [0, 1].
        informativeness: Mean of ``informativeness_per_factor``, in [0, 1].
        informativeness_per_factor: float64 ``[F]``: test R² clipped below at 0 (continuous) or
            test accuracy (discrete).
        test_score_per_factor: float64 ``[F]``: the unclipped test R² or the test accuracy.
        importance: float64 ``[D, F]`` ``|feature_importances_|`` of the model for each factor.
        disentanglement_per_code: float64 ``[D]``.
        completeness_per_factor: float64 ``[F]``.
    """

    disentanglement: float
    completeness: float
    informativeness: float
    informativeness_per_factor: np.ndarray
    test_score_per_factor: np.ndarray
    importance: np.ndarray
    disentanglement_per_code: np.ndarray
    completeness_per_factor: np.ndarray


def _check_inputs(
    codes: np.ndarray, factors: np.ndarray, factor_types: Sequence[str], test_fraction: float
) -> None:
    """Raise a ValueError describing the first problem with the DCI inputs."""
    if codes.ndim != 2 or factors.ndim != 2:
        raise ValueError(
            f"codes {codes.shape} and factors {factors.shape} must be [N, D] and [N, F]; "
            "flatten matched slots over images first (see gather_matched)."
        )
    if codes.shape[0] != factors.shape[0]:
        raise ValueError(
            f"codes has {codes.shape[0]} rows but factors has {factors.shape[0]}; row i of both "
            "must describe the same object."
        )
    if codes.shape[1] == 0 or factors.shape[1] == 0:
        raise ValueError(
            f"need D >= 1 codes and F >= 1 factors, got {codes.shape[1]} and {factors.shape[1]}."
        )
    if len(factor_types) != factors.shape[1]:
        raise ValueError(
            f"factor_types has {len(factor_types)} entries but factors has {factors.shape[1]} "
            "columns; give one type per factor."
        )
    unknown = sorted({t for t in factor_types if t not in ("continuous", "discrete")})
    if unknown:
        raise ValueError(f"factor_types must be 'continuous' or 'discrete', got {unknown}.")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}.")
    n = codes.shape[0]
    # sklearn's train_test_split rounds the test share up.
    n_test = math.ceil(test_fraction * n)
    if min(n_test, n - n_test) < 2:
        raise ValueError(
            f"{n} samples with test_fraction={test_fraction} leave {n - n_test} training and "
            f"{n_test} test samples; both need at least 2. Use more samples."
        )


def _fit_factor(
    z_train: np.ndarray,
    y_train: np.ndarray,
    z_test: np.ndarray,
    y_test: np.ndarray,
    factor_type: str,
    n_estimators: int,
    seed: int,
) -> tuple[np.ndarray, float]:
    """Fit one factor's model; return ``(importance [D], test score)``."""
    # Imported here: sklearn adds ~120 MB to every process that imports pyro_emorl.
    from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor

    if factor_type == "continuous":
        regressor = GradientBoostingRegressor(n_estimators=n_estimators, random_state=seed)
        regressor.fit(z_train, y_train)
        return np.abs(regressor.feature_importances_), float(regressor.score(z_test, y_test))
    # Relabel categories to 0..C-1 so float-coded categories (e.g. 0.0, 2.5) are accepted.
    classes, y_all = np.unique(np.concatenate([y_train, y_test]), return_inverse=True)
    y_train_c, y_test_c = y_all[: len(y_train)], y_all[len(y_train) :]
    if len(np.unique(y_train_c)) < 2:
        raise ValueError(
            f"a discrete factor takes a single value ({classes[y_train_c[0]]}) in the training "
            "split; a classifier needs two classes. Drop the factor or use more samples."
        )
    classifier = GradientBoostingClassifier(n_estimators=n_estimators, random_state=seed)
    classifier.fit(z_train, y_train_c)
    return np.abs(classifier.feature_importances_), float(classifier.score(z_test, y_test_c))


def dci(
    codes: ArrayLike,
    factors: ArrayLike,
    factor_types: Sequence[FactorType],
    test_fraction: float = 0.5,
    seed: int = 0,
    n_estimators: int = 100,
) -> DCIResult:
    """DCI scores of a representation with one gradient-boosted-tree model per factor.

    Each factor is predicted from all code dimensions on a random train split: continuous
    factors with a ``GradientBoostingRegressor``, discrete ones with a
    ``GradientBoostingClassifier`` (sklearn defaults except ``n_estimators`` and
    ``random_state=seed``). The official EfficientMORL code instead reuses the first factor's
    regressor for every factor and scores it by exact equality, which is not repeated here.

    * Importance ``R[d, f]`` = ``|feature_importances_[d]|`` of factor ``f``'s model.
    * Disentanglement ``D = Σ_d (1 − H_F(p_d)) · w_d`` and completeness
      ``C = Σ_f (1 − H_D(p_f)) · w_f`` as in ``disentanglement_lib`` (see
      `pyro_emorl.metrics.importance_scores`).
    * Informativeness of a continuous factor is the test R² clipped below at 0 (a model worse
      than predicting the mean carries no information, and the clip keeps the average in [0, 1]
      like accuracies); of a discrete factor, the test accuracy (chance level is not 0).
      ``informativeness`` is their mean over factors.

    Args:
        codes: ``[N, D]`` codes, one row per object (e.g. matched slot posterior means).
        factors: ``[N, F]`` ground-truth factors of the same objects.
        factor_types: ``F`` entries, ``"continuous"`` or ``"discrete"``.
        test_fraction: Share of the N rows held out for scoring (rounded up, as sklearn does).
        seed: Seed of the shuffled train/test split and of the tree models.
        n_estimators: Boosting stages per model (sklearn's default 100). Classifiers fit one
            tree per class and stage, so many-class factors are slower.

    Returns:
        A `DCIResult` dict.

    Raises:
        ValueError: On non-2-d or mismatched inputs, NaN/inf, a wrong number or unknown name of
            factor types, ``test_fraction`` outside (0, 1), fewer than 2 samples in a split, or
            a discrete factor with a single value in the training split.
    """
    z = as_float64(codes, "codes")
    y = as_float64(factors, "factors")
    _check_inputs(z, y, factor_types, test_fraction)
    from sklearn.model_selection import train_test_split  # lazily, as in `_fit_factor`

    z_train, z_test, y_train, y_test = train_test_split(
        z, y, test_size=test_fraction, random_state=seed, shuffle=True
    )
    importances, scores = [], []
    for f, factor_type in enumerate(factor_types):
        importance, score = _fit_factor(
            z_train, y_train[:, f], z_test, y_test[:, f], factor_type, n_estimators, seed
        )
        importances.append(importance)
        scores.append(score)
    r = np.stack(importances, axis=1)  # [D, F]
    test_scores = np.asarray(scores, dtype=np.float64)
    informativeness = np.clip(test_scores, 0.0, 1.0)
    return DCIResult(
        disentanglement=disentanglement(r),
        completeness=completeness(r),
        informativeness=float(informativeness.mean()),
        informativeness_per_factor=informativeness,
        test_score_per_factor=test_scores,
        importance=r,
        disentanglement_per_code=disentanglement_per_code(r),
        completeness_per_factor=completeness_per_factor(r),
    )
