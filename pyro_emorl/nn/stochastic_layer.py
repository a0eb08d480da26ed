"""One bottom-up stochastic layer of the hierarchical posterior (weights shared across layers)."""

from __future__ import annotations

from torch import Tensor, nn

from pyro_emorl.nn.dual_gru import DualGRUCell, ProjectedGRUCell
from pyro_emorl.nn.init import official_init_
from pyro_emorl.nn.slot_attention import SlotAttentionStep


def _residual_mlp(z_dim: int) -> nn.Sequential:
    return official_init_(
        nn.Sequential(nn.Linear(z_dim, 2 * z_dim), nn.ReLU(), nn.Linear(2 * z_dim, z_dim))
    )


class BottomUpLayer(nn.Module):
    """Maps the previous layer's sample to the next layer's posterior parameters.

    ``z -> slot attention -> (Dual)GRU on (loc, raw_scale) -> pre-LayerNorm residual MLPs``.

    Args:
        z_dim: latent width ``D``.
        feature_dim: width of the encoder features.
        dual_gru: the DualGRU (default) or the plain-GRU ablation.
    """

    def __init__(self, z_dim: int, feature_dim: int = 64, dual_gru: bool = True) -> None:
        super().__init__()
        self.attention = SlotAttentionStep(z_dim, feature_dim)
        self.recurrence = (DualGRUCell if dual_gru else ProjectedGRUCell)(z_dim, z_dim)
        self.norm_loc = nn.LayerNorm(z_dim)
        self.mlp_loc = _residual_mlp(z_dim)
        self.norm_raw_scale = nn.LayerNorm(z_dim)
        self.mlp_raw_scale = _residual_mlp(z_dim)

    def forward(
        self, z: Tensor, loc: Tensor, raw_scale: Tensor, keys: Tensor, values: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One layer.

        Args:
            z: previous layer's sample ``[..., K, D]``.
            loc: previous posterior mean ``[..., K, D]``.
            raw_scale: previous raw scale ``[..., K, D]``.
            keys: attention keys ``[..., N, D]``.
            values: attention values ``[..., N, D]``.

        Returns:
            ``(loc, raw_scale, attention)`` with attention ``[..., K, N]``.
        """
        update, attention = self.attention(z, keys, values)
        loc, raw_scale = self.recurrence(update, loc, raw_scale)
        loc = loc + self.mlp_loc(self.norm_loc(loc))
        raw_scale = raw_scale + self.mlp_raw_scale(self.norm_raw_scale(raw_scale))
        return loc, raw_scale, attention
