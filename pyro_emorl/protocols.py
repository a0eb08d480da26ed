"""The contracts between the parts of a model, as `typing.Protocol`s.

A prior, a likelihood, a decoder or a guide of your own needs no base class: it only has to
satisfy the protocol of its kind, which a type checker verifies statically and
``isinstance(obj, SlotPrior)`` (attributes present) at run time.

Shapes use ``B`` images, ``K`` slots, ``D`` latent dimensions and ``(C, H, W)`` images. Pyro plates:
``images`` at dim -2 and ``slots`` at dim -1.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple, Protocol, runtime_checkable

import pyro
from pyro.distributions import TorchDistribution
from pyro.poutine import Trace
from torch import Tensor, nn


@runtime_checkable
class Posterior(Protocol):
    """What a guide returns: the posterior of the decoded latent site ``z_L``.

    Handed identically to the model and the guide at refinement steps (Pyro's rule: both receive
    the same arguments), which is why it also carries the refinement prior.
    """

    @property
    def loc(self) -> Tensor:
        """Posterior mean ``[..., B, K, D]`` (the atom of a point mass)."""
        ...

    @property
    def scale(self) -> Tensor:
        """Posterior standard deviation ``[..., B, K, D]`` (zeros for a point mass)."""
        ...

    @property
    def prior(self) -> TorchDistribution | None:
        """The prior of ``z_L`` at refinement steps (``None`` at the amortized step)."""
        ...

    @property
    def attention(self) -> tuple[Tensor, ...]:
        """Attention ``[..., B, K, H*W]`` of each bottom-up layer (empty if there is none)."""
        ...

    def with_prior(self, prior: TorchDistribution) -> Posterior:
        """The same posterior, carrying the refinement prior ``prior``."""
        ...


@runtime_checkable
class SlotPrior(Protocol):
    """A Pyro sub-program sampling the latent sites ``z_1 .. z_L`` of every slot.

    Called inside no plate with the model's plates; it samples the sites named by
    `pyro_emorl.sites.latent_site` (``z_1`` .. ``z_L``) inside them and returns the value of
    the decoded top site ``z_L`` ``[..., B, K, D]``. It may also be a `RefinementPrior`.
    """

    @property
    def num_layers(self) -> int:
        """The number of latent sites ``L``."""
        ...

    def __call__(self, images: pyro.plate, slots: pyro.plate) -> Tensor:
        """Sample ``z_1 .. z_L``; return ``z_L``."""
        ...


@runtime_checkable
class RefinementPrior(Protocol):
    """A slot prior that says what ``z_L`` is compared with at refinement steps (optional:
    without it, refinement steps use ``N(0, I)``)."""

    def refinement_prior(self, model_trace: Trace) -> TorchDistribution:
        """The prior of ``z_L`` at refinement steps (batch ``[..., B, K]`` or ``()``, event
        ``(D,)``), given the model trace of the amortized step (e.g. ``N(0, I)``)."""
        ...


@runtime_checkable
class ImageLikelihood(Protocol):
    """Decoded slots to the distribution of the image.

    Takes the component means ``rgb`` ``[..., K, C, H, W]`` and the mixing logits
    ``mask_logits`` ``[..., K, 1, H, W]``; returns a distribution with batch shape ``[..., 1]``
    (the slot axis kept as a singleton, so the observation lives in the ``images`` plate only)
    and event shape ``(C, H, W)``.
    """

    def __call__(self, rgb: Tensor, mask_logits: Tensor) -> TorchDistribution:
        """The observation distribution."""
        ...


@runtime_checkable
class Decoder(Protocol):
    """Slots to images: ``z`` ``[..., K, D]`` to ``(rgb [..., K, C, H, W], mask_logits
    [..., K, 1, H, W])``."""

    def __call__(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Decode every slot."""
        ...


class ModuleLike(Protocol):
    """What the library uses of ``torch.nn.Module`` on models and guides (which are modules:
    they move with ``.to(device)``, train with ``parameters()`` and checkpoint with
    ``state_dict()``)."""

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]:
        """The trainable tensors."""
        ...

    def named_buffers(self, *args: Any, **kwargs: Any) -> Iterator[tuple[str, Tensor]]:
        """The buffers by name."""
        ...

    def modules(self) -> Iterator[nn.Module]:
        """Every submodule."""
        ...

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Parameters and buffers by name."""
        ...

    def load_state_dict(self, state_dict: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
        """Load what `state_dict` gave."""
        ...

    def to(self, *args: Any, **kwargs: Any) -> Any:
        """Move to a device or dtype."""
        ...

    def train(self, mode: bool = True) -> Any:
        """Training mode."""
        ...

    def eval(self) -> Any:
        """Evaluation mode."""
        ...


@runtime_checkable
class SceneModel(ModuleLike, Protocol):
    """The generative model: a Pyro program over ``z_1 .. z_L`` and the observed image ``x``."""

    @property
    def num_layers(self) -> int:
        """The number of latent sites ``L`` (``z_L`` is decoded)."""
        ...

    @property
    def num_slots(self) -> int:
        """The default ``K``."""
        ...

    @property
    def decoder(self) -> Decoder:
        """The decoder of ``z_L``."""
        ...

    def __call__(
        self,
        x: Tensor | None = None,
        *,
        num_slots: int | None = None,
        num_images: int | None = None,
        refine: Posterior | None = None,
    ) -> Tensor:
        """Run the program; at refinement steps (``refine`` given) only ``z_L`` is sampled,
        from ``refine.prior``."""
        ...

    def refinement_prior(self, model_trace: Trace) -> TorchDistribution:
        """The prior of ``z_L`` at refinement steps, from the amortized step's model trace."""
        ...


@runtime_checkable
class Guide(ModuleLike, Protocol):
    """An amortized guide: images ``x`` ``[B, C, H, W]`` to a posterior over ``z_1 .. z_L``.

    It samples the same latent sites as the model (and may add auxiliary ones), in the same
    plates, and returns the `Posterior` of ``z_L``. Called with ``refine`` (the posterior of a
    refinement step), it samples only ``z_L`` from it.
    """

    def __call__(
        self,
        x: Tensor,
        *,
        num_slots: int | None = None,
        num_images: int | None = None,
        refine: Posterior | None = None,
    ) -> Posterior:
        """Sample the latents."""
        ...


class RefinementInput(NamedTuple):
    """What a refinement step knows of the step before it.

    Attributes:
        images: the images ``[B, C, H, W]``.
        objective: the previous step's objective (a scalar with its graph): refinement
            networks take its gradients w.r.t. the posterior parameters or decoded slots.
        model_trace: the previous step's model trace (decoded components, masks, likelihood).
        guide_trace: the previous step's guide trace.
    """

    images: Tensor
    objective: Tensor
    model_trace: Trace
    guide_trace: Trace


@runtime_checkable
class RefinableGuide(Guide, Protocol):
    """A guide with iterative amortized inference: it proposes a better posterior."""

    def refine(self, state: Posterior, step: RefinementInput) -> Posterior:
        """One refinement step from ``state`` given the previous step's ``step``."""
        ...
