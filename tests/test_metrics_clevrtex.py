"""The ClevrTex evaluator's count accuracy and DICE: hand-computed cases, the evaluator's own
code, and the evaluation protocol."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

import pyro_emorl as pe
from pyro_emorl.decompose import decompose
from pyro_emorl.evaluation import CLEVRTEX_METRICS, METRICS, evaluate, evaluate_batch
from pyro_emorl.metrics import count_accuracy, dice

# Case A (4x4): background rows 2-3 (8 px), object 1 rows 0-1 x cols 0-1, object 2 rows 0-1 x
# cols 2-3 (4 px each). Slot 0 is the background exactly, slot 1 covers both objects, slot 2 is
# empty. IoUs: bg-0 1, 1-1 = 2-1 = 4/8; the alignment pairs one object with slot 1 and the other
# with the empty slot 2 (either way). DICE: bg 2*8/16 = 1, matched object 2*4/(4+8) = 2/3, the
# other 0; 3 visible pairs -> DICE (1 + 2/3) / 3 = 5/9, DICE_FG (2/3) / 2 = 1/3. Counts: 3 vs 2.
TRUE_A = np.array([[[1, 1, 2, 2], [1, 1, 2, 2], [0, 0, 0, 0], [0, 0, 0, 0]]])
PRED_A = np.array([[[1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]]])

# Case B (4x4): object 1 rows 0-1 x cols 0-1 (4 px), background the rest (12 px). Slot 0 is
# the object, slot 1 rows 2-3 (8 px), slot 2 rows 0-1 x cols 2-3 (4 px). Ground truth padded to
# 3 masks. Alignment: bg-1 (IoU 8/12), 1-0 (1), padded empty mask-2. DICE: bg 2*8/(12+8) = 0.8,
# object 1, empty-vs-slot 2: 0 but visible -> DICE 1.8 / 3 = 0.6, DICE_FG 1 / 2. Counts 2 vs 3.
TRUE_B = np.array([[[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]])
PRED_B = np.array([[[0, 0, 2, 2], [0, 0, 2, 2], [1, 1, 1, 1], [1, 1, 1, 1]]])


def _one_hot(labels: np.ndarray, n: int) -> np.ndarray:
    """[B, H, W] labels -> [B, n, H, W] float one-hot scores."""
    return (labels[:, None] == np.arange(n)[None, :, None, None]).astype(np.float64)


def test_hand_computed_cases():
    for pred in (_one_hot(PRED_A, 3), torch.from_numpy(_one_hot(PRED_A, 3)).float()):
        np.testing.assert_allclose(dice(TRUE_A, pred), [5 / 9], rtol=1e-15)
        np.testing.assert_allclose(dice(TRUE_A, pred, exclude_background=True), [1 / 3])
        np.testing.assert_array_equal(count_accuracy(TRUE_A, pred), [0.0])
    pred_b = _one_hot(PRED_B, 3)
    np.testing.assert_allclose(dice(TRUE_B, pred_b), [0.6], rtol=1e-15)
    np.testing.assert_allclose(dice(TRUE_B, pred_b, exclude_background=True), [0.5])
    np.testing.assert_array_equal(count_accuracy(TRUE_B, pred_b), [0.0])
    # Relabelled slots (a permutation) and 0/255 entity masks [B, E, H, W, 1] give the same.
    masks = (_one_hot(TRUE_B, 2) * 255).astype(np.uint8)[..., None]
    np.testing.assert_allclose(dice(masks, pred_b[:, [2, 0, 1]]), [0.6], rtol=1e-15)
    # Perfect, and a right count with a wrong segmentation.
    np.testing.assert_array_equal(dice(TRUE_A, _one_hot(TRUE_A, 5)), [1.0])
    np.testing.assert_array_equal(dice(TRUE_A, TRUE_A + 4, exclude_background=True), [1.0])
    np.testing.assert_array_equal(count_accuracy(TRUE_A, _one_hot(TRUE_A, 5)), [1.0])
    shifted = np.roll(TRUE_A, 1, axis=2)
    np.testing.assert_array_equal(count_accuracy(TRUE_A, _one_hot(shifted, 3)), [1.0])
    assert dice(TRUE_A, _one_hot(shifted, 3))[0] < 1


def test_edge_cases_follow_the_evaluator_arithmetic():
    background = np.zeros((1, 4, 4), dtype=np.int64)
    np.testing.assert_array_equal(dice(background, _one_hot(background, 2)), [1.0])
    assert np.isnan(dice(background, _one_hot(background, 2), exclude_background=True)[0])
    # One object fills the image: its pair is the only visible one, so DICE_FG = 1 / 0.
    filled = np.zeros((1, 2, 4, 4))
    filled[:, 1] = 1
    np.testing.assert_array_equal(dice(filled, _one_hot(background, 2)), [1.0])
    assert dice(filled, _one_hot(background, 2), exclude_background=True)[0] == np.inf
    with pytest.raises(ValueError, match="relabel to 0..N-1"):
        dice(TRUE_A * 10_000, TRUE_A)


# ----------------------------------------------------------------------------------------------
# CLEVRTEX_Evaluator.update, ious_alignment and reindex of clevrtex_eval.py
# (github.com/karazijal/clevrtex-generation), cut down to the count accuracy and the DICE.


def _ious_alignment(pred_masks, true_masks):
    iou_matrix = torch.zeros(pred_masks.shape[0], pred_masks.shape[1], true_masks.shape[1])
    true_masks_sums = true_masks.sum((-1, -2, -3))
    pred_masks_sums = pred_masks.sum((-1, -2, -3))
    pred_masks = pred_masks.to(torch.bool)
    true_masks = true_masks.to(torch.bool)
    for pi in range(pred_masks.shape[1]):
        pandt = (pred_masks[:, pi : pi + 1] & true_masks).to(torch.float).sum((-1, -2, -3))
        port = (pred_masks[:, pi : pi + 1] | true_masks).to(torch.float).sum((-1, -2, -3))
        iou_matrix[:, pi] = pandt / port
        iou_matrix[pred_masks_sums[:, pi] == 0.0, pi] = 0.0
    for ti in range(true_masks.shape[1]):
        iou_matrix[true_masks_sums[:, ti] == 0.0, :, ti] = 0.0
    iou_matrix = torch.nan_to_num(iou_matrix, nan=0.0, posinf=0.0, neginf=0.0)
    cost_matrix = iou_matrix.cpu().detach().numpy()
    pred_inds = np.zeros(pred_masks.shape[:2], dtype=int)
    for bi in range(cost_matrix.shape[0]):
        _, pred_ind = linear_sum_assignment(cost_matrix[bi].T, maximize=True)
        pred_inds[bi] = pred_ind
    return torch.from_numpy(pred_inds)


def _reindex(tensor, reindex_tensor, dim=1):
    alignment_index = reindex_tensor.view(
        *reindex_tensor.shape, *([1] * (tensor.dim() - reindex_tensor.dim()))
    )
    return torch.gather(tensor, dim, alignment_index.expand_as(tensor))


def evaluator(pred_masks, true_masks, shape):
    """(acc, DICE, DICE_FG) per image; pred_masks [B, K, 1, H, W], true_masks [B, 1, H, W]
    labels or [B, E, H, W] masks, ``shape`` the images' (B, C, H, W)."""
    pred_masks = pred_masks.view(shape[0], -1, 1, *shape[-2:])
    k = pred_masks.shape[1]
    pred_masks = pred_masks.argmax(dim=1)
    pred_masks = (pred_masks.unsqueeze(1) == torch.arange(k).view(1, -1, 1, 1, 1)).to(torch.float)
    if len(true_masks.shape) == 4:
        if true_masks.shape[1] == 1:
            n = max(true_masks.max() + 1, pred_masks.shape[1])
            true_masks = (true_masks.unsqueeze(1) == torch.arange(n).view(1, -1, 1, 1, 1)).to(
                torch.float32
            )
        else:
            true_masks = true_masks.unsqueeze(2)
    true_masks = true_masks.view(shape[0], -1, 1, *shape[-2:])
    k = max(true_masks.shape[1], pred_masks.shape[1])
    if true_masks.shape[1] < k:
        pad = true_masks.new_zeros(true_masks.shape[0], k - true_masks.shape[1], 1, *shape[-2:])
        true_masks = torch.cat([true_masks, pad], dim=1)
    if pred_masks.shape[1] < k:
        pad = pred_masks.new_zeros(pred_masks.shape[0], k - pred_masks.shape[1], 1, *shape[-2:])
        pred_masks = torch.cat([pred_masks, pad], dim=1)
    pred_count = (pred_masks >= 0.5).any(-1).any(-1).any(-1).to(torch.float).sum(-1)
    true_count = (true_masks >= 0.5).any(-1).any(-1).any(-1).to(torch.float).sum(-1)
    accuracy = (true_count == pred_count).to(torch.float)
    pred_masks = _reindex(pred_masks, _ious_alignment(pred_masks, true_masks), dim=1)
    truem = true_masks.any(-1).any(-1).any(-1)
    predm = pred_masks.any(-1).any(-1).any(-1)
    num_pairs = (truem | predm).to(torch.float).sum(-1)
    dices = (
        2
        * (pred_masks * true_masks).sum((-3, -2, -1))
        / (pred_masks.sum((-3, -2, -1)) + true_masks.sum((-3, -2, -1)))
    )
    dices = torch.nan_to_num(dices, nan=0.0, posinf=0.0)
    return accuracy, dices.sum(-1) / num_pairs, dices[:, 1:].sum(-1) / (num_pairs - 1)


# ----------------------------------------------------------------------------------------------


def _scenes(seed: int, entities: int, slots: int, batch: int = 6, size: int = 16):
    """Blocky ground truth and logits that follow it loosely, with coarse slot blocks (so that
    some slots lose every pixel, some objects share a slot, and the alignment has ties)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, entities, size=(batch, size // 4, size // 4)).repeat(4, 1).repeat(4, 2)
    block = rng.integers(0, slots, size=(batch, size // 8, size // 8)).repeat(8, 1).repeat(8, 2)
    logits = rng.normal(size=(batch, slots, size, size)).astype(np.float32)
    logits += 3.0 * (block[:, None] == np.arange(slots)[None, :, None, None])
    logits += 1.5 * (labels[:, None] % slots == np.arange(slots)[None, :, None, None])
    return labels, logits


@pytest.mark.parametrize(("entities", "slots"), [(3, 3), (4, 7), (11, 11), (7, 4), (2, 11)])
@pytest.mark.parametrize("seed", range(4))
def test_agrees_with_the_clevrtex_evaluator(seed, entities, slots):
    labels, logits = _scenes(seed, entities, slots)
    pred = torch.from_numpy(logits)[:, :, None]  # [B, K, 1, H, W] as EfficientMORL passes them
    shape = (labels.shape[0], 3, *labels.shape[1:])
    masks = _one_hot(labels, entities)
    for true_theirs, true_ours in [
        (torch.from_numpy(labels)[:, None], labels),  # label maps [B, 1, H, W] / [B, H, W]
        (torch.from_numpy(masks).float(), masks),  # entity masks [B, E, H, W]
    ]:
        acc, dice_all, dice_fg = evaluator(pred, true_theirs, shape)
        np.testing.assert_array_equal(count_accuracy(true_ours, pred), acc.numpy())
        np.testing.assert_allclose(dice(true_ours, pred), dice_all.numpy(), rtol=1e-6)
        np.testing.assert_allclose(
            dice(true_ours, pred, exclude_background=True), dice_fg.numpy(), rtol=1e-6
        )


def test_evaluation_reports_the_clevrtex_metrics_on_request():
    config = pe.EMORLConfig(
        image_shape=(3, 12, 12), num_slots=3, z_dim=8, num_layers=2, decoder="small"
    )
    torch.manual_seed(3)
    model, guide = pe.build(config)
    images = torch.rand(3, 3, 12, 12)
    labels = torch.zeros(3, 12, 12, dtype=torch.long)
    labels[:, 1:5, 1:5], labels[:, 6:11, 5:11] = 1, 2
    masks = torch.nn.functional.one_hot(labels, 3).permute(0, 3, 1, 2)[:, :, None].float()
    torch.manual_seed(0)
    values = evaluate_batch(model, guide, images, masks, num_steps=1, clevrtex=True)
    torch.manual_seed(0)
    out = decompose(model, guide, images, num_steps=1, decode_layers=False)
    assert list(values) == [*METRICS, *CLEVRTEX_METRICS]
    pred = out.final.masks
    np.testing.assert_array_equal(values["count_acc"], count_accuracy(masks, pred))
    np.testing.assert_array_equal(values["dice"], dice(masks, pred))
    np.testing.assert_array_equal(values["dice_fg"], dice(masks, pred, exclude_background=True))
    batches = [{"imgs": images, "masks": masks}]
    assert list(evaluate(model, guide, batches, num_steps=1).per_image) == list(METRICS)
    result = evaluate(model, guide, batches, num_steps=1, clevrtex=True)
    assert list(result.per_image) == [*METRICS, *CLEVRTEX_METRICS]
    rows = result.table().splitlines()
    assert rows[-3].startswith("count_acc ") and len({len(row) for row in rows}) == 1
