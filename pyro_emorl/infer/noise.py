"""Supply the standard-normal noise of reparameterised samples from outside."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyro.distributions as dist
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
