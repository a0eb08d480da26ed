"""The amortized bottom-up guide of EfficientMORL, with its refinement mode."""

from __future__ import annotations

from collections.abc import Callable

import pyro
import torch
from torch import Tensor, nn

from pyro_emorl.models.posterior import GaussianPosterior, gaussian
from pyro_emorl.nn.encoder import ImageEncoder
from pyro_emorl.nn.refinement import RefinementNetwork
from pyro_emorl.nn.stochastic_layer import BottomUpLayer
from pyro_emorl.protocols import RefinementInput
from pyro_emorl.sites import INITIAL_SITE, latent_site
from pyro_emorl.validation import check_dtype, check_images, check_num_slots


class HierarchicalGuide(nn.Module):
    """``q(z_1..L | x)``: ``L`` bottom-up stochastic layers with shared weights.

    Amortized mode samples the symmetry-breaking ``z_0`` (an auxiliary site; its density is masked
    out so no ELBO counts it), then ``z_1 .. z_L``, each layer conditioned on the previous sample.
    Refinement mode (``refine`` given) samples only ``z_L`` from the refined parameters.

    Args:
        encoder: image -> pixel features ``[B, H*W, F]``.
        layer: the shared bottom-up layer.
        refiner: the refinement network (``None`` when no refinement is wanted).
        num_layers: ``L``.
        num_slots: default ``K`` (any ``K`` can be passed at call time).
        z_dim: ``D``.
        image_shape: ``(C, H, W)``.
        register_params: register the parameters in Pyro's global param store on every call
            (needed by ``pyro.infer.SVI``).
        extra_guide: guide for latent sites a custom prior adds (e.g. a per-scene latent),
            called as ``extra_guide(x, images, slots)`` inside the amortized pass with the
            guide's own plates; an ``nn.Module`` is trained with the rest.
        sample_initial_state: start each slot's recurrent state from its own symmetry-breaking
            sample ``z_0`` (as Slot Attention starts from its sampled slots) rather than from
            the mean ``mu_0`` all slots share, where ``z_0`` reaches the state only through the
            first attention query.
        truncate_gradients: back-propagate through the last bottom-up layer only: the layer
            ``L - 1`` state it starts from is detached (the first-order "implicit
            differentiation" of slot attention, Chang et al. 2022). The samples and the
            objective are unchanged; only the gradients of the earlier layers' path are cut.
        per_slot_init: give each of the ``num_slots`` slots its own learned initial mean and
            scale (``[K, D]``, the means drawn from N(0, 1)), instead of one ``mu_0, sigma_0``
            shared by all: the slots are told apart from the first step, and consistently from
            one image to the next, like learned slot queries (Jia et al. 2023). The guide then
            decomposes into exactly ``num_slots`` slots.
    """

    def __init__(
        self,
        encoder: ImageEncoder,
        layer: BottomUpLayer,
        refiner: RefinementNetwork | None,
        num_layers: int,
        num_slots: int,
        z_dim: int,
        image_shape: tuple[int, int, int],
        register_params: bool = False,
        extra_guide: Callable[[Tensor, pyro.plate, pyro.plate], object] | None = None,
        sample_initial_state: bool = False,
        truncate_gradients: bool = False,
        per_slot_init: bool = False,
    ) -> None:
        super().__init__()
        self.register_params = register_params
        self.extra_guide = extra_guide
        self.sample_initial_state = sample_initial_state
        self.truncate_gradients = truncate_gradients
        if num_layers < 0:
            raise ValueError(f"the number of stochastic layers must be >= 0, got {num_layers}")
        num_slots = check_num_slots(num_slots)
        self.encoder = encoder
        self.layer = layer
        self.refiner = refiner
        self.num_layers = num_layers
        self.num_slots = num_slots
        self.z_dim = z_dim
        self.image_shape = tuple(image_shape)
        # The official init: mu_0 = 0 and raw scale 1 (so sigma_0 = 1.146, not 1 as in the paper).
        # Per slot, the means must differ to tell the slots apart: standard-normal draws.
        self.per_slot_init = per_slot_init
        shape = (num_slots, z_dim) if per_slot_init else (z_dim,)
        self.initial_loc = nn.Parameter(torch.randn(shape) if per_slot_init else torch.zeros(shape))
        self.initial_raw_scale = nn.Parameter(torch.ones(shape))

    def forward(
        self,
        x: Tensor,
        *,
        num_slots: int | None = None,
        num_images: int | None = None,
        refine: GaussianPosterior | None = None,
    ) -> GaussianPosterior:
        """Sample the latents.

        Args:
            x: images ``[B, C, H, W]`` in ``[0, 1]``.
            num_slots: ``K`` for this call.
            num_images: ignored (accepted so the model's sampling arguments can be shared).
            refine: refined posterior parameters of a refinement step.

        Returns:
            The posterior state of ``z_L`` (with the attention maps in amortized mode).
        """
        if self.register_params:
            pyro.module("emorl_guide", self)
        num_slots = check_num_slots(self.num_slots if num_slots is None else num_slots)
        if self.per_slot_init and num_slots != self.num_slots:
            raise ValueError(
                f"this guide learned one initial state per slot for K={self.num_slots}; it "
                f"decomposes into {self.num_slots} slots only, not {num_slots}"
            )
        check_images(x, self.image_shape)
        check_dtype(x, self.initial_loc)
        images = pyro.plate("images", x.shape[-4], dim=-2)
        slots = pyro.plate("slots", num_slots, dim=-1)
        if refine is not None:
            with images, slots:
                pyro.sample(latent_site(self.num_layers), gaussian(refine.loc, refine.raw_scale))
            return refine

        if self.extra_guide is not None:
            self.extra_guide(x, images, slots)
        keys, values = self.layer.attention.keys_values(self.encoder(x))
        shape = (*x.shape[:-3], num_slots, self.z_dim)
        loc = self.initial_loc.expand(shape)
        raw_scale = self.initial_raw_scale.expand(shape)
        attention = []
        with images, slots:
            # With L = 0 the model decodes z_0 itself (a model site, not auxiliary).
            z = pyro.sample(
                INITIAL_SITE,
                gaussian(loc, raw_scale).mask(False),
                infer={"is_auxiliary": self.num_layers > 0},
            )
            if self.sample_initial_state:
                loc = z
            for layer in range(1, self.num_layers + 1):
                if self.truncate_gradients and layer == self.num_layers:
                    z, loc, raw_scale = z.detach(), loc.detach(), raw_scale.detach()
                loc, raw_scale, attn = self.layer(z, loc, raw_scale, keys, values)
                attention.append(attn)
                z = pyro.sample(latent_site(layer), gaussian(loc, raw_scale))
        return GaussianPosterior(loc, raw_scale, attention=tuple(attention))

    def refine(self, state: GaussianPosterior, step: RefinementInput) -> GaussianPosterior:
        """One refinement step: the additive update the refinement network proposes from the
        gradients of the previous step's objective w.r.t. the posterior parameters.

        Args:
            state: current posterior.
            step: the previous step (its objective drives the update).

        Returns:
            The refined posterior (``prior`` and ``attention`` carried over).
        """
        if self.refiner is None:
            raise ValueError("this guide was built without a refinement network")
        grad_loc, grad_raw_scale = torch.autograd.grad(
            step.objective, (state.loc, state.raw_scale), retain_graph=True
        )
        d_loc, d_raw, hidden = self.refiner(
            state.loc, state.raw_scale, grad_loc, grad_raw_scale, state.hidden
        )
        return state._replace(
            loc=state.loc + d_loc, raw_scale=state.raw_scale + d_raw, hidden=hidden
        )
