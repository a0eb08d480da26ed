"""Checks of user input at the API boundary, with messages that name the fix."""

from __future__ import annotations

import operator
from collections.abc import Sequence

import torch
from pyro.infer.util import is_validation_enabled
from torch import Tensor


def check_images(
    images: Tensor, image_shape: Sequence[int] | None = None, *, check_values: bool | None = None
) -> None:
    """Raise ``ValueError`` unless ``images`` is a float batch ``[..., B, C, H, W]`` in ``[0, 1]``.

    Args:
        images: the batch to check.
        image_shape: expected ``(C, H, W)``, or ``None`` to accept any size.
        check_values: also check finiteness and range (a device sync on GPU). ``None`` follows
            Pyro's validation flag, so training loops with validation off pay nothing.
    """
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.dim() < 4:
        raise ValueError(
            f"images must have shape [B, C, H, W], got {tuple(images.shape)}; "
            "add a batch dimension with images.unsqueeze(0)"
        )
    if images.shape[-4] == 0 or images.numel() == 0:
        raise ValueError(f"images is an empty batch {tuple(images.shape)}; pass at least one image")
    if not images.is_floating_point():
        raise ValueError(
            f"images must be floating point in [0, 1], got dtype {images.dtype}; "
            "convert uint8 images with images.float() / 255"
        )
    if image_shape is not None and tuple(images.shape[-3:]) != tuple(image_shape):
        c, h, w = image_shape
        got = tuple(images.shape[-3:])
        if got[0] != c and got[-1] == c:
            hint = "; the channel axis looks last: use images.permute(0, 3, 1, 2)"
        else:
            hint = "; resize the images or build the model for this size"
        raise ValueError(f"images must be [B, {c}, {h}, {w}], got {tuple(images.shape)}{hint}")
    if check_values is None:
        check_values = is_validation_enabled()
    if check_values:
        if not bool(torch.isfinite(images).all()):
            raise ValueError("images contain NaN or infinite values")
        lo, hi = float(images.min()), float(images.max())
        if lo < 0 or hi > 1:
            raise ValueError(
                f"images must lie in [0, 1], got values in [{lo:.3g}, {hi:.3g}]; "
                "map [-1, 1] images with (x + 1) / 2 and uint8 images with x / 255"
            )


def check_num_slots(num_slots: int) -> int:
    """``num_slots`` as an ``int``; ``ValueError`` unless it is an integer >= 1.

    Integer-like values (``numpy.int64``) are accepted; ``bool`` and floats are not.
    """
    try:
        if isinstance(num_slots, bool):
            raise TypeError
        value = operator.index(num_slots)
    except TypeError:
        value = None
    if value is None or value < 1:
        raise ValueError(f"the number of slots K must be an integer >= 1, got {num_slots!r}")
    return value


def check_dtype(images: Tensor, parameter: Tensor) -> None:
    """Raise ``ValueError`` if ``images`` and the model's parameters differ in dtype."""
    if images.dtype != parameter.dtype:
        raise ValueError(
            f"images are {images.dtype} but the model's parameters are {parameter.dtype}; "
            f"convert one of them (images.to({parameter.dtype}) or model.to({images.dtype}))"
        )
