"""The refinement network of iterative amortized inference."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyro_emorl.nn.init import official_init_


class RefinementNetwork(nn.Module):
    """Proposes an additive update of the top-layer posterior parameters from their gradient.

    Input per slot is ``[loc, raw_scale, LN(grad_loc), LN(grad_raw_scale)]`` with non-affine
    LayerNorms on the two gradient halves only and the result detached (official code); then
    ``Linear(4D, 128) -> ELU -> Linear(128, D) -> GRU cell -> (Linear, Linear)``. Both outputs are
    plain linear deltas.

    Args:
        z_dim: latent width ``D``.
        hidden: MLP width (128 in the paper).
    """

    def __init__(self, z_dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.encoding = nn.Sequential(
            nn.Linear(4 * z_dim, hidden), nn.ELU(), nn.Linear(hidden, z_dim)
        )
        self.recurrence = nn.GRUCell(z_dim, z_dim)
        self.loc = nn.Linear(z_dim, z_dim)
        self.raw_scale = nn.Linear(z_dim, z_dim)
        official_init_(self.encoding)
        official_init_(self.loc)
        official_init_(self.raw_scale)

    def forward(
        self,
        loc: Tensor,
        raw_scale: Tensor,
        grad_loc: Tensor,
        grad_raw_scale: Tensor,
        hidden: Tensor | None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One refinement step.

        Args:
            loc: posterior mean ``[..., K, D]``.
            raw_scale: raw posterior scale ``[..., K, D]``.
            grad_loc: gradient of the objective w.r.t. ``loc``, same shape.
            grad_raw_scale: gradient w.r.t. ``raw_scale``, same shape.
            hidden: GRU state ``[..., K, D]``, or ``None`` for zeros (first step).

        Returns:
            ``(delta_loc, delta_raw_scale, hidden)``, each ``[..., K, D]``.
        """
        d = self.z_dim
        g_loc = F.layer_norm(grad_loc, (d,)).detach()
        g_raw = F.layer_norm(grad_raw_scale, (d,)).detach()
        e = self.encoding(torch.cat([loc, raw_scale, g_loc, g_raw], dim=-1))
        shape = e.shape
        if hidden is None:
            hidden = torch.zeros_like(e)
        hidden = self.recurrence(e.reshape(-1, d), hidden.reshape(-1, d)).reshape(shape)
        return self.loc(hidden), self.raw_scale(hidden), hidden
