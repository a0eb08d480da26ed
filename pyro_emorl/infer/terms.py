"""Per-image ELBO terms (negative log-likelihood and KL) from a guide trace and a model trace."""

from __future__ import annotations

from typing import NamedTuple, cast

from pyro.distributions.util import scale_and_mask
from pyro.poutine import Trace
from pyro.poutine.runtime import Message
from torch import Tensor
from torch.distributions import kl_divergence

from pyro_emorl.protocols import Posterior
from pyro_emorl.sites import site_distribution, site_value


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
    state: Posterior
    model_trace: Trace
    guide_trace: Trace


def _is_plate(site: Message) -> bool:
    """Plates record a ``_Subsample`` sample site (as ``pyro.util`` checks it, by name)."""
    return type(site["fn"]).__name__ == "_Subsample"


def _is_deterministic(site: Message) -> bool:
    """A ``pyro.deterministic`` sample site (``pyro.sample`` records ``infer={}`` if given none)."""
    return bool((site["infer"] or {}).get("_deterministic"))


def _in_images_plate(site: Message) -> bool:
    return any(frame.name == "images" for frame in site["cond_indep_stack"])


def _per_image(value: Tensor) -> Tensor:
    """Sum a site's batch-shaped term ``[..., B, K]`` (or ``[..., B, 1]``) over the slot dim."""
    return value.sum(-1)


def _site_kl(guide_site: Message, model_site: Message, analytic: bool) -> Tensor:
    q, p = site_distribution(guide_site), site_distribution(model_site)
    if analytic:
        try:
            return kl_divergence(q, p)
        except NotImplementedError:
            pass
    z = site_value(guide_site)
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
        if site["type"] != "sample" or _is_deterministic(site) or _is_plate(site):
            continue
        if site["is_observed"]:
            log_p = site_distribution(site).log_prob(site_value(site))
            log_p = scale_and_mask(log_p, site["scale"], site["mask"])
            nll = nll - _per_image(log_p)
            continue
        guide_site = guide_trace.nodes[name]
        term = _site_kl(guide_site, site, analytic_kl)
        term = scale_and_mask(term, guide_site["scale"], guide_site["mask"])
        if not isinstance(term, Tensor):  # the KL of masked distributions is the number 0
            term = site_value(site).new_zeros(site_distribution(site).batch_shape)
        if _in_images_plate(site):
            kl_per_site[name] = _per_image(term)
            kl = kl + kl_per_site[name]
        else:
            global_kl = global_kl + term.sum()
    state = cast(Posterior, guide_trace.nodes["_RETURN"]["value"])  # the guide's contract
    # Every model observes its image and samples a latent site in the images plate: tensors.
    nll, kl = cast(Tensor, nll), cast(Tensor, kl)
    return StepTerms(nll, kl, kl_per_site, global_kl, state, model_trace, guide_trace)
