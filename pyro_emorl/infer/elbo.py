"""The EfficientMORL objective: the amortized ELBO followed by ``I`` refinement steps."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

import pyro.poutine as poutine
import torch
from pyro.infer import ELBO
from pyro.infer.util import is_validation_enabled
from pyro.util import check_model_guide_match
from torch import Tensor

from pyro_emorl.config.fields import integer
from pyro_emorl.infer.terms import StepTerms, trace_terms
from pyro_emorl.protocols import Guide, RefinableGuide, RefinementInput, SceneModel

Objective = Callable[[StepTerms], Tensor]


def step_weights(num_steps: int, scheme: str | Sequence[float] = "official") -> list[float]:
    """Weights ``w_0 .. w_I`` of the step objectives in the training loss.

    ``"official"`` (the reference code, default): ``w_r = (I + 3 - r) / (I + 1)``, e.g.
    1.5, 1.25, 1.0, 0.75 for ``I = 3`` and 3.0 for ``I = 0``. ``"paper"`` (Eq. 8): ``w_0 = 1`` and
    ``w_r = (I - r + 1) / (I + 1)``. A sequence gives the weights explicitly.

    Args:
        num_steps: number of refinement steps ``I``.
        scheme: ``"official"``, ``"paper"`` or ``I + 1`` numbers.

    Returns:
        ``I + 1`` weights.
    """
    num_steps = integer("the number of refinement steps", num_steps, 0)
    if scheme == "official":
        return [(num_steps + 3 - r) / (num_steps + 1) for r in range(num_steps + 1)]
    if scheme == "paper":
        return [1.0] + [(num_steps - r + 1) / (num_steps + 1) for r in range(1, num_steps + 1)]
    if isinstance(scheme, str):
        raise ValueError(f"unknown step weights {scheme!r}; use 'official', 'paper' or numbers")
    weights = [float(w) for w in scheme]
    if len(weights) != num_steps + 1:
        raise ValueError(
            f"need {num_steps + 1} step weights for I = {num_steps}, got {len(weights)}"
        )
    return weights


class RefinementELBO(ELBO):
    """ELBO of the amortized guide followed by ``num_steps`` steps of iterative amortized inference.

    Step 0 traces the guide and replays the model. Step ``r >= 1`` hands step ``r - 1``'s
    objective and traces to the guide's ``refine`` (a
    [RefinableGuide][pyro_emorl.protocols.RefinableGuide]; EfficientMORL's takes the gradient
    w.r.t. the top-layer posterior parameters, first order only), traces the guide in refinement
    mode and replays the model, whose ``z_L`` prior is then the model's refinement prior. The
    loss is ``sum_r w_r * objective_r`` with the batch-mean objective
    ``mean_B(nll + kl_beta * kl)``. ``num_steps=0`` is the plain amortized ELBO (times ``w_0``).

    Works under ``torch.no_grad()`` too: the refinement gradients are then taken under
    ``torch.enable_grad()`` and the result is detached.

    Args:
        num_steps: refinement steps ``I`` (may be changed between calls, e.g. by a curriculum).
        weights: step weights, see `step_weights`.
        kl_beta: weight of the KL (1 in every official configuration).
        analytic_kl: closed-form KLs (the paper's estimator) or single-sample Monte Carlo.
        max_plate_nesting: 2 (``images`` and ``slots``).
    """

    def __init__(
        self,
        num_steps: int = 3,
        weights: str | Sequence[float] = "official",
        kl_beta: float = 1.0,
        analytic_kl: bool = True,
        max_plate_nesting: int = 2,
    ) -> None:
        super().__init__(num_particles=1, max_plate_nesting=max_plate_nesting)
        step_weights(num_steps, weights)  # validate early
        self.num_steps = num_steps
        self.weights = weights
        self.kl_beta = kl_beta
        self.analytic_kl = analytic_kl

    @contextlib.contextmanager
    def kl_weight(self, weight: float) -> Iterator[None]:
        """Weigh the KL by ``weight`` instead of ``kl_beta`` inside the block (a KL warm-up)."""
        saved, self.kl_beta = self.kl_beta, weight
        try:
            yield
        finally:
            self.kl_beta = saved

    def _get_trace(self, model: Callable, guide: Callable, args: tuple, kwargs: dict) -> tuple:
        guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(
            *args, **kwargs
        )
        if is_validation_enabled():
            check_model_guide_match(model_trace, guide_trace, self.max_plate_nesting)
        return model_trace, guide_trace

    def objective(self, terms: StepTerms) -> Tensor:
        """Batch-mean negative ELBO of one step: ``mean(nll + kl_beta * kl) + global_kl / B``."""
        per_image = terms.nll + self.kl_beta * terms.kl
        return per_image.mean() + terms.global_kl / terms.nll.shape[-1]

    def steps(
        self,
        model: SceneModel,
        guide: Guide,
        *args: Any,
        objective: Objective | None = None,
        num_steps: int | None = None,
        **kwargs: Any,
    ) -> list[StepTerms]:
        """The terms of the amortized step and of every refinement step.

        Args:
            model: the model (a [SceneModel][pyro_emorl.protocols.SceneModel]).
            guide: the guide (a [RefinableGuide][pyro_emorl.protocols.RefinableGuide] when
                ``num_steps > 0``).
            *args: model/guide arguments (the images).
            objective: the objective whose gradient drives refinement (default
                `objective`; GECO passes its Lagrangian).
            num_steps: override ``I`` for this call.
            **kwargs: model/guide keyword arguments.

        Returns:
            ``I + 1`` `StepTerms`.
        """
        objective = self.objective if objective is None else objective
        num_steps = self.num_steps if num_steps is None else num_steps
        num_steps = integer("the number of refinement steps", num_steps, 0)
        model_trace, guide_trace = self._get_trace(model, guide, args, kwargs)
        terms = [trace_terms(model_trace, guide_trace, analytic_kl=self.analytic_kl)]
        if num_steps == 0:
            return terms
        if not isinstance(guide, RefinableGuide):
            raise ValueError(
                f"{type(guide).__name__} cannot refine its posterior: use 0 refinement steps"
            )
        state = terms[0].state.with_prior(model.refinement_prior(model_trace))
        images = args[0] if args else kwargs["x"]
        for _ in range(num_steps):
            previous = terms[-1]
            step = RefinementInput(
                images, objective(previous), previous.model_trace, previous.guide_trace
            )
            state = guide.refine(state, step)
            model_trace, guide_trace = self._get_trace(
                model, guide, args, {**kwargs, "refine": state}
            )
            terms.append(trace_terms(model_trace, guide_trace, analytic_kl=self.analytic_kl))
        return terms

    def weighted_loss(self, terms: list[StepTerms], objective: Objective | None = None) -> Tensor:
        """``sum_r w_r * objective(terms_r)``."""
        objective = self.objective if objective is None else objective
        weights = step_weights(len(terms) - 1, self.weights)
        # At least one term (the amortized step), so the sum is a tensor.
        return cast(Tensor, sum(w * objective(t) for w, t in zip(weights, terms)))

    def differentiable_loss(
        self, model: SceneModel, guide: Guide, *args: Any, **kwargs: Any
    ) -> Tensor:
        """The training loss (a scalar tensor with a graph)."""
        with torch.enable_grad():
            return self.weighted_loss(self.steps(model, guide, *args, **kwargs))

    def loss(self, model: SceneModel, guide: Guide, *args: Any, **kwargs: Any) -> float:
        """The loss as a float (works under ``torch.no_grad()``)."""
        return float(self.differentiable_loss(model, guide, *args, **kwargs).detach())

    def loss_and_grads(self, model: SceneModel, guide: Guide, *args: Any, **kwargs: Any) -> float:
        """Loss as a float after back-propagating it (what ``pyro.infer.SVI`` calls)."""
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        loss.backward()
        return float(loss.detach())
