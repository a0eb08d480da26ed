"""The fixed four-channel position grid shared by the encoder and the decoders."""

from __future__ import annotations

import torch
from torch import Tensor


def position_grid(
    height: int, width: int, device: torch.device | None = None, dtype: torch.dtype | None = None
) -> Tensor:
    """Linear ramps towards the four image borders.

    Channel order is ``[1 - row, row, col, 1 - col]`` with ``row, col`` running from 0 to 1
    inclusive (the official ``create_positional_embedding``; only its projection is learned).

    Args:
        height: grid rows ``H``.
        width: grid columns ``W``.
        device: device of the result.
        dtype: dtype of the result.

    Returns:
        Tensor ``[H, W, 4]``.
    """
    row = torch.linspace(0, 1, height, device=device, dtype=dtype).view(height, 1).expand(-1, width)
    col = torch.linspace(0, 1, width, device=device, dtype=dtype).view(1, width).expand(height, -1)
    return torch.stack([1 - row, row, col, 1 - col], dim=-1)
