"""The generative model of slot-based scene models as a Pyro program: a slot prior, a decoder
and an image likelihood (EfficientMORL, Slot Attention and IODINE all use it)."""

from __future__ import annotations

from typing import cast

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from pyro.poutine import Trace
from torch import Tensor, nn

from pyro_emorl.protocols import (
    Decoder,
    ImageLikelihood,
    Posterior,
    RefinementPrior,
    SlotPrior,
)
from pyro_emorl.sites import (
    COMPONENTS_SITE,
    MASK_LOGITS_SITE,
    MASKS_SITE,
    OBSERVATION_SITE,
    latent_site,
)
from pyro_emorl.validation import check_images, check_num_slots


class SlotModel(nn.Module):
    """``p(x, z_1..L) = p(z_1..L) p(x | decoder(z_L))``, prior and likelihood swappable.

    Plates: ``images`` at dim -2 and ``slots`` at dim -1. Latent sites ``z_1 .. z_L`` come from the
    prior; the decoded top layer gives the deterministic sites ``components`` (RGB means,
    ``[B, K, C, H, W]``), ``mask_logprobs`` (``[B, K, 1, H, W]``) and the decoder's raw
    ``mask_logits`` (``[B, K, 1, H, W]``), and the observation ``x``
    lives in the ``images`` plate only (batch ``[B, 1]``, event ``(C, H, W)``).

    At refinement steps (``refine`` given) only the top site ``z_L`` is sampled, from
    ``refine.prior`` (``N(0, I)`` or the "++" prior ``p(z_1 | z_2)`` of the amortized step).

    Args:
        prior: a [SlotPrior][pyro_emorl.protocols.SlotPrior], sampling ``z_1 .. z_L``.
        decoder: a [Decoder][pyro_emorl.protocols.Decoder]: ``z [..., K, D] -> (rgb
            [..., K, C, H, W], mask_logits [..., K, 1, H, W])``.
        likelihood: an [ImageLikelihood][pyro_emorl.protocols.ImageLikelihood]:
            ``(rgb, mask_logits) -> distribution``.
        num_slots: default number of slots ``K`` (any ``K`` can be passed at call time).
        image_shape: ``(C, H, W)`` of the images.
        register_params: register the parameters in Pyro's global param store on every call
            (needed by ``pyro.infer.SVI``; the library's own training loop does not use it).
    """

    def __init__(
        self,
        prior: SlotPrior,
        decoder: Decoder,
        likelihood: ImageLikelihood,
        num_slots: int,
        image_shape: tuple[int, int, int],
        register_params: bool = False,
    ) -> None:
        super().__init__()
        num_slots = check_num_slots(num_slots)
        for name, value, protocol in (
            ("prior", prior, SlotPrior),
            ("decoder", decoder, Decoder),
            ("likelihood", likelihood, ImageLikelihood),
        ):
            if not isinstance(value, protocol):
                raise TypeError(
                    f"the {name} {value!r} is not a {protocol.__name__}: see "
                    f"pyro_emorl.protocols.{protocol.__name__} for what it must provide"
                )
        self.register_params = register_params
        #: Whether the prior was checked (at the first call: its sites and return value).
        self._prior_checked = False
        self.prior = prior
        self.decoder = decoder
        self.likelihood = likelihood
        self.num_slots = num_slots
        self.image_shape = tuple(image_shape)

    @property
    def num_layers(self) -> int:
        """Number of stochastic layers ``L`` of the prior."""
        return self.prior.num_layers

    def _checked_prior_call(self, images: pyro.plate, slots: pyro.plate) -> Tensor:
        """Call the prior once under a trace and check that it samples every latent site and
        returns ``z_L``'s value (a prior that forgets a site would still give a finite loss)."""
        with poutine.trace() as tracer:
            z = self.prior(images, slots)
        nodes = tracer.trace.nodes
        name = type(self.prior).__name__
        wanted = [latent_site(layer) for layer in range(1, self.num_layers + 1)]
        missing = [site for site in wanted if nodes.get(site, {}).get("type") != "sample"]
        if missing:
            raise ValueError(
                f"the prior {name} has num_layers={self.num_layers} but samples no site "
                f"{', '.join(missing)}: a SlotPrior samples {', '.join(wanted)} "
                "(pyro_emorl.latent_site(l)) and returns the last"
            )
        if wanted and z is not nodes[wanted[-1]]["value"]:
            raise ValueError(
                f"the prior {name} must return the value of {wanted[-1]} (the decoded layer), "
                "as sampled by pyro.sample; it returned another tensor"
            )
        self._prior_checked = True
        return z

    def refinement_prior(self, model_trace: Trace) -> dist.TorchDistribution:
        """The prior of ``z_L`` at refinement steps, from the amortized step's model trace."""
        if isinstance(self.prior, RefinementPrior):
            return self.prior.refinement_prior(model_trace)
        top = cast(Tensor, model_trace.nodes[latent_site(self.num_layers)]["value"])
        return dist.Normal(top.new_zeros(top.shape[-1]), 1.0).to_event(1)

    def forward(
        self,
        x: Tensor | None = None,
        *,
        num_slots: int | None = None,
        num_images: int | None = None,
        refine: Posterior | None = None,
    ) -> Tensor:
        """Run the generative program.

        Args:
            x: observed images ``[B, C, H, W]`` in ``[0, 1]``, or ``None`` to sample images.
            num_slots: ``K`` for this call (default: the constructor's).
            num_images: ``B`` when ``x`` is ``None``.
            refine: the posterior of a refinement step (its ``prior`` is ``z_L``'s prior).

        Returns:
            The images ``[..., B, C, H, W]`` (observed or sampled).
        """
        if self.register_params:
            pyro.module("slot_model", self)
        num_slots = check_num_slots(self.num_slots if num_slots is None else num_slots)
        if x is not None:
            check_images(x, self.image_shape)
            num_images = x.shape[-4]
        elif num_images is None:
            raise ValueError("pass the observed images x, or num_images to sample images")
        images = pyro.plate("images", num_images, dim=-2)
        slots = pyro.plate("slots", num_slots, dim=-1)
        if refine is None:
            z = (
                self.prior(images, slots)
                if self._prior_checked
                else self._checked_prior_call(images, slots)
            )
        else:
            if refine.prior is None:
                raise ValueError("a refinement step's posterior must carry the prior of z_L")
            with images, slots:
                z = pyro.sample(latent_site(self.num_layers), refine.prior)
        rgb, mask_logits = self.decoder(z)
        with images, slots:
            pyro.deterministic(COMPONENTS_SITE, rgb, event_dim=3)
            pyro.deterministic(MASKS_SITE, torch.log_softmax(mask_logits, dim=-4), event_dim=3)
            pyro.deterministic(MASK_LOGITS_SITE, mask_logits, event_dim=3)
        with images:
            obs = None if x is None else x.unsqueeze(-4)
            sample = pyro.sample(OBSERVATION_SITE, self.likelihood(rgb, mask_logits), obs=obs)
        return sample.squeeze(-4)
