"""CLEVR (with masks) preprocessing as the official code does it, and the CLEVR6/10 object filter.

The official loader crops rows 29:221 and columns 64:256 of the 240x320 image (a 192x192 box),
then resizes the image with PIL's bicubic filter to 96x96 ("clevr-small") or 128x128
("clevr-large"). It crops the masks the same way and does not resize them; resizing masks, when
asked for, uses nearest-neighbour sampling so they stay 0/255.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

FULL_SIZE = (240, 320)
CROP_ROWS = (29, 221)
CROP_COLS = (64, 256)
CROP_SIZE = 192
STYLES = {"clevr-small": 96, "clevr-large": 128}


def crop(arr: np.ndarray) -> np.ndarray:
    """Crop the official 192x192 box out of 240x320 arrays.

    Args:
        arr: Array [..., 240, 320, C].

    Returns:
        View [..., 192, 192, C].

    Raises:
        ValueError: If the spatial size is not 240x320.
    """
    if arr.shape[-3:-1] != FULL_SIZE:
        raise ValueError(
            f"the CLEVR crop needs 240x320 images, got {arr.shape[-3]}x{arr.shape[-2]}; "
            "was the data already cropped or resized?"
        )
    return arr[..., CROP_ROWS[0] : CROP_ROWS[1], CROP_COLS[0] : CROP_COLS[1], :]


def resize_image(img: np.ndarray, size: int) -> np.ndarray:
    """Resize an RGB image with PIL's bicubic filter, as the official loader does.

    Args:
        img: uint8 [H, W, 3].
        size: Output side length.

    Returns:
        uint8 [size, size, 3].
    """
    pil = Image.fromarray(np.ascontiguousarray(img))
    return np.asarray(pil.resize((size, size), resample=Image.Resampling.BICUBIC))


def resize_masks_nearest(masks: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize of masks, sampling at pixel centres like PIL's NEAREST filter.

    Args:
        masks: Array [..., H, W, 1] (any dtype).
        size: Output side length.

    Returns:
        Array [..., size, size, 1] of the same dtype.
    """
    h, w = masks.shape[-3], masks.shape[-2]
    rows = ((np.arange(size) + 0.5) * h / size).astype(np.int64)
    cols = ((np.arange(size) + 0.5) * w / size).astype(np.int64)
    return masks[..., rows[:, None], cols[None, :], :]


def preprocess(
    img: np.ndarray, masks: np.ndarray | None, size: int, resize_masks: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Crop and resize one CLEVR image and (optionally) its masks.

    Args:
        img: uint8 [240, 320, 3].
        masks: [E, 240, 320, 1] or ``None``.
        size: Image side after resizing (96 or 128 in the paper).
        resize_masks: Resize the cropped masks to ``size`` too (nearest neighbour); otherwise
            they stay 192x192 as in the official loader.

    Returns:
        The image [size, size, 3] and the masks [E, size or 192, size or 192, 1] (or ``None``).
    """
    out_img = resize_image(crop(img), size)
    if masks is None:
        return out_img, None
    out_masks = crop(masks)
    if resize_masks:
        out_masks = resize_masks_nearest(out_masks, size)
    return out_img, out_masks


def visible_entities(visibility: np.ndarray) -> int:
    """Number of visible entities, background included (the background is always visible).

    The paper's CLEVR6 keeps images with at most 6 objects, i.e. ``visible_entities <= 7``.

    Args:
        visibility: Per-entity visibility [E] with values 0/1.

    Returns:
        The sum of ``visibility``.
    """
    return int(np.rint(visibility.sum()))
