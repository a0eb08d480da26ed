"""How segmentation metrics read ground-truth masks, label maps and predicted scores."""

import numpy as np
import pytest
import torch

from pyro_emorl.metrics import ari, mean_iou, segmentation_covering
from pyro_emorl.metrics._labels import label_maps, pred_labels, true_labels

# 1 image, 3 entities (0 = background) on a 2x3 grid; entities 1 and 2 overlap at (0, 2).
LABELS = np.array([[[0, 1, 2], [1, 1, 0]]])
MASKS = np.zeros((1, 3, 2, 3), dtype=np.uint8)
MASKS[0, 0] = [[1, 0, 0], [0, 0, 1]]
MASKS[0, 1] = [[0, 1, 1], [1, 1, 0]]
MASKS[0, 2] = [[0, 0, 1], [0, 0, 0]]


@pytest.mark.parametrize(
    "masks",
    [
        MASKS,
        MASKS * 255,
        MASKS.astype(bool),
        MASKS.astype(np.float32),
        MASKS[:, :, None] * 255,  # [B, E, 1, H, W] as stored by the official pipeline
        MASKS[..., None],  # [B, E, H, W, 1]
        torch.from_numpy(MASKS * 255),
    ],
    ids=["01", "0-255", "bool", "float", "BE1HW", "BEHW1", "torch"],
)
def test_entity_masks_give_max_index_labels(masks):
    # Pixel (0, 2) has entities 1 and 2 set: the higher index wins, as in the official code.
    np.testing.assert_array_equal(true_labels(masks), LABELS)


def test_pixels_without_any_mask_are_background():
    masks = np.zeros((1, 3, 2, 3), dtype=np.uint8)
    masks[0, 2, 1, 1] = 255
    expected = np.zeros((1, 2, 3), dtype=np.int64)
    expected[0, 1, 1] = 2
    np.testing.assert_array_equal(true_labels(masks), expected)


def test_label_maps_pass_through_and_accept_integral_floats():
    np.testing.assert_array_equal(true_labels(LABELS.astype(np.float64)), LABELS)
    np.testing.assert_array_equal(pred_labels(torch.from_numpy(LABELS)), LABELS)


def test_pred_scores_are_argmaxed_over_slots_in_every_layout():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 4, 3, 5)).astype(np.float32)
    expected = logits.argmax(axis=1)
    log_probs = torch.log_softmax(torch.from_numpy(logits), dim=1)
    for scores in (logits, log_probs, log_probs.exp(), logits[:, :, None], logits[..., None]):
        np.testing.assert_array_equal(pred_labels(scores), expected)


def test_minus_infinity_log_probs_are_valid():
    log_probs = np.array([[[[0.0, -np.inf]], [[-np.inf, 0.0]]]])  # [1, 2, 1, 2]: log(1), log(0)
    np.testing.assert_array_equal(pred_labels(log_probs), [[[0, 1]]])


def test_true_and_pred_shapes_must_agree():
    with pytest.raises(ValueError, match="resize predictions"):
        label_maps(LABELS, np.zeros((1, 2, 4, 6)))
    with pytest.raises(ValueError, match="same batch"):
        label_maps(LABELS, np.zeros((2, 2, 2, 3)))


@pytest.mark.parametrize("metric", [ari, segmentation_covering, mean_iou])
@pytest.mark.parametrize(
    ("true", "pred", "message"),
    [
        (MASKS * 128, LABELS, "binary"),
        (np.full((1, 3, 2, 3), np.nan), LABELS, "NaN"),
        (-LABELS, LABELS, "negative"),
        (LABELS + 0.5, LABELS, "non-integer"),
        (LABELS, np.full((1, 2, 2, 3), np.nan), "NaN"),
        (LABELS[0], LABELS[0], r"\[B, H, W\]"),
        (LABELS.tolist(), LABELS, "numpy array or a torch tensor"),
        (np.zeros((1, 3, 2, 2, 3)), LABELS, "singleton channel"),
        (np.zeros((1, 3, 0, 3)), LABELS, "empty axis"),
    ],
    ids=["128", "nan-mask", "negative", "fractional", "nan-score", "no-batch", "list", "5d", "0px"],
)
def test_bad_segmentations_raise_clear_errors(metric, true, pred, message):
    with pytest.raises(ValueError, match=message):
        metric(true, pred)
