"""DCI: the importance-matrix scores on hand-made matrices, and the full pipeline on codes."""

import math

import numpy as np
import pytest
import torch

from pyro_emorl.metrics import (
    completeness,
    completeness_per_factor,
    dci,
    disentanglement,
    disentanglement_per_code,
)

TYPES = ["continuous", "continuous", "discrete"]


def _factors(n, rng):
    """Two uniform continuous factors and one 3-class discrete factor, [n, 3]."""
    return np.stack([rng.uniform(size=n), rng.uniform(size=n), rng.integers(0, 3, n)], axis=1)


def test_scores_of_a_hand_made_importance_matrix():
    r = np.array([[3.0, 1.0], [0.0, 2.0]])
    # Code 0: p = (3/4, 1/4), H_2 = -(3/4 log2 3/4 + 1/4 log2 1/4); code 1: p = (0, 1), H = 0.
    h_code0 = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
    # Factor 0: p = (1, 0), H = 0; factor 1: p = (1/3, 2/3).
    h_factor1 = -(1 / 3 * math.log2(1 / 3) + 2 / 3 * math.log2(2 / 3))
    np.testing.assert_allclose(disentanglement_per_code(r), [1 - h_code0, 1.0], atol=1e-9)
    np.testing.assert_allclose(completeness_per_factor(r), [1.0, 1 - h_factor1], atol=1e-9)
    # Weights: codes 4/6 and 2/6; factors 3/6 and 3/6.
    assert disentanglement(r) == pytest.approx((1 - h_code0) * 4 / 6 + 2 / 6, abs=1e-9)
    assert completeness(r) == pytest.approx(0.5 + (1 - h_factor1) * 0.5, abs=1e-9)


def test_ideal_uniform_and_entangled_matrices():
    ideal = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]])  # plus one unused code
    assert disentanglement(ideal) == pytest.approx(1.0, abs=1e-9)
    assert completeness(ideal) == pytest.approx(1.0, abs=1e-9)
    uniform = np.ones((4, 3))
    assert disentanglement(uniform) == pytest.approx(0.0, abs=1e-12)
    assert completeness(uniform) == pytest.approx(0.0, abs=1e-12)
    # One code carries both factors: not disentangled, but each factor is in a single code.
    one_code = np.array([[1.0, 1.0], [0.0, 0.0]])
    assert disentanglement(one_code) == pytest.approx(0.0, abs=1e-12)
    assert completeness(one_code) == pytest.approx(1.0, abs=1e-9)


def test_single_factor_or_code_scores_one():
    assert disentanglement(np.array([[0.2], [0.8]])) == 1.0
    assert completeness(np.array([[0.2, 0.8]])) == 1.0


def test_importance_validation():
    with pytest.raises(ValueError, match="negative"):
        disentanglement(np.array([[1.0, -1.0]]))
    with pytest.raises(ValueError, match=r"\[D codes, F factors\]"):
        completeness(np.ones(3))


def test_code_with_one_dimension_per_factor_scores_near_one():
    rng = np.random.default_rng(0)
    y = _factors(200, rng)
    # Dimensions: factor 1, noise, factor 2 (rescaled), factor 0, noise.
    z = np.stack(
        [y[:, 1], rng.normal(size=200), 0.7 * y[:, 2] + 0.1, y[:, 0], rng.normal(size=200)], 1
    )
    result = dci(torch.from_numpy(z), y, TYPES, seed=1, n_estimators=30)
    assert result["disentanglement"] > 0.95
    assert result["completeness"] > 0.95
    assert result["informativeness"] > 0.95
    # The discrete factor is scored by a classifier: exact accuracy, not a regressor's R².
    assert result["test_score_per_factor"][2] == 1.0
    assert np.argmax(result["importance"], axis=0).tolist() == [3, 0, 2]
    assert result["importance"].shape == (5, 3)
    assert result["disentanglement_per_code"].shape == (5,)
    assert result["completeness_per_factor"].shape == (3,)


def test_noise_code_scores_near_zero():
    rng = np.random.default_rng(0)
    y = _factors(200, rng)
    z = rng.normal(size=(200, 5))
    result = dci(z, y, TYPES, seed=2, n_estimators=20)
    assert result["disentanglement"] < 0.2
    assert result["completeness"] < 0.2
    # R² of unpredictable continuous factors is negative and clipped to 0; the discrete one
    # stays near chance (1/3), so the mean is at most about 1/9.
    assert (result["test_score_per_factor"][:2] < 0.05).all()
    np.testing.assert_array_equal(result["informativeness_per_factor"][:2], [0.0, 0.0])
    assert result["informativeness"] < 0.25


def test_seed_makes_results_reproducible():
    rng = np.random.default_rng(3)
    y = _factors(60, rng)
    z = rng.normal(size=(60, 3)) + y[:, :1]
    a = dci(z, y, TYPES, seed=7, n_estimators=5)
    b = dci(z, y, TYPES, seed=7, n_estimators=5)
    np.testing.assert_array_equal(a["importance"], b["importance"])
    assert a["informativeness"] == b["informativeness"]


@pytest.mark.parametrize(
    ("codes", "factors", "types", "kwargs", "message"),
    [
        (np.zeros((10, 2)), np.zeros((9, 3)), TYPES, {}, "rows"),
        (np.zeros((10, 2)), np.zeros((10, 3)), TYPES[:2], {}, "one type per factor"),
        (
            np.zeros((10, 2)),
            np.zeros((10, 3)),
            ["continuous", "ordinal", "discrete"],
            {},
            "ordinal",
        ),
        (np.zeros((10, 2)), np.zeros((10, 3)), TYPES, {"test_fraction": 1.0}, "test_fraction"),
        (np.zeros((3, 2)), np.zeros((3, 3)), TYPES, {}, "at least 2"),
        (np.full((10, 2), np.nan), np.zeros((10, 3)), TYPES, {}, "NaN"),
        (np.zeros(10), np.zeros((10, 3)), TYPES, {}, r"\[N, D\]"),
        (np.zeros((10, 2)), np.zeros((10, 3)), TYPES, {}, "single value"),
    ],
    ids=["rows", "n-types", "type-name", "fraction", "too-few", "nan", "rank", "one-class"],
)
def test_bad_inputs_raise_clear_errors(codes, factors, types, kwargs, message):
    with pytest.raises(ValueError, match=message):
        dci(codes, factors, types, n_estimators=2, **kwargs)
