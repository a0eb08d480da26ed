"""Scene decomposition: what the model sees in an image, layer by layer and step by step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Independent

from pyro_emorl.infer.elbo import Objective, RefinementELBO
from pyro_emorl.protocols import Guide, SceneModel
from pyro_emorl.sites import COMPONENTS_SITE, MASKS_SITE, latent_site, site_distribution, site_value
from pyro_emorl.validation import check_images


@dataclass(frozen=True)
class DecodedSlots:
    """One decoded set of slots (all tensors detached).

    Attributes:
        masks: mixing probabilities ``[B, K, 1, H, W]`` (sum to 1 over ``K``).
        components: RGB means ``[B, K, C, H, W]``.
        reconstruction: mask-weighted mean ``[B, C, H, W]`` in ``[0, 1]``.
        loc: posterior mean of the decoded layer ``[B, K, D]``.
        scale: posterior standard deviation ``[B, K, D]``.
        sample: the decoded latent sample ``[B, K, D]``.
    """

    masks: Tensor
    components: Tensor
    reconstruction: Tensor
    loc: Tensor
    scale: Tensor
    sample: Tensor


@dataclass(frozen=True)
class StepDecomposition(DecodedSlots):
    """A decoded inference step, with its ELBO terms.

    Attributes:
        nll: negative log-likelihood per image ``[B]`` (nats, normalised likelihood).
        kl: KL per image ``[B]`` (all layers at step 0; the refined layer after).
    """

    nll: Tensor
    kl: Tensor


@dataclass(frozen=True)
class Decomposition:
    """Everything `decompose` computes for a batch of images.

    Attributes:
        layers: the sample of every bottom-up layer ``z_1 .. z_L`` decoded (amortized step);
            empty if `decompose` was called with ``decode_layers=False``.
        steps: the amortized step (index 0, which decodes ``z_L``) and every refinement step.
        attention: attention of every bottom-up layer, ``[L, B, K, 1, H, W]`` (softmax over slots).
        kl_per_layer: KL per image of each layer at step 0, ``{l: [B]}``.
    """

    layers: list[DecodedSlots]
    steps: list[StepDecomposition]
    attention: Tensor
    kl_per_layer: dict[int, Tensor]

    @property
    def final(self) -> StepDecomposition:
        """The last refinement step (what the paper evaluates)."""
        return self.steps[-1]


def _decode(model: SceneModel, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    rgb, mask_logits = model.decoder(z)
    masks = torch.softmax(mask_logits, dim=-4)
    return masks, rgb, (masks * rgb).sum(dim=-4)


def decompose(
    model: SceneModel,
    guide: Guide,
    images: Tensor,
    *,
    num_steps: int | None = None,
    num_slots: int | None = None,
    objective: Objective | None = None,
    elbo: RefinementELBO | None = None,
    decode_layers: bool = True,
) -> Decomposition:
    """Decompose images into slots with the amortized guide and ``num_steps`` refinement steps.

    Works at any batch size, any ``K`` and any number of refinement steps, also inside
    ``torch.no_grad()`` (the refinement gradients are taken under ``torch.enable_grad()``).

    Args:
        model: the generative model.
        guide: the guide.
        images: ``[B, C, H, W]`` in ``[0, 1]``.
        num_steps: refinement steps ``I`` (default: ``elbo.num_steps``, 3 for a new ELBO).
        num_slots: ``K`` (default: the model's).
        objective: objective whose gradient drives refinement (default the ELBO; pass
            ``geco.objective`` to refine as the official evaluation does with GECO).
        elbo: the `RefinementELBO` to use.
        decode_layers: also decode the sample of every bottom-up layer into
            ``Decomposition.layers`` (``L`` more decoder passes, for figures of the inference
            steps); ``False`` leaves ``layers`` empty, which is all that scoring needs.

    Returns:
        A `Decomposition`.
    """
    # Whatever Pyro's validation flag says: images out of [0, 1] (or not finite) give
    # meaningless decompositions, not an error, further down.
    check_images(images, check_values=True)
    elbo = RefinementELBO() if elbo is None else elbo
    kwargs: dict[str, Any] = {} if num_slots is None else {"num_slots": num_slots}
    with torch.enable_grad():
        terms = elbo.steps(model, guide, images, objective=objective, num_steps=num_steps, **kwargs)
    num_layers = model.num_layers
    with torch.no_grad():
        guide_trace = terms[0].guide_trace
        layers = []
        for layer in range(1, num_layers + 1 if decode_layers else 1):
            site = guide_trace.nodes[latent_site(layer)]
            # The per-slot distribution (Normal: its own scale, exactly; Delta: zeros).
            posterior = site_distribution(site)
            if isinstance(posterior, Independent):
                posterior = posterior.base_dist
            sample = site_value(site)
            masks, rgb, recon = _decode(model, sample)
            layers.append(
                DecodedSlots(
                    masks,
                    rgb,
                    recon,
                    posterior.mean.detach(),
                    posterior.stddev.detach(),
                    sample.detach(),
                )
            )
        steps = []
        for t in terms:
            masks = site_value(t.model_trace.nodes[MASKS_SITE]).exp()
            rgb = site_value(t.model_trace.nodes[COMPONENTS_SITE])
            z = site_value(t.model_trace.nodes[latent_site(num_layers)])
            steps.append(
                StepDecomposition(
                    masks=masks.detach(),
                    components=rgb.detach(),
                    reconstruction=(masks * rgb).sum(dim=-4).detach(),
                    loc=t.state.loc.detach(),
                    scale=t.state.scale.detach(),
                    sample=z.detach(),
                    nll=t.nll.detach(),
                    kl=t.kl.detach(),
                )
            )
        h, w = images.shape[-2:]
        b, k = terms[0].state.loc.shape[-3:-1]
        attention = images.new_zeros(0, b, k, 1, h, w)  # no bottom-up layer, no attention
        if terms[0].state.attention:
            attention = torch.stack([a.detach() for a in terms[0].state.attention])
            attention = attention.reshape(*attention.shape[:-1], 1, h, w)
        kl_per_layer = {
            layer: terms[0].kl_per_site[latent_site(layer)].detach()
            for layer in range(1, num_layers + 1)
        }
    return Decomposition(layers, steps, attention, kl_per_layer)
