"""Supply the standard-normal noise of reparameterised samples from outside."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import pyro.distributions as dist
import torch
from pyro.poutine.messenger import Messenger
from torch import Tensor


def _base_normal(fn: object) -> dist.Normal:
    while not isinstance(fn, dist.Normal):
        base = getattr(fn, "base_dist", None)
        if base is None:
            raise TypeError(f"FixedNoise needs a (wrapped) Normal site, got {type(fn).__name__}")
        fn = base
    return fn


class FixedNoise(Messenger):
    """Sample Normal sites as ``loc + scale * eps`` with ``eps`` given per site.

    Each site name maps to a sequence of noise tensors consumed in order, one per time the site is
    sampled (the top layer ``z_L`` is sampled once in the amortized step and once per refinement
    step). The sample stays a differentiable function of the distribution's parameters. Useful for
    common random numbers (comparing models or inference settings on identical noise) and for
    reproducing the reference implementation's numbers.

    Args:
        noise: ``{site name: [eps_1, eps_2, ...]}`` (a single tensor means one use).
    """

    def __init__(self, noise: Mapping[str, Tensor | Sequence[Tensor]]) -> None:
        super().__init__()
        self._queues = {
            name: [eps] if isinstance(eps, Tensor) else list(eps) for name, eps in noise.items()
        }

    def _pyro_sample(self, msg: dict) -> None:
        queue = self._queues.get(msg["name"])
        if msg["is_observed"] or msg["value"] is not None or not queue:
            return
        normal = _base_normal(msg["fn"])
        msg["value"] = normal.loc + normal.scale * queue.pop(0)


class ScaledNoise(Messenger):
    """Sample the named Normal sites as ``loc + factor * scale * eps``, ``eps ~ N(0, I)``.

    Only the sample is changed: the site's distribution, and so its log-density and KL, stay as
    the guide built them. With ``factor < 1`` the decoder sees latents closer to the posterior
    means, which is what a noise warm-up uses early in training (see
    [TrainingConfig][pyro_emorl.config.TrainingConfig] ``noise_warmup_steps``).

    Args:
        factor: multiplier of the standard deviation of the noise, in ``[0, 1]``.
        sites: names of the sites to sample this way (other sites are untouched).
    """

    def __init__(self, factor: float, sites: Collection[str]) -> None:
        super().__init__()
        self.factor = factor
        self.sites = frozenset(sites)

    def _pyro_sample(self, msg: dict) -> None:
        if msg["name"] not in self.sites or msg["is_observed"] or msg["value"] is not None:
            return
        normal = _base_normal(msg["fn"])
        eps = torch.randn_like(normal.loc)
        msg["value"] = normal.loc + self.factor * normal.scale * eps
