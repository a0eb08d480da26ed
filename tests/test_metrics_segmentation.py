"""Segmentation covering (SC / mSC) and Hungarian mean IoU on hand-computed cases."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pyro_emorl.metrics import (
    UndefinedMetricWarning,
    mean_iou,
    mean_over_defined,
    segmentation_covering,
)

# Case A (4x4). Objects: 1 = rows 0-1 x cols 0-2 (6 px), 2 = rows 2-3 x col 2 (2 px).
TRUE_A = np.array([[[1, 1, 1, 0], [1, 1, 1, 0], [0, 0, 2, 0], [0, 0, 2, 0]]])
# Predicted regions: 0 = rows 0-1 x cols 0-1 (4 px), 1 = rows 0-1 x cols 2-3 (4 px),
# 2 = rows 2-3 (8 px).
PRED_A = np.array([[[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 2], [2, 2, 2, 2]]])
# Best IoUs: object 1 with region 0: 4 / (6 + 4 - 4) = 2/3 (region 1: 2 / 8 = 1/4);
# object 2 with region 2: 2 / (2 + 8 - 2) = 1/4.

# Case B (4x4). Objects 1 and 2 (4 px each) side by side in rows 0-1; background rows 2-3.
TRUE_B = np.array([[[1, 1, 2, 2], [1, 1, 2, 2], [0, 0, 0, 0], [0, 0, 0, 0]]])
# One predicted region (label 5) covers both objects, another (7) the background.
PRED_B = np.array([[[5, 5, 5, 5], [5, 5, 5, 5], [7, 7, 7, 7], [7, 7, 7, 7]]])
# IoU(1, 5) = IoU(2, 5) = 4 / 8 = 1/2, IoU(bg, 7) = 1, all other pairs 0.


def test_sc_and_msc_case_a():
    # SC = (6 * 2/3 + 2 * 1/4) / 8 = 4.5 / 8; mSC = (2/3 + 1/4) / 2 = 11/24.
    np.testing.assert_allclose(segmentation_covering(TRUE_A, PRED_A), [4.5 / 8], rtol=1e-14)
    np.testing.assert_allclose(
        segmentation_covering(TRUE_A, PRED_A, mean=True), [11 / 24], rtol=1e-14
    )


def test_sc_with_background_case_a():
    # Background (8 px): IoU with region 0 = 0/12, region 1 = 2 / (8 + 4 - 2) = 1/5,
    # region 2 = 6 / (8 + 8 - 6) = 3/5. SC = (6 * 2/3 + 2 * 1/4 + 8 * 3/5) / 16 = 9.3 / 16;
    # mSC = (2/3 + 1/4 + 3/5) / 3 = 91/180.
    np.testing.assert_allclose(
        segmentation_covering(TRUE_A, PRED_A, exclude_background=False), [9.3 / 16], rtol=1e-14
    )
    np.testing.assert_allclose(
        segmentation_covering(TRUE_A, PRED_A, exclude_background=False, mean=True),
        [91 / 180],
        rtol=1e-14,
    )


def test_mean_iou_case_a():
    # Hungarian: object 1 -> region 0 (2/3), object 2 -> region 2 (1/4): (2/3 + 1/4) / 2.
    np.testing.assert_allclose(mean_iou(TRUE_A, PRED_A), [11 / 24], rtol=1e-14)


def test_merged_slot_covers_both_objects_but_matches_only_one():
    # Covering lets both objects use region 5: SC = mSC = 1/2.
    np.testing.assert_allclose(segmentation_covering(TRUE_B, PRED_B), [0.5], rtol=1e-14)
    np.testing.assert_allclose(segmentation_covering(TRUE_B, PRED_B, mean=True), [0.5])
    # One-to-one matching: object 1 -> 5 (1/2), object 2 -> 7 (IoU 0): (1/2 + 0) / 2 = 1/4.
    np.testing.assert_allclose(mean_iou(TRUE_B, PRED_B), [0.25], rtol=1e-14)


def test_unmatched_objects_count_as_zero_iou():
    # With the background as an object there are 3 objects but only 2 predicted regions:
    # bg -> 7 (1), one object -> 5 (1/2), the other unmatched (0): 1.5 / 3.
    np.testing.assert_allclose(mean_iou(TRUE_B, PRED_B, exclude_background=False), [0.5])
    # Same with scores for 8 slots of which 6 are never chosen (their regions are empty).
    scores = np.zeros((1, 8, 4, 4))
    scores[0, 5][PRED_B[0] == 5] = 1.0
    scores[0, 7][PRED_B[0] == 7] = 1.0
    np.testing.assert_allclose(mean_iou(TRUE_B, scores, exclude_background=False), [0.5])
    # Covering with background: (4 * 1/2 + 4 * 1/2 + 8 * 1) / 16 and (1/2 + 1/2 + 1) / 3.
    np.testing.assert_allclose(
        segmentation_covering(TRUE_B, PRED_B, exclude_background=False), [0.75]
    )
    np.testing.assert_allclose(
        segmentation_covering(TRUE_B, PRED_B, exclude_background=False, mean=True), [2 / 3]
    )


def test_union_is_logical_or_including_predicted_background():
    # Object 1 (2 px) predicted by a region that also takes 2 background pixels:
    # IoU = 2 / (2 + 4 - 2) = 1/2, not 2 / (2 + 4) (sum of sizes) and not 1 (fg-only union).
    true = np.array([[[1, 1], [0, 0]]])
    pred = np.array([[[3, 3], [3, 3]]])
    assert segmentation_covering(true, pred)[0] == 0.5
    assert mean_iou(true, pred)[0] == 0.5


def test_perfect_segmentation_scores_one():
    for metric in (segmentation_covering, mean_iou):
        np.testing.assert_array_equal(metric(TRUE_A, TRUE_A + 10), [1.0])
    assert segmentation_covering(TRUE_A, TRUE_A + 10, mean=True)[0] == 1.0


def test_no_objects_gives_nan_with_a_warning():
    true = np.zeros((2, 3, 3), dtype=np.int64)
    true[1, 0, 0] = 1
    pred = np.zeros((2, 3, 3), dtype=np.int64)
    calls = (
        ("SC", lambda: segmentation_covering(true, pred)),
        ("mSC", lambda: segmentation_covering(true, pred, mean=True)),
        ("mIoU", lambda: mean_iou(true, pred)),
    )
    for name, call in calls:
        with pytest.warns(UndefinedMetricWarning, match=f"^{name} is undefined .* no foreground"):
            scores = call()
        assert np.isnan(scores[0])
        assert scores[1] == pytest.approx(1 / 9)


@pytest.mark.parametrize("exclude", [True, False])
def test_all_zero_ground_truth_masks_are_undefined_even_with_the_background(exclude):
    # Image 0's masks are all zero (not even the background is set): nothing is covered or
    # matched there, whether or not the background counts; image 1 is scored as usual.
    masks = np.zeros((2, 3, 4, 4), dtype=np.uint8)
    masks[1] = np.arange(3)[:, None, None] == TRUE_A[0]
    pred = np.concatenate([TRUE_A, TRUE_A])
    for name, call in (
        ("SC", lambda: segmentation_covering(masks, pred, exclude)),
        ("mSC", lambda: segmentation_covering(masks, pred, exclude, mean=True)),
        ("mIoU", lambda: mean_iou(masks, pred, exclude)),
    ):
        with pytest.warns(UndefinedMetricWarning, match=f"^{name} is undefined .* all zero"):
            scores = call()
        assert np.isnan(scores[0]) and scores[1] == 1.0


def test_mean_over_defined_skips_nan_and_is_none_when_nothing_is_defined():
    assert mean_over_defined(np.array([0.5, np.nan, 1.0])) == 0.75
    with pytest.warns(UndefinedMetricWarning, match="FG-ARI is undefined for every image"):
        assert mean_over_defined(np.array([np.nan, np.nan]), "FG-ARI") is None
    with pytest.warns(UndefinedMetricWarning):
        assert mean_over_defined(np.array([])) is None


def test_absent_entities_are_not_counted():
    # Entity 2 is present in image 1 but its mask is all zero in image 0: there it must not
    # enter the mean as an IoU-0 region (which would give 1/2).
    masks = np.stack([np.arange(3)[:, None, None] == TRUE_A[0]] * 2).astype(np.uint8)
    masks[0, 2] = 0
    masks[0, 0] = TRUE_A[0] != 1
    pred = np.concatenate([TRUE_A == 1, TRUE_A]).astype(np.int64)
    np.testing.assert_array_equal(segmentation_covering(masks, pred, mean=True), [1.0, 1.0])
    np.testing.assert_array_equal(mean_iou(masks, pred), [1.0, 1.0])


def _brute_force(true, pred, exclude_background):
    """Per-region loops and an exhaustive search over one-to-one matchings."""
    sc, msc, miou = [], [], []
    for t, p in zip(true, pred):
        objects = [v for v in np.unique(t) if v != 0 or not exclude_background]
        regions = list(np.unique(p))
        if not objects:
            sc.append(np.nan)
            msc.append(np.nan)
            miou.append(np.nan)
            continue
        iou = np.array(
            [
                [((t == o) & (p == r)).sum() / ((t == o) | (p == r)).sum() for r in regions]
                for o in objects
            ]
        )
        size = np.array([(t == o).sum() for o in objects])
        sc.append((size * iou.max(axis=1)).sum() / size.sum())
        msc.append(iou.max(axis=1).mean())
        # Pad with empty regions (IoU 0) so that every object gets a partner.
        padded = np.concatenate([iou, np.zeros((len(objects), len(objects)))], axis=1)
        best = max(
            padded[np.arange(len(objects)), list(cols)].sum()
            for cols in itertools.permutations(range(padded.shape[1]), len(objects))
        )
        miou.append(best / len(objects))
    return np.array(sc), np.array(msc), np.array(miou)


small_maps = st.integers(1, 2).flatmap(
    lambda b: st.tuples(st.integers(1, 4), st.integers(1, 4)).flatmap(
        lambda hw: st.tuples(
            arrays(np.int64, (b, *hw), elements=st.integers(0, 3)),
            arrays(np.int64, (b, *hw), elements=st.integers(0, 3)),
        )
    )
)


@settings(max_examples=150, deadline=None)
@given(small_maps, st.booleans())
@pytest.mark.filterwarnings("ignore::pyro_emorl.metrics.UndefinedMetricWarning")
def test_matches_brute_force_definitions(maps, exclude_background):
    true, pred = maps
    sc, msc, miou = _brute_force(true, pred, exclude_background)
    np.testing.assert_allclose(segmentation_covering(true, pred, exclude_background), sc)
    np.testing.assert_allclose(
        segmentation_covering(true, pred, exclude_background, mean=True), msc
    )
    np.testing.assert_allclose(mean_iou(true, pred, exclude_background), miou)
