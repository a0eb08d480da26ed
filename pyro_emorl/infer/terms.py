"""Per-image ELBO terms (negative log-likelihood and KL) from a guide trace and a model trace."""

from __future__ import annotations

from typing import NamedTuple

from pyro.distributions.util import scale_and_mask
from pyro.poutine import Trace
from torch import Tensor
from torch.distributions import kl_divergence

from pyro_emorl.guide import PosteriorState


class StepTerms(NamedTuple):
    """The ELBO terms of one inference step (the amortized pass or one refinement step).

    Attributes:
        nll: negative log-likelihood per image ``[..., B]`` (observed, non-deterministic sites).
        kl: KL per image ``[..., B]``, summed over slots, dims and latent sites.
        kl_per_site: the same per latent site, ``{name: [..., B]}``.
        global_kl: KL of latent sites outside the ``images`` plate (scalar; 0 for the shipped
            priors), to be divided by the number of images.
        state: the guide's return value (posterior parameters of ``z_L``).
        model_trace: the model trace (decoded components and masks live there).
        guide_trace: the guide trace.
    """

    nll: Tensor
    kl: Tensor
    kl_per_site: dict[str, Tensor]
    global_kl: Tensor | float
    state: PosteriorState
    model_trace: Trace
    guide_trace: Trace


def _is_plate(site: dict) -> bool:
    """Plates record a ``_Subsample`` sample site (as ``pyro.util`` checks it, by name)."""
    return type(site["fn"]).__name__ == "_Subsample"


def _in_images_plate(site: dict) -> bool:
    return any(frame.name == "images" for frame in site["cond_indep_stack"])


def _per_image(value: Tensor) -> Tensor:
    """Sum a site's batch-shaped term ``[..., B, K]`` (or ``[..., B, 1]``) over the slot dim."""
    return value.sum(-1)


def _site_kl(guide_site: dict, model_site: dict, analytic: bool) -> Tensor:
    q, p = guide_site["fn"], model_site["fn"]
    if analytic:
        try:
            return kl_divergence(q, p)
        except NotImplementedError:
            pass
    z = guide_site["value"]
    return q.log_prob(z) - p.log_prob(z)


def trace_terms(model_trace: Trace, guide_trace: Trace, *, analytic_kl: bool = True) -> StepTerms:
    """Negative log-likelihood and KL per image from a replayed trace pair.

    With ``analytic_kl`` (default, what the paper's code computes) every latent site contributes
    ``KL(q || p)`` in closed form where registered, with ``p`` evaluated at the replayed guide
    sample of its parents; otherwise (or where no closed form exists) the single-sample estimate
    ``log q(z) - log p(z)``, which makes the sum an unbiased ELBO estimate.

    Args:
        model_trace: trace of the model replayed against ``guide_trace``.
        guide_trace: trace of the guide.
        analytic_kl: use closed-form KLs where available.

    Returns:
        The `StepTerms`.
    """
    nll: Tensor | float = 0.0
    kl: Tensor | float = 0.0
    global_kl: Tensor | float = 0.0
    kl_per_site: dict[str, Tensor] = {}
    for name, site in model_trace.nodes.items():
        if site["type"] != "sample" or site["infer"].get("_deterministic") or _is_plate(site):
            continue
        if site["is_observed"]:
            log_p = scale_and_mask(site["fn"].log_prob(site["value"]), site["scale"], site["mask"])
            nll = nll - _per_image(log_p)
            continue
        guide_site = guide_trace.nodes[name]
        term = _site_kl(guide_site, site, analytic_kl)
        term = scale_and_mask(term, guide_site["scale"], guide_site["mask"])
        if not isinstance(term, Tensor):  # the KL of masked distributions is the number 0
            term = site["value"].new_zeros(site["fn"].batch_shape)
        if _in_images_plate(site):
            kl_per_site[name] = _per_image(term)
            kl = kl + kl_per_site[name]
        else:
            global_kl = global_kl + term.sum()
    state = guide_trace.nodes["_RETURN"]["value"]
    return StepTerms(nll, kl, kl_per_site, global_kl, state, model_trace, guide_trace)
