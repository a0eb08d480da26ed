"""How a raw network output becomes a Gaussian standard deviation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

#: Raw values are clamped here before the softplus (as the official code does).
RAW_SCALE_MAX = 80.0
#: Variance floor added *outside* the softplus (official code; the paper puts it inside the log).
VARIANCE_FLOOR = 1e-5


def raw_to_scale(raw: Tensor) -> Tensor:
    """Standard deviation ``sqrt(softplus(min(raw, 80)) + 1e-5)``, elementwise.

    Args:
        raw: pre-softplus variance parameter, any shape.

    Returns:
        The standard deviation, same shape as ``raw``.
    """
    return torch.sqrt(F.softplus(raw.clamp(max=RAW_SCALE_MAX)) + VARIANCE_FLOOR)
