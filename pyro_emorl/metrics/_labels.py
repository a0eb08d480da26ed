"""Normalisation of ground-truth and predicted segmentations into integer label maps.

Every segmentation metric (ARI, segmentation covering, mean IoU, slot matching) reads its inputs
through `label_maps`, so they all interpret masks identically.

Ground truth (``true``) may be given as

* a label map ``[B, H, W]`` of non-negative integers (integral floats and bool are accepted),
  0 being the background; or
* entity masks ``[B, E, H, W]``, ``[B, E, H, W, 1]`` or ``[B, E, 1, H, W]``, binary with values in
  ``{0, 1}`` (or bool) or in ``{0, 255}`` (the uint8 encoding of the Multi-Object Datasets).
  Entity 0 is the background. As in the official code, a pixel gets the *largest* entity index
  whose mask is set there (overlaps resolve to the higher index) and 0 where no mask is set.

Predictions (``pred``) may be given as

* a label map ``[B, H, W]`` as above (0 is an ordinary slot label there, not background); or
* per-slot scores ``[B, K, H, W]``, ``[B, K, H, W, 1]`` or ``[B, K, 1, H, W]``: probabilities,
  log-probabilities or logits (``-inf`` allowed, NaN rejected). Each pixel gets the slot with the
  largest score; ties go to the lowest slot index, so a pixel where binary predicted masks are all
  0 goes to slot 0.

For 5-d inputs the singleton channel axis is taken to be the last one when it has size 1,
otherwise axis 2. No resizing is done: predictions must already have the ground-truth resolution
(the official CLEVR evaluation resizes 96x96 predicted masks bicubically to 192x192 first).
"""

from __future__ import annotations

import numpy as np
import torch

from pyro_emorl.metrics._arrays import ArrayLike, require_array, to_numpy


def _drop_channel_axis(x: ArrayLike, name: str) -> ArrayLike:
    """Turn ``[B, N, H, W, 1]`` / ``[B, N, 1, H, W]`` into ``[B, N, H, W]``; pass 4-d through."""
    if x.ndim == 4:
        return x
    if x.shape[4] == 1:
        return x[..., 0]
    if x.shape[2] == 1:
        return x[:, :, 0]
    raise ValueError(
        f"{name} has shape {tuple(x.shape)}: a 5-d input needs a singleton channel axis, "
        "[B, N, H, W, 1] or [B, N, 1, H, W]; select one channel first."
    )


def _check_rank(x: ArrayLike, name: str, what: str) -> None:
    """Raise unless ``x`` is an array, 3-d, 4-d or 5-d, with at least one image and one pixel."""
    require_array(x, name)
    if x.ndim not in (3, 4, 5):
        raise ValueError(
            f"{name} has shape {tuple(x.shape)}; expected a label map [B, H, W] or {what} "
            "[B, N, H, W] (or [B, N, H, W, 1] / [B, N, 1, H, W]). Add a batch axis to a single "
            "image."
        )
    if 0 in tuple(x.shape):
        raise ValueError(f"{name} has shape {tuple(x.shape)}; it must not have an empty axis.")


def _label_map(arr: np.ndarray, name: str) -> np.ndarray:
    """Validate a ``[B, H, W]`` label map and return it as int64."""
    if np.issubdtype(arr.dtype, np.floating):
        if np.isnan(arr).any():
            raise ValueError(f"{name} is a label map containing NaN; labels must be integers.")
        if not (np.isfinite(arr).all() and (arr == np.round(arr)).all()):
            raise ValueError(
                f"{name} is a [B, H, W] label map with non-integer values; pass integer labels "
                "or, for soft masks, a [B, K, H, W] array."
            )
    if (arr < 0).any():
        raise ValueError(f"{name} label map has negative labels; labels must be >= 0.")
    return arr.astype(np.int64, copy=False)


def _masks_to_labels(masks: np.ndarray, name: str) -> np.ndarray:
    """Turn binary entity masks ``[B, E, H, W]`` into a ``[B, H, W]`` int64 label map."""
    if masks.dtype == np.bool_:
        is_set = masks
    else:
        if np.issubdtype(masks.dtype, np.floating) and np.isnan(masks).any():
            raise ValueError(f"{name} masks contain NaN; ground-truth masks must be binary.")
        # Decide the encoding from the data: any value above 1 means the 0/255 uint8 encoding.
        on_value = 255 if masks.max() > 1 else 1
        is_set = masks == on_value
        if not (is_set | (masks == 0)).all():
            top = masks.max()
            hint = (
                " They look like 0/1 masks divided by 255: pass them undivided."
                if on_value == 1 and 0 < top <= 1 / 255 + 1e-6
                else " Threshold soft masks first, or pass a [B, H, W] label map."
            )
            raise ValueError(
                f"{name} masks must be binary, all values in {{0, 1}} or all in {{0, 255}}; "
                f"found other values (max {top:.4g}).{hint}"
            )
    labels = np.zeros(masks.shape[:1] + masks.shape[2:], dtype=np.int64)
    # Ascending entity order so that a later (higher) index overwrites: label = max set index.
    for entity in range(1, masks.shape[1]):
        labels[is_set[:, entity]] = entity
    return labels


def blank_images(true: ArrayLike) -> np.ndarray:
    """bool ``[B]``: True for an image whose ground-truth entity masks are all zero (no pixel
    belongs to any entity, not even the background). Always False for a label map, where
    every pixel has a label. ``true`` is assumed valid (see `true_labels`)."""
    if true.ndim == 3:
        return np.zeros(true.shape[0], dtype=bool)
    masks = to_numpy(_drop_channel_axis(true, "true"), "true")
    return ~(masks != 0).reshape(masks.shape[0], -1).any(axis=1)


def true_labels(true: ArrayLike, name: str = "true") -> np.ndarray:
    """Ground-truth label map from a label map or entity masks (see module docstring).

    Args:
        true: ``[B, H, W]`` label map or ``[B, E, H, W]`` (``[B, E, H, W, 1]``,
            ``[B, E, 1, H, W]``) binary entity masks, entity 0 being the background.
        name: Argument name used in error messages.

    Returns:
        int64 array ``[B, H, W]``; 0 marks background pixels.

    Raises:
        ValueError: On a wrong rank, an empty axis, NaN, negative or non-integer labels, or
            non-binary masks.
    """
    _check_rank(true, name, "binary entity masks")
    if true.ndim == 3:
        return _label_map(to_numpy(true, name), name)
    masks = to_numpy(_drop_channel_axis(true, name), name)
    return _masks_to_labels(masks, name)


def pred_labels(pred: ArrayLike, name: str = "pred") -> np.ndarray:
    """Predicted label map from a label map or per-slot scores (see module docstring).

    Args:
        pred: ``[B, H, W]`` label map or ``[B, K, H, W]`` (``[B, K, H, W, 1]``,
            ``[B, K, 1, H, W]``) per-slot probabilities / log-probabilities / logits.
        name: Argument name used in error messages.

    Returns:
        int64 array ``[B, H, W]`` of slot indices (or the given labels).

    Raises:
        ValueError: On a wrong rank, an empty axis, NaN scores, or negative / non-integer labels.
    """
    _check_rank(pred, name, "per-slot scores")
    if pred.ndim == 3:
        return _label_map(to_numpy(pred, name), name)
    scores = _drop_channel_axis(pred, name)
    # The argmax is taken in the input dtype (on the input's device for tensors): widening to
    # float64 is exact and monotone, so it could not change the result, only cost memory.
    if isinstance(scores, torch.Tensor):
        scores = scores.detach()
        if scores.dtype == torch.bool:
            scores = scores.to(torch.uint8)
        if scores.is_floating_point() and torch.isnan(scores).any():
            raise ValueError(f"{name} scores contain NaN; fix the model output first.")
        return to_numpy(scores.argmax(dim=1), name).astype(np.int64, copy=False)
    scores = to_numpy(scores, name)
    if np.issubdtype(scores.dtype, np.floating) and np.isnan(scores).any():
        raise ValueError(f"{name} scores contain NaN; fix the model output first.")
    return scores.argmax(axis=1).astype(np.int64, copy=False)


def label_maps(true: ArrayLike, pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth and predicted label maps of matching shape.

    Args:
        true: Ground truth, see `true_labels`.
        pred: Prediction, see `pred_labels`.

    Returns:
        ``(true_labels, pred_labels)``, both int64 ``[B, H, W]``.

    Raises:
        ValueError: If either input is invalid or their batch / spatial shapes differ.
    """
    t = true_labels(true, "true")
    p = pred_labels(pred, "pred")
    if t.shape != p.shape:
        raise ValueError(
            f"true gives label maps of shape {t.shape} [B, H, W] but pred gives {p.shape}; "
            "use the same batch and resize predictions to the ground-truth resolution."
        )
    return t, p
