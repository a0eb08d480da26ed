"""One iteration of the Slot Attention module (Locatello et al. 2020), as the official
EfficientMORL code's Slot Attention baseline has it."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pyro_emorl.nn.init import default_init_
from pyro_emorl.nn.slot_attention import SlotAttentionStep


class SlotAttentionIteration(nn.Module):
    """``slots -> attention update -> GRU -> slots + MLP(LayerNorm(slots))``.

    The attention is [SlotAttentionStep][pyro_emorl.nn.SlotAttentionStep] (softmax over slots,
    ``+ 1e-8``, normalised over pixels); the recurrence is a standard GRU cell whose input is the
    attention update and whose state is the previous slots; the residual MLP is
    ``Linear(D, hidden) -> ReLU -> Linear(hidden, D)`` after a LayerNorm. Every layer keeps
    PyTorch's default initialisation, as in the official baseline.

    Args:
        z_dim: slot width ``D``.
        feature_dim: width of the encoder features.
        hidden: width of the residual MLP (128 in the official code, whatever ``D``).
    """

    def __init__(self, z_dim: int, feature_dim: int = 64, hidden: int = 128) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.attention = default_init_(SlotAttentionStep(z_dim, feature_dim))
        self.gru = nn.GRUCell(z_dim, z_dim)
        self.norm_pre_ff = nn.LayerNorm(z_dim)
        self.mlp = nn.Sequential(nn.Linear(z_dim, hidden), nn.ReLU(), nn.Linear(hidden, z_dim))

    def forward(self, slots: Tensor, keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        """One iteration.

        Args:
            slots: ``[..., K, D]``.
            keys: attention keys ``[..., N, D]`` (from ``self.attention.keys_values``).
            values: attention values ``[..., N, D]``.

        Returns:
            ``(slots, attention)``: the new slots ``[..., K, D]`` (leading dims broadcast) and the
            attention ``[..., K, N]`` (softmax over slots plus 1e-8, before the normalisation
            over pixels).
        """
        updates, attention = self.attention(slots, keys, values)
        shape = torch.broadcast_shapes(updates.shape, slots.shape)
        d = self.z_dim
        state = self.gru(
            updates.expand(shape).reshape(-1, d), slots.expand(shape).reshape(-1, d)
        ).reshape(shape)
        return state + self.mlp(self.norm_pre_ff(state)), attention
