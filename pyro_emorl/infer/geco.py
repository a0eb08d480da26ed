"""GECO (Rezende & Viola, 2018) as EfficientMORL uses it: minimise the KL under a reconstruction
constraint, with a Lagrange multiplier updated outside the gradient step."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from pyro.infer import ELBO
from pyro.infer.elbo import ELBOModule
from torch import Tensor, nn

from pyro_emorl.config import GECOConfig
from pyro_emorl.config.base import check_image_shape
from pyro_emorl.infer.elbo import RefinementELBO
from pyro_emorl.infer.terms import StepTerms
from pyro_emorl.protocols import Guide, SceneModel

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
"""Per-element constant the official (unnormalised) likelihoods omit: 1/2 log(2 pi)."""


def ddp_mean(value: Tensor) -> Tensor:
    """Average ``value`` over the ranks of the default ``torch.distributed`` process group.

    Pass as ``sync=`` to `GECO.update` so every rank keeps the same ``beta`` and ``C_ema``.
    """
    import torch.distributed as dist

    value = value.clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / dist.get_world_size()


class GECO(ELBO, nn.Module):
    """GECO wrapper around a `RefinementELBO`.

    After ``warm_start`` updates the objective of every step is
    ``kl_beta * mean(kl) - softplus(beta) * (C_t + (C_ema - C_t).detach())`` with
    ``C_t = target - mean(nll)``: its value uses the moving average ``C_ema``, its gradient is that
    of ``softplus(beta) * mean(nll)``. Before that it is the plain ELBO. The refinement gradients
    are taken of this objective too, as in the reference. `update` (after the optimizer step)
    moves ``C_ema`` and ``beta`` using the last step's batch-mean NLL:
    ``C_ema <- a C_ema + (1 - a)(target - nll)``, ``beta <- max(beta_min, beta - s * C_ema)`` with
    ``s = step_size * (speedup if C_ema > 0 else 1)``.

    The state (``C_ema``, ``beta``, ``num_updates``) lives in buffers: ``GECO(...)(model, guide)``
    returns an `ELBOModule` whose ``state_dict()`` and ``.to(device)``
    include it. All updates stay on the device (no host synchronisation).

    Args:
        elbo: the wrapped ELBO (its step weights, ``kl_beta`` and ``num_steps`` are used).
        target_per_element: reconstruction target per image element (``C * H * W`` elements), a
            negative log-likelihood value.
        image_shape: ``(C, H, W)``, to turn the per-element target into a per-image one.
        convention: ``"normalized"`` (our likelihoods) or ``"official"`` (the reference code's
            unnormalised likelihoods; ``1/2 log(2 pi)`` per element is added to convert).
        ema_decay: ``a`` (0.99).
        step_size: base step of ``beta`` (1e-6).
        speedup: step multiplier while the constraint is satisfied (1; 5 for CLEVR-128).
        beta_init: initial ``beta`` (0.55, so ``softplus(beta) ~ 1.0055``).
        beta_min: floor of ``beta`` (0.55).
        warm_start: number of plain-ELBO updates before GECO starts (1000).
    """

    # Buffers (registered in __init__).
    C_ema: Tensor
    beta: Tensor
    num_updates: Tensor

    def __init__(
        self,
        elbo: RefinementELBO,
        target_per_element: float,
        image_shape: Sequence[int],
        *,
        convention: str = "normalized",
        ema_decay: float = 0.99,
        step_size: float = 1e-6,
        speedup: float = 1.0,
        beta_init: float = 0.55,
        beta_min: float = 0.55,
        warm_start: int = 1000,
    ) -> None:
        nn.Module.__init__(self)
        ELBO.__init__(self, num_particles=1, max_plate_nesting=elbo.max_plate_nesting)
        # The settings' own checks: one message per bad argument, before any work.
        settings = GECOConfig(
            target_per_element,
            convention=convention,
            ema_decay=ema_decay,
            step_size=step_size,
            speedup=speedup,
            beta_init=beta_init,
            beta_min=beta_min,
            warm_start=warm_start,
        )
        image_shape = check_image_shape(image_shape)
        self.elbo = elbo
        offset = HALF_LOG_2PI if settings.convention == "official" else 0.0
        self.target = (settings.target_per_element + offset) * math.prod(image_shape)
        self.ema_decay = settings.ema_decay
        self.step_size = settings.step_size
        self.speedup = settings.speedup
        self.beta_min = settings.beta_min
        self.warm_start = settings.warm_start
        self.register_buffer("C_ema", torch.tensor(0.0))
        self.register_buffer("beta", torch.tensor(settings.beta_init))
        self.register_buffer("num_updates", torch.tensor(0, dtype=torch.long))
        self._last_nll: Tensor | None = None

    @classmethod
    def from_config(
        cls, elbo: RefinementELBO, settings: GECOConfig, image_shape: Sequence[int]
    ) -> GECO:
        """GECO with the settings of a configuration."""
        return cls(
            elbo,
            settings.target_per_element,
            image_shape,
            convention=settings.convention,
            ema_decay=settings.ema_decay,
            step_size=settings.step_size,
            speedup=settings.speedup,
            beta_init=settings.beta_init,
            beta_min=settings.beta_min,
            warm_start=settings.warm_start,
        )

    def __call__(self, model: nn.Module, guide: nn.Module) -> ELBOModule:  # ELBO's, not Module's
        return ELBO.__call__(self, model, guide)

    def _get_trace(self, model: Callable, guide: Callable, args: tuple, kwargs: dict) -> tuple:
        return self.elbo._get_trace(model, guide, args, kwargs)

    @property
    def last_nll(self) -> Tensor | None:
        """Batch-mean NLL of the last step of the last loss computed (what `update` uses)."""
        return self._last_nll

    @property
    def active(self) -> Tensor:
        """Whether the constrained objective is in force (a bool tensor, no sync)."""
        return self.num_updates >= self.warm_start

    def objective(self, terms: StepTerms) -> Tensor:
        """The step objective: GECO's Lagrangian after the warm start, the ELBO before it."""
        plain = self.elbo.objective(terms)
        if self.elbo.kl_beta == 0:
            return plain
        nll = terms.nll.mean()
        c_t = self.target - nll
        kl = self.elbo.kl_beta * (terms.kl.mean() + terms.global_kl / terms.nll.shape[-1])
        constrained = kl - F.softplus(self.beta) * (c_t + (self.C_ema - c_t).detach())
        return torch.where(self.active, constrained, plain)

    def differentiable_loss(
        self, model: SceneModel, guide: Guide, *args: Any, **kwargs: Any
    ) -> Tensor:
        """Weighted sum of the step objectives; remembers the last step's NLL for `update`."""
        with torch.enable_grad():
            terms = self.elbo.steps(model, guide, *args, objective=self.objective, **kwargs)
            self._last_nll = terms[-1].nll.mean().detach()
            return self.elbo.weighted_loss(terms, self.objective)

    def loss(self, model: SceneModel, guide: Guide, *args: Any, **kwargs: Any) -> float:
        """The loss as a float."""
        return float(self.differentiable_loss(model, guide, *args, **kwargs).detach())

    def loss_and_grads(self, model: SceneModel, guide: Guide, *args: Any, **kwargs: Any) -> float:
        """Back-propagate the loss, then `update` (the order ``pyro.infer.SVI`` needs)."""
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        loss.backward()
        self.update()
        return float(loss.detach())

    @torch.no_grad()
    def update(
        self, nll: Tensor | None = None, sync: Callable[[Tensor], Tensor] | None = None
    ) -> None:
        """Move ``C_ema`` and ``beta`` after an optimizer step.

        Args:
            nll: batch-mean NLL of the last refinement step (default: the one remembered by the
                last `differentiable_loss`).
            sync: reduces ``nll`` across processes (e.g. `ddp_mean`) so ranks agree.
        """
        if nll is None:
            if self._last_nll is None:
                raise RuntimeError("GECO.update() needs a loss computed first, or pass nll=")
            nll = self._last_nll
        nll = nll.detach().to(self.C_ema)
        if sync is not None:
            nll = sync(nll)
        c = self.target - nll
        starting = self.num_updates == self.warm_start
        running = self.num_updates > self.warm_start
        ema = self.ema_decay * self.C_ema + (1 - self.ema_decay) * c
        self.C_ema.copy_(torch.where(starting, c, torch.where(running, ema, self.C_ema)))
        step = self.step_size * torch.where(self.C_ema > 0, self.speedup, 1.0)
        beta = torch.clamp(self.beta - step * self.C_ema, min=self.beta_min)
        self.beta.copy_(torch.where(running, beta, self.beta))
        self.num_updates += 1
