"""Slot priors: Pyro sub-programs over the latent sites ``z_1 .. z_L``, registered by name.

Each satisfies [SlotPrior][pyro_emorl.protocols.SlotPrior]: called with the ``images`` (dim -2)
and ``slots`` (dim -1) plates, it samples ``z_1 .. z_L`` and returns ``z_L`` ``[..., B, K, D]``;
``refinement_prior(model_trace)`` gives the prior of ``z_L`` at refinement steps. Users write
their own in a few lines of Pyro and register them the same way (see the custom-prior tutorial).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, cast

import pyro
import pyro.distributions as dist
import torch
from pyro.poutine import Trace
from torch import Tensor, nn

from pyro_emorl.nn.conditional_gaussian import ConditionalGaussian
from pyro_emorl.nn.parameterization import raw_to_scale
from pyro_emorl.registry import register
from pyro_emorl.sites import INITIAL_SITE, latent_site


class LatentLayout(Protocol):
    """What the library's priors read of a model configuration."""

    @property
    def z_dim(self) -> int:
        """``D``."""
        ...

    @property
    def num_layers(self) -> int:
        """``L``."""
        ...


class StandardNormalPrior(nn.Module):
    """Every layer independently ``N(0, I)``.

    Args:
        z_dim: latent width ``D``.
        num_layers: number of stochastic layers ``L``.
    """

    # Buffers (registered in __init__).
    loc: Tensor
    scale: Tensor

    def __init__(self, z_dim: int, num_layers: int) -> None:
        super().__init__()
        self.num_layers = num_layers
        self.register_buffer("loc", torch.zeros(z_dim))
        self.register_buffer("scale", torch.ones(z_dim))

    def standard_normal(self) -> dist.TorchDistribution:
        """``N(0, I)`` over one slot (batch ``()``, event ``(D,)``), on the module's device."""
        return dist.Normal(self.loc, self.scale).to_event(1)

    def initial_sample(self, images: pyro.plate, slots: pyro.plate) -> Tensor:
        """With no stochastic layers (``L = 0``) the initial sample ``z_0`` is decoded itself;
        like the reference, its KL is not counted at the amortized step (both densities are
        masked), only the refinement steps' KL to ``N(0, I)``."""
        with images, slots:
            return pyro.sample(INITIAL_SITE, self.standard_normal().mask(False))

    def forward(self, images: pyro.plate, slots: pyro.plate) -> Tensor:
        """Sample ``z_1 .. z_L``; returns ``z_L`` ``[..., B, K, D]``."""
        if self.num_layers == 0:
            return self.initial_sample(images, slots)
        with images, slots:
            for layer in range(1, self.num_layers + 1):
                z = pyro.sample(latent_site(layer), self.standard_normal())
        return z

    def refinement_prior(self, model_trace: Trace) -> dist.TorchDistribution:
        """``N(0, I)``."""
        return self.standard_normal()


class HierarchicalPrior(StandardNormalPrior):
    """The hierarchical slot prior of EfficientMORL.

    ``order="reversed"`` (default): ``p(z_L) = N(0, I)`` and ``p(z_l | z_{l+1})`` for ``l < L``
    from one shared `ConditionalGaussian`. ``order="bottom_up"``:
    ``p(z_1) = N(0, I)`` and ``p(z_l | z_{l-1})``.

    ``refine_with_lowest_prior=True`` is the paper's *reversed prior++*: at refinement steps the
    top-layer posterior is compared with ``p(z_1 | z_2)`` from the amortized step (which pulls the
    lower layers towards the refined posterior). Otherwise refinement steps use ``N(0, I)``, as the
    official code does for the plain reversed and the bottom-up variants.

    Args:
        z_dim: latent width ``D``.
        num_layers: number of stochastic layers ``L``.
        order: ``"reversed"`` or ``"bottom_up"``.
        refine_with_lowest_prior: the "++" refinement prior (reversed order only).
        hidden: width of the conditional network.
    """

    def __init__(
        self,
        z_dim: int,
        num_layers: int,
        order: str = "reversed",
        refine_with_lowest_prior: bool = True,
        hidden: int = 128,
    ) -> None:
        super().__init__(z_dim, num_layers)
        if order not in ("reversed", "bottom_up"):
            raise ValueError(f"order must be 'reversed' or 'bottom_up', got {order!r}")
        if refine_with_lowest_prior and order != "reversed":
            raise ValueError("the '++' refinement prior needs order='reversed'")
        self.order = order
        self.refine_with_lowest_prior = refine_with_lowest_prior
        self.conditional = ConditionalGaussian(z_dim, hidden)

    def conditional_prior(self, z: Tensor) -> dist.TorchDistribution:
        """``p(z' | z)`` for ``z [..., K, D]``: batch ``[..., K]``, event ``(D,)``."""
        loc, raw_scale = self.conditional(z)
        return dist.Normal(loc, raw_to_scale(raw_scale)).to_event(1)

    def forward(self, images: pyro.plate, slots: pyro.plate) -> Tensor:
        """Sample every layer in generative order; returns ``z_L`` ``[..., B, K, D]``."""
        if self.num_layers == 0:
            return self.initial_sample(images, slots)
        ordered = range(1, self.num_layers + 1)
        layers: Iterable[int] = reversed(ordered) if self.order == "reversed" else ordered
        values: dict[int, Tensor] = {}
        with images, slots:
            for i, layer in enumerate(layers):
                if i == 0:
                    prior = self.standard_normal()
                else:
                    parent = layer + 1 if self.order == "reversed" else layer - 1
                    prior = self.conditional_prior(values[parent])
                values[layer] = pyro.sample(latent_site(layer), prior)
        return values[self.num_layers]

    def refinement_prior(self, model_trace: Trace) -> dist.TorchDistribution:
        """``p(z_1 | z_2)`` from ``model_trace`` for the "++" variant, else ``N(0, I)``."""
        if self.refine_with_lowest_prior and self.num_layers > 0:
            # The model samples every latent site from a Pyro distribution.
            return cast(dist.TorchDistribution, model_trace.nodes[latent_site(1)]["fn"])
        return self.standard_normal()


@register("prior", "reversed++")
def reversed_plus_plus(config: LatentLayout) -> HierarchicalPrior:
    """The paper's default: top-down ``p(z_L) p(z_l | z_{l+1})``; refinement compared with
    ``p(z_1 | z_2)`` (reversed prior++)."""
    return HierarchicalPrior(config.z_dim, config.num_layers, "reversed", True)


@register("prior", "reversed")
def reversed_prior(config: LatentLayout) -> HierarchicalPrior:
    """Top-down ``p(z_L) p(z_l | z_{l+1})``; refinement steps compared with ``N(0, I)``."""
    return HierarchicalPrior(config.z_dim, config.num_layers, "reversed", False)


@register("prior", "bottom_up")
def bottom_up_prior(config: LatentLayout) -> HierarchicalPrior:
    """Bottom-up ``p(z_1) p(z_l | z_{l-1})``; refinement steps compared with ``N(0, I)``."""
    return HierarchicalPrior(config.z_dim, config.num_layers, "bottom_up", False)


@register("prior", "standard_normal")
def standard_normal_prior(config: LatentLayout) -> StandardNormalPrior:
    """Every layer independently ``N(0, I)``."""
    return StandardNormalPrior(config.z_dim, config.num_layers)
