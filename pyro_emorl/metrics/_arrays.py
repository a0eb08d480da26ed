"""Conversion of torch tensors / numpy arrays into validated numpy arrays.

Every public metric accepts either type; this module is the single place that turns them into
numpy so that all later arithmetic happens in numpy float64 (or int64 for counts).
"""

from __future__ import annotations

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor
"""A numpy array or a torch tensor (any device; it is copied to the CPU)."""


def require_array(x: object, name: str) -> None:
    """Raise unless ``x`` is a numpy array or a torch tensor.

    Args:
        x: The object to check.
        name: Argument name used in error messages.

    Raises:
        ValueError: If ``x`` is of another type (e.g. a list).
    """
    if not isinstance(x, np.ndarray | torch.Tensor):
        raise ValueError(
            f"{name} must be a numpy array or a torch tensor, got {type(x).__name__}; "
            "wrap it with np.asarray(...)."
        )


def to_numpy(x: ArrayLike, name: str) -> np.ndarray:
    """Return ``x`` as a numpy array with its dtype kept (bfloat16 becomes float32).

    Args:
        x: A numpy array or torch tensor of any shape. Tensors are detached and copied to the CPU.
        name: Argument name used in error messages.

    Returns:
        The numpy array (a view of ``x`` when no copy was needed).

    Raises:
        ValueError: If ``x`` is neither a numpy array nor a torch tensor, or is not real numeric
            or bool.
    """
    require_array(x, name)
    if isinstance(x, torch.Tensor):
        t = x.detach()
        # numpy has no bfloat16; float32 holds every bfloat16 value exactly.
        if t.dtype == torch.bfloat16:
            t = t.float()
        arr = t.cpu().numpy()
    else:
        arr = x
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise ValueError(f"{name} must be numeric or bool, got dtype {arr.dtype}.")
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} must be real-valued, got dtype {arr.dtype}.")
    return arr


def as_float64(x: ArrayLike, name: str) -> np.ndarray:
    """Return ``x`` as a finite float64 numpy array.

    Args:
        x: A numpy array or torch tensor of any shape.
        name: Argument name used in error messages.

    Returns:
        A float64 array with the shape of ``x``.

    Raises:
        ValueError: If ``x`` is not numeric, or contains NaN or infinite values.
    """
    arr = to_numpy(x, name).astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError(
            f"{name} contains NaN or infinite values; remove or replace them before computing "
            "the metric."
        )
    return arr
