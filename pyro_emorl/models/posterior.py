"""Posterior states that guides return: a diagonal Gaussian (with refinement state) and a point
mass. Both satisfy [Posterior][pyro_emorl.protocols.Posterior]."""

from __future__ import annotations

from typing import Any, NamedTuple

import pyro.distributions as dist
import torch
from torch import Tensor

from pyro_emorl.nn.parameterization import raw_to_scale


def gaussian(loc: Tensor, raw_scale: Tensor) -> dist.TorchDistribution:
    """Diagonal Gaussian ``N(loc, raw_to_scale(raw_scale))`` over the last dim."""
    return dist.Normal(loc, raw_to_scale(raw_scale)).to_event(1)


class GaussianPosterior(NamedTuple):
    """``q(z_L) = N(loc, raw_to_scale(raw_scale))``, with what refinement carries along.

    Attributes:
        loc: posterior mean ``[..., B, K, D]``.
        raw_scale: pre-softplus variance parameter ``[..., B, K, D]``.
        hidden: the refinement network's recurrent state (``None`` before the first step).
        prior: the prior of ``z_L`` at refinement steps (``None`` in the amortized step).
        attention: per bottom-up layer, attention ``[..., B, K, H*W]`` (softmax over slots).
    """

    loc: Tensor
    raw_scale: Tensor
    hidden: Any = None
    prior: dist.TorchDistribution | None = None
    attention: tuple[Tensor, ...] = ()

    @property
    def scale(self) -> Tensor:
        """Posterior standard deviation ``[..., B, K, D]``."""
        return raw_to_scale(self.raw_scale)

    def distribution(self) -> dist.TorchDistribution:
        """``N(loc, scale)`` over the last dim (batch ``[..., B, K]``, event ``(D,)``)."""
        return gaussian(self.loc, self.raw_scale)

    def with_prior(self, prior: dist.TorchDistribution) -> GaussianPosterior:
        """The same posterior carrying the refinement prior ``prior``."""
        return self._replace(prior=prior)


class PointPosterior(NamedTuple):
    """A point mass at ``loc`` (a deterministic encoder's slots).

    Attributes:
        loc: the slots ``[..., B, K, D]``.
        attention: per iteration, attention ``[..., B, K, H*W]``.
        prior: unused (point masses are not refined); kept for the protocol.
    """

    loc: Tensor
    attention: tuple[Tensor, ...] = ()
    prior: dist.TorchDistribution | None = None

    @property
    def scale(self) -> Tensor:
        """Zeros ``[..., B, K, D]``: a point mass has no spread."""
        return torch.zeros_like(self.loc)

    def with_prior(self, prior: dist.TorchDistribution) -> PointPosterior:
        """The same point mass carrying ``prior``."""
        return self._replace(prior=prior)
