"""ARI / FG-ARI against sklearn and hand-computed cases."""

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import adjusted_rand_score

from pyro_emorl.metrics import UndefinedMetricWarning, ari


def _sklearn_ari(true, pred, exclude_background):
    """Reference: sklearn on the (foreground) pixels of each image; NaN (undefined) where there
    is no pixel to score, where sklearn's convention would say 1.0."""
    scores = []
    for t, p in zip(true, pred):
        keep = t > 0 if exclude_background else np.ones_like(t, dtype=bool)
        scores.append(adjusted_rand_score(t[keep], p[keep]) if keep.any() else np.nan)
    return np.array(scores)


def _quiet_ari(*args):
    """`ari` with its warning about undefined images silenced (random inputs hit them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return ari(*args)


def test_hand_computed_example_from_the_official_code():
    # The example at the bottom of the official lib/metrics.py. Foreground contingency:
    # object 1 -> slot 1 (2 px), slot 0 (1 px); object 2 -> slot 2 (2 px); n = 5.
    # sum C(n_ij, 2) = 2, sum C(a, 2) = 3 + 1 = 4, sum C(b, 2) = 1 + 0 + 1 = 2, C(5, 2) = 10;
    # ARI = (2 - 4 * 2 / 10) / ((4 + 2) / 2 - 4 * 2 / 10) = 1.2 / 2.2 = 6 / 11.
    true = np.array([[[1, 1, 1], [0, 2, 2], [0, 0, 0]]])
    pred = np.array(
        [
            [
                [[0, 0, 1], [1, 0, 0], [1, 1, 1]],
                [[1, 1, 0], [0, 0, 0], [0, 0, 0]],
                [[0, 0, 0], [0, 1, 1], [0, 0, 0]],
            ]
        ],
        dtype=np.float32,
    )
    np.testing.assert_allclose(ari(true, pred), [6 / 11], rtol=1e-14)


def test_one_object_in_one_slot_is_perfect():
    # A single non-zero contingency cell: 1.0 (official code and sklearn agree).
    true = np.array([[[0, 1, 1], [0, 1, 1]]])
    pred = np.array([[[3, 2, 2], [0, 2, 2]]])
    assert ari(true, pred)[0] == 1.0
    assert adjusted_rand_score([1, 1, 1, 1], [2, 2, 2, 2]) == 1.0


def test_one_object_split_over_two_slots_scores_zero():
    # Index = sum C(b, 2) = 2 = expected index (all pairs are together in the truth): ARI 0.
    true = np.array([[[1, 1], [1, 1]]])
    pred = np.array([[[0, 0], [1, 1]]])
    assert ari(true, pred)[0] == 0.0


def test_perfect_split_of_two_objects_is_one_and_ignores_background_predictions():
    true = np.array([[[1, 1, 0], [2, 2, 0]]])
    pred_a = np.array([[[4, 4, 4], [7, 7, 4]]])
    pred_b = np.array([[[4, 4, 0], [7, 7, 9]]])  # only background pixels differ
    assert ari(true, pred_a)[0] == 1.0
    assert ari(true, pred_b)[0] == 1.0
    # Plain ARI scores the background too: true (1,1,0,2,2,0) vs pred (4,4,4,7,7,4), n = 6.
    # Cells (1,4), (0,4), (2,7) hold 2 px each: sum C(n_ij,2) = 3; true sizes 2,2,2: sum = 3;
    # pred sizes 4,2: sum = 6 + 1 = 7; C(6,2) = 15; expected = 3 * 7 / 15 = 1.4;
    # ARI = (3 - 1.4) / ((3 + 7) / 2 - 1.4) = 1.6 / 3.6 = 4 / 9.
    np.testing.assert_allclose(ari(true, pred_a, exclude_background=False), [4 / 9], rtol=1e-14)


def test_empty_foreground_is_undefined_not_a_perfect_score():
    # sklearn scores the empty partitions 1.0, which would read as a perfect segmentation of
    # an image that has nothing to segment: NaN and a warning instead, other images unaffected.
    true = np.zeros((2, 3, 3), dtype=np.int64)
    true[1, :, :2] = 1
    true[1, :, 2] = 2
    pred = np.stack([np.arange(9).reshape(3, 3), true[1] + 5])
    assert adjusted_rand_score([], []) == 1.0
    with pytest.warns(UndefinedMetricWarning, match="FG-ARI is undefined .* no foreground"):
        scores = ari(true, pred)
    assert np.isnan(scores[0]) and scores[1] == 1.0
    # Plain ARI scores the background, so the first image is defined there (one true cluster
    # split over 9 predicted ones: index = expected index, 0.0) and no warning is given.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(ari(true, pred, exclude_background=False), [0.0, 1.0])


@pytest.mark.parametrize("exclude_background", [True, False])
def test_all_zero_ground_truth_masks_are_undefined(exclude_background):
    # Masks where no pixel belongs to any entity, not even the background (e.g. wrongly scaled
    # on loading): no ARI of either kind is meaningful there.
    masks = np.zeros((2, 3, 4, 4), dtype=np.uint8)
    masks[1, 0, :2] = 255
    masks[1, 1, 2:] = 255
    pred = np.stack([masks[1], masks[1]]).astype(np.float32)
    name = "FG-ARI" if exclude_background else "ARI"
    with pytest.warns(UndefinedMetricWarning, match=f"^{name} is undefined .* all zero"):
        scores = ari(masks, pred, exclude_background)
    assert np.isnan(scores[0]) and scores[1] == 1.0


def test_worse_than_chance_is_negative():
    # sklearn's documented -0.5 example, laid out as one image with all pixels foreground.
    assert ari(np.array([[[1, 1, 2, 2]]]), np.array([[[0, 1, 0, 1]]]))[0] == pytest.approx(-0.5)


label_map_pairs = st.integers(1, 3).flatmap(
    lambda b: st.tuples(st.integers(1, 6), st.integers(1, 6)).flatmap(
        lambda hw: st.tuples(
            arrays(np.int64, (b, *hw), elements=st.integers(0, 4)),
            arrays(np.int64, (b, *hw), elements=st.integers(0, 5)),
        )
    )
)


@settings(max_examples=300, deadline=None)
@given(label_map_pairs, st.booleans())
def test_equals_sklearn_on_random_label_maps(maps, exclude_background):
    true, pred = maps
    np.testing.assert_allclose(
        _quiet_ari(true, pred, exclude_background),
        _sklearn_ari(true, pred, exclude_background),
        rtol=0,
        atol=1e-12,
    )


def test_equals_sklearn_on_a_large_batch_of_masks_and_scores():
    # The evaluation setting: 0/255 entity masks, softmax scores, many images at once.
    rng = np.random.default_rng(1)
    batch, entities, slots, size = 40, 7, 6, 32
    labels = rng.integers(0, entities, size=(batch, size, size))
    labels[:, :8] = 0  # a band of background
    masks = (np.arange(entities)[None, :, None, None] == labels[:, None]).astype(np.uint8) * 255
    logits = rng.normal(size=(batch, slots, size, size))
    # Make slots partly follow the objects so scores spread over (-0.5, 1].
    logits += 3.0 * (labels[:, None] % slots == np.arange(slots)[None, :, None, None])
    probs = torch.softmax(torch.from_numpy(logits), dim=1)
    for exclude in (True, False):
        expected = _sklearn_ari(labels, logits.argmax(axis=1), exclude)
        np.testing.assert_allclose(ari(masks, probs, exclude), expected, rtol=0, atol=1e-12)
    assert ari(masks, probs).dtype == np.float64


def test_zero_one_masks_divided_by_255_are_named_as_such():
    masks = np.zeros((1, 2, 3, 3), dtype=np.float32)
    masks[0, 0, :, :2] = 1 / 255  # 0/1 masks divided once too often (as a 0/255 reader does)
    masks[0, 1, :, 2] = 1 / 255
    with pytest.raises(ValueError, match=r"max 0\.003922\)\. They look like 0/1 masks divided"):
        ari(masks, masks)
