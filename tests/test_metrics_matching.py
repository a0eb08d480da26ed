"""Slot-to-object matching with the official thresholds, and pairing codes with factors."""

import numpy as np
import pytest

from pyro_emorl.metrics import gather_matched, match_slots_to_objects


def _one_hot(labels, n):
    """[B, H, W] labels -> [B, n, H, W] float one-hot scores."""
    return (np.arange(n)[None, :, None, None] == labels[:, None]).astype(np.float64)


def _masks(labels, n):
    """[B, H, W] labels -> [B, n, 1, H, W] uint8 0/255 entity masks (official layout)."""
    return (_one_hot(labels, n)[:, :, None] * 255).astype(np.uint8)


# 10x10 image: object 1 = rows 0-5 (60 px), object 2 = rows 6-8 (30 px), background = row 9.
TRUE = np.zeros((1, 10, 10), dtype=np.int64)
TRUE[0, :6] = 1
TRUE[0, 6:9] = 2
# Slot 2 predicts object 1 exactly; slot 0 predicts rows 6-9 (IoU with object 2 = 30/40).
PRED = np.zeros((1, 10, 10), dtype=np.int64)
PRED[0, :6] = 2


def test_small_objects_are_dropped_by_default():
    (match,) = match_slots_to_objects(_masks(TRUE, 3), _one_hot(PRED, 3))
    np.testing.assert_array_equal(match.object_ids, [1])
    np.testing.assert_array_equal(match.slot_ids, [2])
    np.testing.assert_array_equal(match.ious, [1.0])


def test_thresholds_are_arguments():
    (match,) = match_slots_to_objects(_masks(TRUE, 3), _one_hot(PRED, 3), min_object_pixels=30)
    np.testing.assert_array_equal(match.object_ids, [1, 2])
    np.testing.assert_array_equal(match.slot_ids, [2, 0])
    np.testing.assert_allclose(match.ious, [1.0, 0.75])
    (match,) = match_slots_to_objects(
        _masks(TRUE, 3), _one_hot(PRED, 3), min_object_pixels=30, min_iou=0.8
    )
    np.testing.assert_array_equal(match.object_ids, [1])


def test_low_iou_matches_are_removed():
    # 30x30 image: two 60-px objects; slot 0 is exactly object 1, slot 1 is everything else
    # (840 px), so object 2 can only get IoU 60 / 840 = 1/14 < 0.1.
    true = np.zeros((1, 30, 30), dtype=np.int64)
    true[0, :2] = 1
    true[0, 2:4] = 2
    pred = np.where(true == 1, 0, 1)
    (match,) = match_slots_to_objects(true, _one_hot(pred, 2))
    np.testing.assert_array_equal(match.object_ids, [1])
    (match,) = match_slots_to_objects(true, _one_hot(pred, 2), min_iou=0.05)
    np.testing.assert_array_equal(match.object_ids, [1, 2])
    np.testing.assert_allclose(match.ious, [1.0, 1 / 14])


def test_absent_entities_are_never_matched():
    true = np.zeros((1, 4, 4), dtype=np.int64)
    true[0, :2] = 1
    masks = _masks(true, 3)  # entity 2 exists but is empty
    (match,) = match_slots_to_objects(masks, _one_hot(true, 3), min_object_pixels=0, min_iou=0.0)
    np.testing.assert_array_equal(match.object_ids, [1])


def test_hungarian_resolves_competition_for_a_slot():
    # Rows of 20 columns, 10 rows: object 1 = cols 0-3, object 2 = cols 4-5; slot 1 = col 0,
    # slot 0 = cols 1-5, slot 2 = the rest. IoU(1, 0) = 3/6, IoU(1, 1) = 1/4, IoU(2, 0) = 2/5,
    # IoU(2, 1) = IoU(2, 2) = 0. Both objects prefer slot 0, but 1 -> 1, 2 -> 0 (total 0.65)
    # beats 1 -> 0 (total 0.5).
    true = np.tile([1, 1, 1, 1, 2, 2] + [0] * 14, (1, 10, 1))
    pred = np.tile([1, 0, 0, 0, 0, 0] + [2] * 14, (1, 10, 1))
    (match,) = match_slots_to_objects(true, pred, min_object_pixels=1)
    np.testing.assert_array_equal(match.object_ids, [1, 2])
    np.testing.assert_array_equal(match.slot_ids, [1, 0])
    np.testing.assert_allclose(match.ious, [0.25, 0.4])


def test_gather_matched_pairs_codes_with_factors():
    true = np.stack([TRUE[0], np.where(TRUE[0] == 2, 1, 0)])
    pred = np.stack([PRED[0], np.where(TRUE[0] == 2, 1, 0)])
    matches = match_slots_to_objects(_masks(true, 3), _one_hot(pred, 3), min_object_pixels=30)
    codes = np.arange(2 * 3 * 2, dtype=np.float64).reshape(2, 3, 2)  # [B, K, D]
    factors = -np.arange(2 * 3 * 4, dtype=np.float64).reshape(2, 3, 4)  # [B, E, F]
    z, y = gather_matched(matches, codes, factors)
    # Image 0: (object 1, slot 2), (object 2, slot 0); image 1: (object 1, slot 1).
    np.testing.assert_array_equal(z, [codes[0, 2], codes[0, 0], codes[1, 1]])
    np.testing.assert_array_equal(y, [factors[0, 1], factors[0, 2], factors[1, 1]])


def test_gather_matched_rejects_bad_inputs():
    matches = match_slots_to_objects(TRUE, PRED + 5, min_object_pixels=1)  # slot ids 5, 7
    with pytest.raises(ValueError, match="exceed"):
        gather_matched(matches, np.zeros((1, 3, 2)), np.zeros((1, 3, 4)))
    with pytest.raises(ValueError, match="one entry per image"):
        gather_matched(matches, np.zeros((2, 3, 2)), np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"\[B, K, D\]"):
        gather_matched(matches, np.zeros((3, 2)), np.zeros((1, 3, 4)))


def test_threshold_arguments_are_validated():
    with pytest.raises(ValueError, match="min_iou"):
        match_slots_to_objects(TRUE, PRED, min_iou=1.5)
    with pytest.raises(ValueError, match="min_object_pixels"):
        match_slots_to_objects(TRUE, PRED, min_object_pixels=-1)
