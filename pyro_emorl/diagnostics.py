"""Posterior diagnostics with ArviZ: labelled posterior draws, multi-stability, Pareto-k.

ArviZ is imported lazily (it is slow to import and warns about its 1.0 transition).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from pyro_emorl.infer.elbo import RefinementELBO
from pyro_emorl.protocols import Guide, ImageLikelihood, SceneModel
from pyro_emorl.sites import latent_site, site_distribution


class LikelihoodSceneModel(SceneModel, Protocol):
    """A scene model that exposes its image likelihood (as ``SlotModel`` does): the draws below
    decode and score latents outside the model program."""

    @property
    def likelihood(self) -> ImageLikelihood:
        """The likelihood of the decoded slots."""
        ...


def _arviz() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz

    return arviz


@dataclass(frozen=True)
class PosteriorDraws:
    """Draws from the final (refined) posterior of one inference run, with their log densities.

    Attributes:
        z: latent draws ``[S, B, K, D]``.
        log_likelihood: ``log p(x | z)`` per draw and image ``[S, B]``.
        log_prior: ``log p(z)`` under the prior of the refined layer ``[S, B]``.
        log_posterior: ``log q(z | x)`` ``[S, B]``.
        mask_areas: fraction of the image each slot takes, sorted descending ``[S, B, K]``
            (a statistic that does not depend on the slot order).
    """

    z: Tensor
    log_likelihood: Tensor
    log_prior: Tensor
    log_posterior: Tensor
    mask_areas: Tensor

    @property
    def log_weights(self) -> Tensor:
        """Importance log weights ``log p(x, z) - log q(z | x)``: ``[S, B]``."""
        return self.log_likelihood + self.log_prior - self.log_posterior


@torch.no_grad()
def posterior_draws(
    model: LikelihoodSceneModel,
    guide: Guide,
    images: Tensor,
    *,
    num_draws: int = 100,
    num_steps: int = 3,
    num_slots: int | None = None,
) -> PosteriorDraws:
    """Run inference once, then draw ``num_draws`` samples of the top layer from its posterior.

    The prior of the drawn layer is the one the last step's ELBO uses (``N(0, I)`` or the "++"
    prior ``p(z_1 | z_2)`` after refinement), so the log weights are those of that step's ELBO.

    Args:
        model: the model.
        guide: the guide.
        images: ``[B, C, H, W]`` in ``[0, 1]``.
        num_draws: ``S``.
        num_steps: refinement steps ``I``.
        num_slots: ``K``.

    Returns:
        `PosteriorDraws`.
    """
    kwargs: dict[str, Any] = {} if num_slots is None else {"num_slots": num_slots}
    with torch.enable_grad():
        terms = RefinementELBO(num_steps=num_steps).steps(model, guide, images, **kwargs)
    last = terms[-1]
    q = site_distribution(last.guide_trace.nodes[latent_site(model.num_layers)])
    prior = site_distribution(last.model_trace.nodes[latent_site(model.num_layers)])
    z = q.sample((num_draws,))
    rgb, mask_logits = model.decoder(z)
    log_likelihood = model.likelihood(rgb, mask_logits).log_prob(images.unsqueeze(-4)).squeeze(-1)
    areas = torch.softmax(mask_logits, dim=-4).mean(dim=(-3, -2, -1))
    return PosteriorDraws(
        z=z,
        log_likelihood=log_likelihood,
        log_prior=prior.log_prob(z).sum(-1),
        log_posterior=q.log_prob(z).sum(-1),
        mask_areas=areas.sort(dim=-1, descending=True).values,
    )


def to_inference_data(z: Tensor | np.ndarray, **statistics: Tensor | np.ndarray) -> Any:
    """Slot latents (and per-image statistics) as ``arviz.InferenceData``.

    Args:
        z: draws ``[chain, draw, B, K, D]`` or ``[draw, B, K, D]`` (one chain).
        **statistics: further posterior variables ``[chain, draw, B, ...]`` (same leading dims).

    Returns:
        ``InferenceData`` whose posterior has ``z`` with dims ``(image, slot, latent)`` and each
        statistic with dim ``image`` (plus ``slot`` for 4-d statistics).
    """
    az = _arviz()
    z = np.asarray(z.detach().cpu() if isinstance(z, Tensor) else z, dtype=np.float64)
    if z.ndim == 4:
        z = z[None]
        statistics = {k: np.asarray(v)[None] for k, v in statistics.items()}
    if z.ndim != 5:
        raise ValueError(f"z must be [chain, draw, B, K, D] or [draw, B, K, D], got {z.shape}")
    posterior: dict[str, np.ndarray] = {"z": z}
    dims = {"z": ["image", "slot", "latent"]}
    for name, value in statistics.items():
        array = np.asarray(value.detach().cpu() if isinstance(value, Tensor) else value)
        posterior[name] = array.astype(np.float64)
        dims[name] = ["image", "slot"][: array.ndim - 2]
    return az.from_dict(posterior=posterior, dims=dims)


@dataclass(frozen=True)
class MultistabilityReport:
    """How much scene decompositions differ between inference runs, per image.

    Runs (from different initial slot samples) are treated as chains and posterior draws as
    draws; R-hat well above 1 flags images whose decomposition depends on the initialisation.

    Attributes:
        rhat: ``{statistic: [B]}`` rank-normalised R-hat of ``nll``, ``log_weight`` and every
            sorted mask area (``area_0`` is the largest slot); NaN where a statistic is constant.
        ess: ``{statistic: [B]}`` bulk effective sample size.
        inference_data: the ``InferenceData`` the numbers come from.
    """

    rhat: dict[str, np.ndarray]
    ess: dict[str, np.ndarray]
    inference_data: Any

    def unstable_images(self, threshold: float = 1.1) -> np.ndarray:
        """Indices of images with any R-hat above ``threshold``."""
        worst = np.nanmax(np.stack(list(self.rhat.values())), axis=0)
        return np.flatnonzero(worst > threshold)


def multistability(
    model: LikelihoodSceneModel,
    guide: Guide,
    images: Tensor,
    *,
    num_runs: int = 4,
    num_draws: int = 50,
    num_steps: int = 3,
    seed: int = 0,
) -> MultistabilityReport:
    """R-hat and ESS of permutation-invariant statistics across ``num_runs`` inference runs.

    Raw slot latents are label-switched between runs, so only statistics that do not depend on
    the slot order enter: the reconstruction NLL, the importance log weight and the sorted mask
    areas.

    Args:
        model: the model.
        guide: the guide.
        images: ``[B, C, H, W]`` in ``[0, 1]``.
        num_runs: inference runs (chains); each uses seed ``seed + run``.
        num_draws: posterior draws per run.
        num_steps: refinement steps.
        seed: first seed.

    Returns:
        `MultistabilityReport`.
    """
    if num_runs < 2:
        raise ValueError(f"multi-stability needs at least 2 runs, got {num_runs}")
    az = _arviz()
    runs = []
    state = torch.random.get_rng_state()
    try:
        for run in range(num_runs):
            torch.manual_seed(seed + run)
            runs.append(
                posterior_draws(model, guide, images, num_draws=num_draws, num_steps=num_steps)
            )
    finally:
        torch.random.set_rng_state(state)
    stats = {
        "nll": torch.stack([-r.log_likelihood for r in runs]),
        "log_weight": torch.stack([r.log_weights for r in runs]),
    }
    areas = torch.stack([r.mask_areas for r in runs])  # [R, S, B, K]
    for k in range(areas.shape[-1]):
        stats[f"area_{k}"] = areas[..., k]
    posterior = {name: value.cpu().double().numpy() for name, value in stats.items()}
    data = az.from_dict(posterior=posterior, dims={name: ["image"] for name in posterior})
    # A statistic constant over all runs and draws (e.g. uniform masks) has R-hat 0/0 = NaN.
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rhat = az.rhat(data)
        ess = az.ess(data)
    return MultistabilityReport(
        rhat={name: rhat[name].values for name in posterior},
        ess={name: ess[name].values for name in posterior},
        inference_data=data,
    )


def pareto_k(draws: PosteriorDraws) -> np.ndarray:
    """Pareto-k diagnostic of the variational posterior per image (Yao et al., 2018).

    ``k < 0.7``: importance sampling with ``q`` as proposal is reliable, so ``q`` is close to
    the true posterior in the sense that matters for estimates of ``log p(x)``; larger ``k``
    flags images where the amortized (or refined) posterior misses mass.

    Args:
        draws: from `posterior_draws` (use a few hundred draws).

    Returns:
        ``k`` per image ``[B]``.
    """
    az = _arviz()
    log_weights = draws.log_weights.detach().cpu().double().numpy().T  # [B, S]
    _, k = az.psislw(log_weights)
    return np.asarray(k)
