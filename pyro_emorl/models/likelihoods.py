"""Image likelihoods: modules that turn decoded slots into a Pyro distribution, registered by
name.

Each satisfies [ImageLikelihood][pyro_emorl.protocols.ImageLikelihood]: ``rgb``
``[..., K, C, H, W]`` and ``mask_logits`` ``[..., K, 1, H, W]`` to a distribution with batch shape
``[..., 1]`` and event shape ``(C, H, W)``. Unlike the official code, these are normalised
densities (they include ``-1/2 log(2 pi)`` per element).
"""

from __future__ import annotations

import math
from typing import Protocol

import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from torch import Tensor, nn

from pyro_emorl.registry import register


class ScaleSettings(Protocol):
    """What the library's likelihoods read of a model configuration."""

    @property
    def log_scale(self) -> float:
        """``ln sigma``."""
        ...

    @property
    def learn_scale(self) -> bool:
        """Whether ``ln sigma`` is trained."""
        ...


class _Scale(nn.Module):
    """``sigma`` of a likelihood: a fixed number or a trainable ``ln sigma``.

    A fixed ``ln sigma`` stays a Python float so it is exact in any dtype (a float32 buffer
    converted to float64 later would be off by about 4e-8 relative).
    """

    def __init__(self, log_scale: float, learn_scale: bool) -> None:
        super().__init__()
        if not math.isfinite(log_scale):
            raise ValueError(f"log_scale must be finite, got {log_scale}")
        self.fixed_log_scale = None if learn_scale else float(log_scale)
        if learn_scale:
            self.log_scale = nn.Parameter(torch.tensor(float(log_scale)))

    def scale(self, like: Tensor) -> Tensor:
        """``sigma`` as a tensor of ``like``'s dtype and device."""
        if self.fixed_log_scale is not None:
            return like.new_tensor(math.exp(self.fixed_log_scale))
        return self.log_scale.exp().to(like.dtype)


def mixture_mean(rgb: Tensor, mask_logits: Tensor) -> Tensor:
    """Mask-weighted mean ``sum_k softmax_k(mask_logits) * rgb``: ``[..., 1, C, H, W]``."""
    return (torch.softmax(mask_logits, dim=-4) * rgb).sum(dim=-4, keepdim=True)


class GaussianLikelihood(_Scale):
    """Gaussian on the mask-weighted mean (the paper's "deterministic mixture").

    ``x ~ Normal(sum_k m_k mu_k, sigma)`` per element, used for Tetrominoes (sigma 0.3) and
    Multi-dSprites (sigma 0.1).

    Args:
        log_scale: ``ln sigma``.
        learn_scale: make ``ln sigma`` a trainable parameter (default fixed, as in the paper).
    """

    def __init__(self, log_scale: float = math.log(0.1), learn_scale: bool = False) -> None:
        super().__init__(log_scale, learn_scale)

    def forward(self, rgb: Tensor, mask_logits: Tensor) -> dist.TorchDistribution:
        """The observation distribution, batch ``[..., 1]``, event ``(C, H, W)``."""
        mean = mixture_mean(rgb, mask_logits)
        return dist.Normal(mean, self.scale(rgb), validate_args=False).to_event(3)


class PixelMixture(dist.TorchDistribution):
    """A K-component mixture for every pixel: mixing weights ``softmax_k(mask_logits)`` shared
    by the channels, components located at ``locs`` with one scale. Subclasses say what a
    component is (``log_prob``, ``sample``).

    Args:
        mask_logits: ``[..., K, 1, H, W]`` mixing logits.
        locs: ``[..., K, C, H, W]`` component locations.
        scale: scalar scale shared by all components.
    """

    arg_constraints = {"locs": constraints.real, "scale": constraints.positive}
    support = constraints.independent(constraints.real, 3)
    has_rsample = False

    def __init__(
        self, mask_logits: Tensor, locs: Tensor, scale: Tensor, validate_args: bool | None = None
    ) -> None:
        self.log_weights = torch.log_softmax(mask_logits, dim=-4)
        self.locs = locs
        self.scale = scale
        batch_shape = torch.broadcast_shapes(self.log_weights.shape[:-3], locs.shape[:-3])
        batch_shape = batch_shape[:-1] + (1,)
        super().__init__(batch_shape, locs.shape[-3:], validate_args=validate_args)

    def expand(
        self, batch_shape: torch.Size | list[int] | tuple[int, ...], _instance: object = None
    ) -> PixelMixture:
        """Expand the leading batch dims (the singleton slot dim stays a singleton)."""
        lead = torch.Size(batch_shape)[:-1]
        k = self.locs.shape[-4]
        logits = self.log_weights.expand(*lead, k, *self.log_weights.shape[-3:])
        locs = self.locs.expand(*lead, k, *self.locs.shape[-3:])
        # log_softmax of log-weights is the identity: the expanded mixture has the same weights.
        return type(self)(logits, locs, self.scale, validate_args=False)

    @property
    def mean(self) -> Tensor:
        """``sum_k w_k mu_k``: ``[..., 1, C, H, W]``."""
        return (self.log_weights.exp() * self.locs).sum(dim=-4, keepdim=True)


class PixelMixtureNormal(PixelMixture):
    """Independent K-component Gaussian mixture for every pixel and channel.

    The mixture weights (one per slot and pixel) are shared by the channels, but each channel value
    is its own mixture (the official "GMM": the paper's ``P = 3HW`` definition).

    Args:
        mask_logits: ``[..., K, 1, H, W]`` mixing logits.
        locs: ``[..., K, C, H, W]`` component means.
        scale: scalar standard deviation shared by all components.
    """

    def log_prob(self, value: Tensor) -> Tensor:
        """Log density of images ``[..., 1, C, H, W]``: ``[..., 1]``."""
        sq = (value - self.locs) ** 2
        log_norm = self.scale.log() + 0.5 * math.log(2 * math.pi)
        component = -sq / (2 * self.scale**2) - log_norm
        per_value = torch.logsumexp(self.log_weights + component, dim=-4, keepdim=True)
        return per_value.sum(dim=(-3, -2, -1))

    def sample(self, sample_shape: torch.Size | list[int] | tuple[int, ...] = ()) -> Tensor:
        """Draw a component per pixel and channel, then a Gaussian value.

        Returns:
            Images ``[*sample_shape, ..., 1, C, H, W]``.
        """
        shape = torch.Size(sample_shape) + self.locs.shape
        with torch.no_grad():
            gumbel = -torch.empty(shape, device=self.locs.device).exponential_().log()
            choice = (self.log_weights + gumbel).argmax(dim=-4, keepdim=True)
            locs = self.locs.expand(shape).gather(-4, choice)
            return locs + self.scale * torch.randn_like(locs)


class MixtureLikelihood(_Scale):
    """Pixel-wise mixture of Gaussians (the official ``GMM``; used for CLEVR6, sigma 0.1).

    Args:
        log_scale: ``ln sigma`` of every component.
        learn_scale: make ``ln sigma`` trainable.
    """

    def __init__(self, log_scale: float = math.log(0.1), learn_scale: bool = False) -> None:
        super().__init__(log_scale, learn_scale)

    def forward(self, rgb: Tensor, mask_logits: Tensor) -> PixelMixtureNormal:
        """The observation distribution, batch ``[..., 1]``, event ``(C, H, W)``."""
        return PixelMixtureNormal(mask_logits, rgb, self.scale(rgb))


@register("likelihood", "gaussian")
def gaussian_likelihood(config: ScaleSettings) -> GaussianLikelihood:
    """Gaussian on the mask-weighted mean (the paper's deterministic mixture)."""
    return GaussianLikelihood(config.log_scale, config.learn_scale)


@register("likelihood", "mixture")
def mixture_likelihood(config: ScaleSettings) -> MixtureLikelihood:
    """Pixel-wise mixture of Gaussians (the official GMM)."""
    return MixtureLikelihood(config.log_scale, config.learn_scale)
