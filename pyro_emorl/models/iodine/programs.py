"""IODINE's Pyro programs: the slot prior, the logistic mixture likelihood of the original, the
posterior state and the refinement guide.

The generative model is the library's [SlotModel][pyro_emorl.models.SlotModel] with
[IODINEPrior][pyro_emorl.models.iodine.IODINEPrior], IODINE's broadcast decoder and a pixel-wise
mixture likelihood; the model trace records the decoder's mask logits
(`pyro_emorl.sites.MASK_LOGITS_SITE`). The guide,
[IODINEGuide][pyro_emorl.models.iodine.IODINEGuide], is amortized refinement only: a learned
initial posterior (shared by every slot and image), then refinement steps that read the
previous step's model trace (the likelihood's components and weights, the mask logits) and the
gradients of its objective.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Protocol, runtime_checkable

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.poutine import Trace
from torch import Tensor, nn

from pyro_emorl.models.iodine.networks import DecodedStep, RefinementInputs, RefinementNetwork
from pyro_emorl.models.likelihoods import PixelMixture, PixelMixtureNormal
from pyro_emorl.models.priors import StandardNormalPrior
from pyro_emorl.protocols import RefinementInput
from pyro_emorl.sites import (
    MASK_LOGITS_SITE,
    OBSERVATION_SITE,
    latent_site,
    site_distribution,
    site_value,
)
from pyro_emorl.validation import check_dtype, check_images, check_num_slots


def raw_variance_to_scale(raw_variance: Tensor) -> Tensor:
    """IODINE's posterior standard deviation ``sqrt(softplus(raw_variance))`` (no clamp, no floor:
    both references)."""
    return torch.sqrt(F.softplus(raw_variance))


class IODINEPosterior(NamedTuple):
    """``q(z) = N(loc, sqrt(softplus(raw_variance)))`` per slot, with the refinement LSTM's state.

    Attributes:
        loc: posterior means ``[B, K, D]``.
        raw_variance: pre-softplus variances ``[B, K, D]``.
        hidden: the refinement LSTM's ``(h, c)``, each ``[B * K, lstm_size]`` (``None`` before the
            first refinement step or without an LSTM).
        prior: the prior of ``z`` at refinement steps (``None`` at the amortized step).
        attention: empty (IODINE has no attention).
    """

    loc: Tensor
    raw_variance: Tensor
    hidden: Any = None
    prior: dist.TorchDistribution | None = None
    attention: tuple[Tensor, ...] = ()

    @property
    def scale(self) -> Tensor:
        """Posterior standard deviation ``[B, K, D]``."""
        return raw_variance_to_scale(self.raw_variance)

    def distribution(self) -> dist.TorchDistribution:
        """``N(loc, scale)`` over the last dim (batch ``[B, K]``, event ``(D,)``)."""
        return dist.Normal(self.loc, self.scale).to_event(1)

    def with_prior(self, prior: dist.TorchDistribution) -> IODINEPosterior:
        """The same posterior carrying the refinement prior ``prior``."""
        return self._replace(prior=prior)


class IODINEPrior(StandardNormalPrior):
    """``z_k ~ N(0, scale^2 I)`` for every slot (one latent site ``z_1``).

    ``scale = 1`` is the port's prior; the original's is ``N(0, softplus(0)) = N(0, ln 2)``
    per dimension, ``scale = sqrt(ln 2)``.

    Args:
        z_dim: ``D``.
        scale: the prior's standard deviation (a Python float, exact in any dtype).
    """

    def __init__(self, z_dim: int, scale: float = 1.0) -> None:
        super().__init__(z_dim, num_layers=1)
        self.prior_scale = float(scale)

    def standard_normal(self) -> dist.TorchDistribution:
        """The slot prior ``N(0, scale^2 I)`` over one slot (batch ``()``, event ``(D,)``); the
        parent's sampling and refinement prior both use it."""
        return dist.Normal(self.loc, self.scale * self.prior_scale).to_event(1)

    def refinement_prior(self, model_trace: Trace) -> dist.TorchDistribution:
        """The same ``N(0, scale^2 I)`` at every refinement step."""
        return self.standard_normal()


@runtime_checkable
class ComponentMixture(Protocol):
    """What IODINE's refinement needs of the likelihood's distribution (besides
    [PixelMixtureNormal][pyro_emorl.models.likelihoods.PixelMixtureNormal], which it reads
    directly).

    Attributes:
        locs: component means ``[..., K, C, H, W]``, the tensor its density uses.
        log_weights: log mixing weights ``[..., K, 1, H, W]``, the tensor its density uses.
        joint_channels: ``True`` for one mixture per pixel over the joint channels, ``False``
            for one mixture per channel.
    """

    locs: Tensor
    log_weights: Tensor
    joint_channels: bool

    def component_log_prob(self, value: Tensor) -> Tensor:
        """Log density of every element under every component: ``[..., K, C, H, W]``."""
        ...


class PixelMixtureLogistic(PixelMixture):
    """The TF1 original's likelihood: for every pixel a K-component mixture whose components are
    products of logistic densities over the channels (one mixture per pixel, the channels
    joint), with a fixed scale.

    ``log p(x_ij) = logsumexp_k [log softmax(m)_k + sum_c log Logistic(x_ijc; mu_kijc, s)]``.

    Args:
        mask_logits: mixing logits ``[..., K, 1, H, W]``.
        locs: component locations ``[..., K, C, H, W]``.
        scale: the logistic scale (a scalar tensor).
    """

    joint_channels = True

    def component_log_prob(self, value: Tensor) -> Tensor:
        """``log Logistic(x; mu_k, s)`` of every element: ``[..., K, C, H, W]``."""
        z = ((value - self.locs) / self.scale).abs()  # the density is symmetric in z
        return -z - 2 * F.softplus(-z) - torch.log(self.scale)

    def log_prob(self, value: Tensor) -> Tensor:
        """Log density of images ``[..., 1, C, H, W]``: ``[..., 1]``."""
        joint = self.component_log_prob(value).sum(dim=-3, keepdim=True)
        per_pixel = torch.logsumexp(self.log_weights + joint, dim=-4, keepdim=True)
        return per_pixel.sum(dim=(-3, -2, -1))

    def sample(self, sample_shape: torch.Size | list[int] | tuple[int, ...] = ()) -> Tensor:
        """Draw a component per pixel (all channels from it), then logistic values.

        Returns:
            Images ``[*sample_shape, ..., 1, C, H, W]``.
        """
        shape = torch.Size(sample_shape) + self.locs.shape
        with torch.no_grad():
            weights = self.log_weights.expand(*shape[:-3], *self.log_weights.shape[-3:])
            gumbel = -torch.empty_like(weights).exponential_().log()
            choice = (weights + gumbel).argmax(dim=-4, keepdim=True)
            locs = self.locs.expand(shape).gather(
                -4, choice.expand(*choice.shape[:-3], *shape[-3:])
            )
            u = torch.rand_like(locs).clamp(1e-7, 1 - 1e-7)
            return locs + self.scale * (torch.log(u) - torch.log1p(-u))


class LogisticMixtureLikelihood(nn.Module):
    """The original's pixel-wise logistic mixture (`PixelMixtureLogistic`), scale 0.03 in its
    configurations.

    Args:
        log_scale: ``ln`` of the logistic scale.
        learn_scale: make it trainable.
    """

    def __init__(self, log_scale: float = math.log(0.03), learn_scale: bool = False) -> None:
        super().__init__()
        if not math.isfinite(log_scale):
            raise ValueError(f"log_scale must be finite, got {log_scale}")
        # A fixed scale stays a Python float: exact in any dtype.
        self.fixed_log_scale = None if learn_scale else float(log_scale)
        if learn_scale:
            self.log_scale = nn.Parameter(torch.tensor(float(log_scale)))

    def forward(self, rgb: Tensor, mask_logits: Tensor) -> PixelMixtureLogistic:
        """The observation distribution, batch ``[..., 1]``, event ``(C, H, W)``."""
        if self.fixed_log_scale is not None:
            scale = rgb.new_tensor(math.exp(self.fixed_log_scale))
        else:
            scale = self.log_scale.exp().to(rgb.dtype)
        return PixelMixtureLogistic(mask_logits, rgb, scale)


def mixture_readout(fn: object, value: Tensor) -> tuple[Tensor, Tensor, Tensor, bool]:
    """The components of the observation distribution ``fn`` at the images ``value``.

    Args:
        fn: the distribution of the observation site: a
            [PixelMixtureNormal][pyro_emorl.models.likelihoods.PixelMixtureNormal] or a
            `ComponentMixture`.
        value: the observed images ``[B, 1, C, H, W]``.

    Returns:
        ``(locs [B, K, C, H, W], log_weights [B, K, 1, H, W], component log densities
        [B, K, C, H, W], joint_channels)``, the first two the very tensors the density uses.

    Raises:
        ValueError: for a likelihood that is not a pixel-wise mixture.
    """
    if isinstance(fn, PixelMixtureNormal):
        component = dist.Normal(fn.locs, fn.scale, validate_args=False).log_prob(value)
        return fn.locs, fn.log_weights, component, False
    if isinstance(fn, ComponentMixture):
        return fn.locs, fn.log_weights, fn.component_log_prob(value), fn.joint_channels
    raise ValueError(
        f"IODINE refines with the components of a pixel-wise mixture likelihood ('mixture', "
        f"'logistic_mixture'), not a {type(fn).__name__}"
    )


class IODINEGuide(nn.Module):
    """IODINE's guide: a learned initial posterior, refined by the refinement network.

    Amortized mode (no ``refine``) samples ``z_1`` from the initial posterior ``[loc |
    raw_variance]`` (one trainable vector ``[2D]`` shared by every image and slot: symmetry is
    broken by the sample). Refinement mode samples ``z_1`` from the refined posterior. Plates:
    ``images`` at dim -2, ``slots`` at dim -1.

    `refine` reads the previous step: the observation site's distribution (its component means,
    log mixing weights and component densities), the recorded mask logits, and the gradients of
    the previous step's objective w.r.t. the component means, the log weights and the posterior
    parameters, taken without a graph (IODINE's stop-gradient); every other input keeps its
    graph, so the loss back-propagates through all refinement steps.

    Args:
        inputs: assembles the refinement network's inputs.
        network: the refinement network.
        num_slots: default ``K`` (any ``K`` can be passed at call time).
        z_dim: ``D``.
        image_shape: ``(C, H, W)``.
        port_image_tiling: reproduce the port's bug: slot ``(b, k)`` sees image
            ``(b K + k) mod B`` (only to reproduce the port's fixtures).
        register_params: register the parameters in Pyro's global param store on every call
            (needed by ``pyro.infer.SVI``).
    """

    def __init__(
        self,
        inputs: RefinementInputs,
        network: RefinementNetwork,
        num_slots: int,
        z_dim: int,
        image_shape: tuple[int, int, int],
        port_image_tiling: bool = False,
        register_params: bool = False,
    ) -> None:
        super().__init__()
        self.inputs = inputs
        self.network = network
        self.num_slots = check_num_slots(num_slots)
        self.z_dim = z_dim
        self.image_shape = tuple(image_shape)
        self.port_image_tiling = port_image_tiling
        self.register_params = register_params
        # The port's initial posterior: loc 0, pre-softplus variance 1.
        self.initial_params = nn.Parameter(torch.cat([torch.zeros(z_dim), torch.ones(z_dim)]))

    def forward(
        self,
        x: Tensor,
        *,
        num_slots: int | None = None,
        num_images: int | None = None,
        refine: IODINEPosterior | None = None,
    ) -> IODINEPosterior:
        """Sample the slots' latents.

        Args:
            x: images ``[B, C, H, W]`` in ``[0, 1]``.
            num_slots: ``K`` for this call.
            num_images: ignored (accepted so the model's sampling arguments can be shared).
            refine: the posterior of a refinement step.

        Returns:
            The posterior state (``[B, K, D]`` parameters).
        """
        if self.register_params:
            pyro.module("iodine_guide", self)
        num_slots = check_num_slots(self.num_slots if num_slots is None else num_slots)
        check_images(x, self.image_shape)
        check_dtype(x, self.initial_params)
        images = pyro.plate("images", x.shape[-4], dim=-2)
        slots = pyro.plate("slots", num_slots, dim=-1)
        if refine is None:
            shape = (*x.shape[:-3], num_slots, self.z_dim)
            loc, raw_variance = self.initial_params.chunk(2)
            state = IODINEPosterior(loc.expand(shape), raw_variance.expand(shape))
        else:
            state = refine
        with images, slots:
            pyro.sample(latent_site(1), state.distribution())
        return state

    def slot_images(self, images: Tensor, num_slots: int) -> Tensor:
        """The image each slot sees, ``[B, K, C, H, W]`` (see ``port_image_tiling``)."""
        b = images.shape[0]
        if self.port_image_tiling:
            return images.repeat(num_slots, 1, 1, 1).view(b, num_slots, *images.shape[1:])
        return images.unsqueeze(1).expand(b, num_slots, *images.shape[1:])

    def decoded_step(self, state: IODINEPosterior, step: RefinementInput) -> DecodedStep:
        """What the refinement network reads of the previous step (a
        [DecodedStep][pyro_emorl.models.iodine.networks.DecodedStep])."""
        nodes = step.model_trace.nodes
        if MASK_LOGITS_SITE not in nodes:
            raise ValueError(
                f"the model trace has no {MASK_LOGITS_SITE!r} site: IODINE refines a "
                "pyro_emorl.SlotModel (or a model that records its decoder's mask logits)"
            )
        site = nodes[OBSERVATION_SITE]
        locs, log_weights, component_log_prob, joint = mixture_readout(
            site_distribution(site), site_value(site)
        )
        inputs = [locs, log_weights, state.loc, state.raw_variance]
        grads = torch.autograd.grad(step.objective, inputs, retain_graph=True, allow_unused=True)
        # Zeros where a custom objective does not reach an input (torch 2.0 has no
        # materialize_grads).
        d_components, d_log_weights, d_loc, d_raw_variance = (
            torch.zeros_like(x) if g is None else g for x, g in zip(inputs, grads)
        )
        return DecodedStep(
            images=self.slot_images(step.images, state.loc.shape[-2]),
            components=locs,
            log_weights=log_weights,
            mask_logits=site_value(nodes[MASK_LOGITS_SITE]),
            component_log_prob=component_log_prob,
            joint_channels=joint,
            d_components=d_components,
            d_log_weights=d_log_weights,
            loc=state.loc,
            raw_variance=state.raw_variance,
            d_loc=d_loc,
            d_raw_variance=d_raw_variance,
        )

    def refine(self, state: IODINEPosterior, step: RefinementInput) -> IODINEPosterior:
        """One refinement step: ``[loc | raw_variance] += head(LSTM(encoder(inputs)))``.

        Args:
            state: the current posterior ``[B, K, D]``.
            step: the previous step (its objective, model trace and images).

        Returns:
            The refined posterior (``prior`` carried over, the LSTM state updated).
        """
        spatial, flat = self.inputs(self.decoded_step(state, step))
        update, hidden = self.network(spatial, flat, state.hidden)
        d_loc, d_raw_variance = update.view(*state.loc.shape[:-1], -1).chunk(2, dim=-1)
        return state._replace(
            loc=state.loc + d_loc, raw_variance=state.raw_variance + d_raw_variance, hidden=hidden
        )
