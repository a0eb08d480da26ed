"""One optimisation step of EfficientMORL, as the official training loop does it.

Order (as in the official `train.py`): set ``I`` from the curriculum, forward (refinement ELBO,
GECO's Lagrangian after the warm start), backward, average over ranks, clip the global gradient
norm, Adam step, GECO update with the final refinement step's batch-mean NLL, LR scheduler step.
Everything stays on the device: a step with a non-finite loss or gradient is skipped on the device
(Adam's fused kernel honours ``found_inf``, GECO's buffers are restored), so no step needs a host
synchronisation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import NamedTuple

import torch
from torch import Tensor, nn

from pyro_emorl.infer import (
    GECO,
    RefinementCurriculum,
    RefinementELBO,
    ScaledNoise,
    kl_warmup_factor,
    noise_warmup_factor,
)
from pyro_emorl.protocols import Guide, SceneModel
from pyro_emorl.sites import latent_site


class StepStats(NamedTuple):
    """Device scalars of one step (no host synchronisation until read).

    Attributes:
        loss: the weighted training loss (averaged over ranks).
        nll: batch-mean NLL of the final refinement step (nats).
        kl: batch-mean KL of the final refinement step (nats).
        grad_norm: global gradient norm before clipping.
        finite: whether the step was applied (loss and gradients finite).
    """

    loss: Tensor
    nll: Tensor
    kl: Tensor
    grad_norm: Tensor
    finite: Tensor


class TrainStep:
    """Callable running one training step on a batch.

    Args:
        model: the generative model.
        guide: the guide.
        elbo: the refinement ELBO.
        geco: the GECO wrapper of ``elbo`` or ``None``.
        optimizer: a fused ``torch.optim.Adam`` over ``params`` (its ``found_inf`` skips steps).
        scheduler: the LR scheduler, stepped after every optimizer step.
        params: the trained parameters.
        clip_norm: maximum global gradient norm (``None`` or ``inf``: no clipping).
        curriculum: ``I`` per step.
        sync: averages a list of tensors over ranks in place (``None`` when single-process).
        kl_warmup_steps: length of the KL warm-up: step ``s`` weighs the KL by
            ``elbo.kl_beta * kl_warmup_factor(s, kl_warmup_steps)`` (0: no warm-up).
        noise_warmup_steps: length of the noise warm-up: step ``s`` samples ``z_1 .. z_L`` with
            their noise scaled by ``noise_warmup_factor(s, noise_warmup_steps)`` (0: no warm-up).
    """

    def __init__(
        self,
        model: SceneModel,
        guide: Guide,
        elbo: RefinementELBO,
        geco: GECO | None,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        params: Sequence[nn.Parameter],
        clip_norm: float | None,
        curriculum: RefinementCurriculum,
        sync: Callable[[Sequence[Tensor]], None] | None = None,
        kl_warmup_steps: int = 0,
        noise_warmup_steps: int = 0,
    ) -> None:
        if not optimizer.defaults.get("fused"):
            raise ValueError("TrainStep needs a fused optimizer (it skips steps via found_inf)")
        self.model = model
        self.guide = guide
        self.elbo = elbo
        self.geco = geco
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.params = list(params)
        self.clip_norm = math.inf if clip_norm is None else clip_norm
        self.curriculum = curriculum
        self.sync = sync
        self.kl_warmup_steps = kl_warmup_steps
        self.noise_warmup_steps = noise_warmup_steps
        layers = range(1, model.num_layers + 1) if noise_warmup_steps > 0 else range(0)
        self._noisy_sites = [latent_site(layer) for layer in layers]

    def kl_weight_at(self, step: int) -> float:
        """The KL weight of optimisation step ``step`` (``kl_beta`` once any warm-up is over)."""
        return self.elbo.kl_beta * kl_warmup_factor(step, self.kl_warmup_steps)

    def noise_factor_at(self, step: int) -> float:
        """The scale of the latents' sampling noise at optimisation step ``step`` (1 after any
        warm-up)."""
        return noise_warmup_factor(step, self.noise_warmup_steps)

    def __call__(self, images: Tensor, step: int) -> StepStats:
        """Train on ``images`` ``[B, C, H, W]`` as optimisation step ``step`` (0-based)."""
        objective = self.elbo.objective if self.geco is None else self.geco.objective
        self.optimizer.zero_grad(set_to_none=True)
        noise_factor = self.noise_factor_at(step)
        noise = ScaledNoise(noise_factor, self._noisy_sites) if noise_factor < 1 else nullcontext()
        with self.elbo.kl_weight(self.kl_weight_at(step)), noise:
            terms = self.elbo.steps(
                self.model, self.guide, images, objective=objective, num_steps=self.curriculum(step)
            )
            loss = self.elbo.weighted_loss(terms, objective)
        loss.backward()
        scalars = torch.stack([loss.detach(), terms[-1].nll.mean(), terms[-1].kl.mean()]).detach()
        if self.sync is not None:
            self.sync([p.grad for p in self.params if p.grad is not None] + [scalars])
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.clip_norm)
        # Identical on every rank: the gradients and scalars were averaged above.
        finite = torch.isfinite(scalars).all() & torch.isfinite(grad_norm)
        # Read by the fused Adam kernel, which then leaves the parameters unchanged.
        self.optimizer.found_inf = (~finite).float()  # type: ignore[attr-defined]
        self.optimizer.step()
        if self.geco is not None:
            before = [b.clone() for b in self.geco.buffers()]
            self.geco.update(nll=scalars[1])
            for buffer, old in zip(self.geco.buffers(), before):
                buffer.copy_(torch.where(finite, buffer, old))
        self.scheduler.step()
        loss, nll, kl = scalars.unbind()
        return StepStats(loss, nll, kl, grad_norm.detach(), finite)
