"""One step of scaled dot-product set attention (Slot Attention's competition over pixels)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pyro_emorl.nn.init import official_init_

#: Added to the attention after the softmax over slots (official constant).
ATTENTION_EPS = 1e-8


class SlotAttentionStep(nn.Module):
    """Slots attend to pixel features; the softmax runs over slots, so slots compete for pixels.

    Args:
        z_dim: slot width ``D``.
        feature_dim: width of the encoder features.
    """

    def __init__(self, z_dim: int, feature_dim: int = 64) -> None:
        super().__init__()
        self.norm_slots = nn.LayerNorm(z_dim)
        self.to_q = nn.Linear(z_dim, z_dim, bias=False)
        self.to_k = nn.Linear(feature_dim, z_dim, bias=False)
        self.to_v = nn.Linear(feature_dim, z_dim, bias=False)
        self.scale = z_dim**-0.5
        official_init_(self)

    def keys_values(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values ``[..., N, D]`` from encoder features ``[..., N, F]``."""
        return self.to_k(features), self.to_v(features)

    def forward(self, slots: Tensor, keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        """Attend.

        Args:
            slots: ``[..., K, D]`` (broadcasts against the leading dims of ``keys``).
            keys: ``[..., N, D]``.
            values: ``[..., N, D]``.

        Returns:
            ``(updates, attention)``: the attention-weighted mean of the values ``[..., K, D]``,
            and the attention ``[..., K, N]`` (softmax over slots plus 1e-8, before the
            normalisation over pixels; what the paper's figures show).
        """
        q = self.to_q(self.norm_slots(slots)) * self.scale
        logits = q @ keys.transpose(-1, -2)
        attention = torch.softmax(logits, dim=-2) + ATTENTION_EPS
        weights = attention / attention.sum(dim=-1, keepdim=True)
        return weights @ values, attention
