"""Every segmentation metric ignores the order of the predicted slots and the input type."""

import numpy as np
import pytest
import torch

from pyro_emorl.metrics import ari, match_slots_to_objects, mean_iou, segmentation_covering

METRICS = {
    "fg-ari": lambda t, p: ari(t, p),
    "ari": lambda t, p: ari(t, p, exclude_background=False),
    "sc": lambda t, p: segmentation_covering(t, p),
    "msc": lambda t, p: segmentation_covering(t, p, mean=True),
    "sc-bg": lambda t, p: segmentation_covering(t, p, exclude_background=False),
    "miou": lambda t, p: mean_iou(t, p),
    "miou-bg": lambda t, p: mean_iou(t, p, exclude_background=False),
}


def _scene(seed, batch=6, entities=5, slots=7, size=24):
    """0/255 masks [B, E, 1, H, W] and tie-free logits [B, K, H, W] loosely following them."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, entities, size=(batch, size // 4, size // 4)).repeat(4, 1).repeat(4, 2)
    masks = (np.arange(entities)[None, :, None, None] == labels[:, None]).astype(np.uint8) * 255
    logits = rng.normal(size=(batch, slots, size, size))
    logits += 2.0 * (labels[:, None] == np.arange(slots)[None, :, None, None])
    return masks[:, :, None], logits


@pytest.mark.parametrize("name", METRICS)
def test_permuting_slots_leaves_metrics_unchanged(name):
    masks, logits = _scene(0)
    perm = np.random.default_rng(1).permutation(logits.shape[1])
    metric = METRICS[name]
    original = metric(masks, logits)
    assert not np.isnan(original).any()
    np.testing.assert_array_equal(metric(masks, logits[:, perm]), original)


def test_permuting_slots_permutes_matched_slot_ids_only():
    masks, logits = _scene(2)
    perm = np.random.default_rng(3).permutation(logits.shape[1])
    original = match_slots_to_objects(masks, logits, min_object_pixels=1, min_iou=0.0)
    permuted = match_slots_to_objects(masks, logits[:, perm], min_object_pixels=1, min_iou=0.0)
    # New slot j is old slot perm[j].
    for a, b in zip(original, permuted):
        np.testing.assert_array_equal(a.object_ids, b.object_ids)
        np.testing.assert_array_equal(a.ious, b.ious)
        np.testing.assert_array_equal(a.slot_ids, perm[b.slot_ids])


@pytest.mark.parametrize("name", METRICS)
def test_torch_and_numpy_inputs_agree(name):
    masks, logits = _scene(4)
    metric = METRICS[name]
    as_torch = metric(torch.from_numpy(masks), torch.from_numpy(logits).float())
    np.testing.assert_array_equal(as_torch, metric(masks, logits.astype(np.float32)))
    assert as_torch.dtype == np.float64


@pytest.mark.parametrize("name", METRICS)
def test_large_label_values_give_the_same_scores(name):
    # Labels above 2**20 take the sorting (np.unique) relabelling path instead of bincount.
    masks, logits = _scene(5)
    true = masks[:, :, 0].argmax(axis=1)
    pred = logits.argmax(axis=1)
    big_true = np.where(true > 0, true * 10**9 + 7, 0)  # background must stay 0
    big_pred = pred * 10**9 + 3
    metric = METRICS[name]
    np.testing.assert_array_equal(metric(big_true, big_pred), metric(true, pred))
