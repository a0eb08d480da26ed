"""ARI / FG-ARI against sklearn and hand-computed cases."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import adjusted_rand_score

from pyro_emorl.metrics import ari


def _sklearn_ari(true, pred, exclude_background):
    """Reference: sklearn on the (foreground) pixels of each image."""
    scores = []
    for t, p in zip(true, pred):
        keep = t > 0 if exclude_background else np.ones_like(t, dtype=bool)
        scores.append(adjusted_rand_score(t[keep], p[keep]))
    return np.array(scores)


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


def test_empty_foreground_follows_sklearn_and_scores_one():
    true = np.zeros((1, 3, 3), dtype=np.int64)
    pred = np.arange(9).reshape(1, 3, 3)
    assert adjusted_rand_score([], []) == 1.0
    assert ari(true, pred)[0] == 1.0


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
        ari(true, pred, exclude_background),
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
