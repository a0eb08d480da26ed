"""The conditional Gaussian network of the hierarchical prior."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from pyro_emorl.nn.init import official_init_


class ConditionalGaussian(nn.Module):
    """``z -> Linear -> ELU -> (loc, raw_scale)``, applied to every slot independently.

    Args:
        z_dim: latent width ``D`` (input and output).
        hidden: hidden width (128 in the paper).
    """

    def __init__(self, z_dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.hidden = nn.Linear(z_dim, hidden)
        self.loc = nn.Linear(hidden, z_dim)
        self.raw_scale = nn.Linear(hidden, z_dim)
        official_init_(self)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """``(loc, raw_scale)``, each ``[..., D]``, of ``p(z' | z)`` for ``z [..., D]``."""
        h = F.elu(self.hidden(z))
        return self.loc(h), self.raw_scale(h)
