"""Slot Attention (Locatello et al. 2020) as the official EfficientMORL code trains it, as a
Pyro model and guide.

Slot Attention is a deterministic autoencoder. Here it is the Pyro program

* model: an improper flat prior on the slots of every attention iteration (sites
  ``z_1 .. z_L``, ``L`` = 3 iterations), the preset's decoder on ``z_L``, and a Gaussian with a
  fixed ``sigma`` on the mask-weighted mean (the library's
  [GaussianLikelihood][pyro_emorl.models.likelihoods.GaussianLikelihood]);
* guide: amortized point masses: the slots are initialised once per slot from a learned
  ``N(mu, sqrt(softplus(s) + 1e-5))`` (the auxiliary site ``z_0``, whose density no ELBO
  counts), then each of the ``L`` iterations of
  [SlotAttentionIteration][pyro_emorl.nn.SlotAttentionIteration] (attention, GRU, residual MLP)
  gives the atom of ``z_l ~ Delta(slots_l)``.

A point mass has log-density 0 at its atom and the flat prior has log-density 0 everywhere, so
every KL term is 0 and -ELBO = NLL = SSE / (2 sigma^2) + C H W (ln sigma + 1/2 ln 2 pi) per image,
where SSE is the summed squared error between the image in ``[0, 1]`` and the mask-weighted
mean. The official loss is the batch mean of that SSE. With ``sigma = 1/sqrt(2)``
([SLOT_ATTENTION_LOG_SCALE][pyro_emorl.models.slot_attention.config.SLOT_ATTENTION_LOG_SCALE], the
presets' value) the batch-mean -ELBO is the official loss plus ``C H W * 1/2 ln pi``
([nll_offset][pyro_emorl.models.slot_attention.programs.nll_offset]): the same gradient, so the same
training with the same learning rate. It trains with
[RefinementELBO][pyro_emorl.infer.RefinementELBO] at ``I = 0`` with step weight 1, so
`pyro_emorl.train.fit`, checkpoints, evaluation and figures work unchanged.

The prior is improper, so the model cannot generate scenes on its own: decode inferred slots
(replay the model against the guide, or call the model's decoder).
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from pyro.poutine import Trace
from torch import Tensor, nn

from pyro_emorl.models.posterior import PointPosterior, gaussian
from pyro_emorl.models.slot_attention.config import SLOT_ATTENTION_LOG_SCALE
from pyro_emorl.nn.encoder import ImageEncoder
from pyro_emorl.nn.slot_attention_iteration import SlotAttentionIteration
from pyro_emorl.sites import INITIAL_SITE, latent_site
from pyro_emorl.validation import check_dtype, check_images, check_num_slots

#: Number of attention iterations of the official baseline.
OFFICIAL_ITERATIONS = 3
#: Width of the residual MLP of the official baseline.
OFFICIAL_MLP_HIDDEN = 128

_NO_REFINEMENT = (
    "Slot Attention has no refinement network: use 0 refinement steps "
    "(num_steps=0, refinement_steps=0)"
)


def nll_offset(
    image_shape: tuple[int, int, int], log_scale: float = SLOT_ATTENTION_LOG_SCALE
) -> float:
    """The constant ``C H W (ln sigma + 1/2 ln 2 pi)`` of the NLL per image.

    Per image, ``nll = SSE / (2 sigma^2) + nll_offset``; with the default ``sigma = 1/sqrt(2)``
    this is ``C H W * 1/2 ln pi`` and ``mean_B(nll) - nll_offset`` is the official loss.

    Args:
        image_shape: ``(C, H, W)``.
        log_scale: ``ln sigma`` of the likelihood.

    Returns:
        The offset in nats.
    """
    c, h, w = image_shape
    return c * h * w * (log_scale + 0.5 * math.log(2 * math.pi))


def official_loss(images: Tensor, components: Tensor, mask_logprobs: Tensor) -> Tensor:
    """The official Slot Attention training loss: the batch mean of the summed squared error.

    ``sum_{b, c, h, w} ((x + 1) / 2 - sum_k m_k mu_k)^2 / B`` for the official inputs ``x`` in
    ``[-1, 1]``; here ``images`` are already in ``[0, 1]``.

    Args:
        images: ``[B, C, H, W]`` in ``[0, 1]``.
        components: decoded RGB means ``[B, K, C, H, W]``.
        mask_logprobs: log mixing probabilities ``[B, K, 1, H, W]``.

    Returns:
        A scalar.
    """
    reconstruction = (components * mask_logprobs.exp()).sum(dim=-4)
    return ((images - reconstruction) ** 2).sum() / images.shape[0]


def point_mass(value: Tensor) -> dist.TorchDistribution:
    """A point mass at ``value`` ``[..., D]``: batch ``[...]``, event ``(D,)``."""
    return dist.Delta(value, event_dim=1)


class FlatDensity(dist.ImproperUniform):
    """Pyro's ``ImproperUniform`` with its zero log-density on the value's device (Pyro's own
    builds it on the CPU) and an explanatory error on ``sample``."""

    def log_prob(self, value: Tensor) -> Tensor:
        """Zeros of the broadcast batch shape, on ``value``'s device and dtype."""
        batch_shape = value.shape[: value.dim() - self.event_dim]
        return value.new_zeros(()).expand(torch.broadcast_shapes(batch_shape, self.batch_shape))

    def sample(self, sample_shape: torch.Size | list[int] | tuple[int, ...] = ()) -> Tensor:
        """Not defined: raises ``NotImplementedError``."""
        raise NotImplementedError(
            "Slot Attention's slots have an improper flat prior, so the model cannot sample "
            "scenes on its own: decode inferred slots instead (replay the model against the "
            "guide, e.g. pyro.infer.Predictive(model, guide=guide), or call model.decoder)"
        )


class FlatSlotPrior(nn.Module):
    """Improper flat prior on the slots of every attention iteration (sites ``z_1 .. z_L``).

    A prior in the sense of `pyro_emorl.priors`: ``prior(images, slots) -> z_L``.

    Args:
        z_dim: slot width ``D``.
        num_layers: number of latent sites ``L`` (the attention iterations).
    """

    def __init__(self, z_dim: int, num_layers: int) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"Slot Attention needs at least one iteration, got {num_layers}")
        self.z_dim = z_dim
        self.num_layers = num_layers

    def flat(self) -> dist.TorchDistribution:
        """The flat density over one slot (batch ``()``, event ``(D,)``)."""
        return FlatDensity(constraints.real, (), (self.z_dim,))

    def forward(self, images: pyro.plate, slots: pyro.plate) -> Tensor:
        """Sample ``z_1 .. z_L`` (only defined when replayed against a guide); returns
        ``z_L`` ``[..., B, K, D]``."""
        with images, slots:
            for layer in range(1, self.num_layers + 1):
                z = pyro.sample(latent_site(layer), self.flat())
        return z

    def refinement_prior(self, model_trace: Trace) -> dist.TorchDistribution:
        """Not defined: Slot Attention is not refined (raises ``ValueError``)."""
        raise ValueError(_NO_REFINEMENT)


class SlotAttentionGuide(nn.Module):
    """Amortized point-mass guide: the official Slot Attention encoder and iterations.

    Samples the auxiliary initial slots ``z_0 ~ N(initial_loc, sqrt(softplus(initial_raw_scale)
    + 1e-5))`` (one draw per slot; its density is masked out), then for each iteration ``l``
    samples ``z_l ~ Delta(slots_l)`` with ``slots_l`` from the shared
    [SlotAttentionIteration][pyro_emorl.nn.SlotAttentionIteration] applied to ``z_{l-1}``.
    Plates as in [HierarchicalGuide][pyro_emorl.models.emorl.HierarchicalGuide]: ``images`` at
    dim -2, ``slots`` at dim -1.

    Args:
        encoder: image -> pixel features ``[B, H*W, F]``.
        slot_attention: the shared iteration.
        num_layers: the number of iterations ``L`` (3 in the official code), one latent site each.
        num_slots: default ``K`` (any ``K`` can be passed at call time).
        z_dim: ``D``.
        image_shape: ``(C, H, W)``.
        register_params: register the parameters in Pyro's global param store on every call
            (needed by ``pyro.infer.SVI``).
    """

    def __init__(
        self,
        encoder: ImageEncoder,
        slot_attention: SlotAttentionIteration,
        num_layers: int,
        num_slots: int,
        z_dim: int,
        image_shape: tuple[int, int, int],
        register_params: bool = False,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"Slot Attention needs at least one iteration, got {num_layers}")
        self.register_params = register_params
        self.encoder = encoder
        self.slot_attention = slot_attention
        self.num_layers = num_layers
        self.num_slots = check_num_slots(num_slots)
        self.z_dim = z_dim
        self.image_shape = tuple(image_shape)
        # The official ``init_slots = [0, ..., 0, 1, ..., 1]``: mean 0, raw scale 1.
        self.initial_loc = nn.Parameter(torch.zeros(z_dim))
        self.initial_raw_scale = nn.Parameter(torch.ones(z_dim))

    def forward(
        self,
        x: Tensor,
        *,
        num_slots: int | None = None,
        num_images: int | None = None,
        refine: PointPosterior | None = None,
    ) -> PointPosterior:
        """Infer the slots.

        Args:
            x: images ``[B, C, H, W]`` in ``[0, 1]`` (mapped to ``[-1, 1]`` by the encoder, as
                the official data loader does).
            num_slots: ``K`` for this call.
            num_images: ignored (accepted so the model's sampling arguments can be shared).
            refine: must be ``None`` (no refinement).

        Returns:
            A [PointPosterior][pyro_emorl.models.posterior.PointPosterior] at the final slots
            ``[B, K, D]`` with the attention ``[B, K, H*W]`` of every iteration.
        """
        if refine is not None:
            raise ValueError(_NO_REFINEMENT)
        if self.register_params:
            pyro.module("slot_attention_guide", self)
        num_slots = check_num_slots(self.num_slots if num_slots is None else num_slots)
        check_images(x, self.image_shape)
        check_dtype(x, self.initial_loc)
        images = pyro.plate("images", x.shape[-4], dim=-2)
        slots = pyro.plate("slots", num_slots, dim=-1)
        keys, values = self.slot_attention.attention.keys_values(self.encoder(x))
        shape = (*x.shape[:-3], num_slots, self.z_dim)
        initial = gaussian(self.initial_loc.expand(shape), self.initial_raw_scale.expand(shape))
        attention = []
        with images, slots:
            z = pyro.sample(INITIAL_SITE, initial.mask(False), infer={"is_auxiliary": True})
            for layer in range(1, self.num_layers + 1):
                z, attn = self.slot_attention(z, keys, values)
                attention.append(attn)
                z = pyro.sample(latent_site(layer), point_mass(z))
        return PointPosterior(z, attention=tuple(attention))
