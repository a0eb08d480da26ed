"""Names of the Pyro sample sites shared by the model, the guide and the inference code, and
typed readers of a recorded site."""

from __future__ import annotations

from typing import cast

from pyro.distributions import TorchDistribution
from pyro.poutine.runtime import Message
from torch import Tensor

#: The symmetry-breaking initial sample (an auxiliary guide site with no model counterpart).
INITIAL_SITE = "z_0"
#: The observed image.
OBSERVATION_SITE = "x"
#: Deterministic model sites holding the decoded slots, for visualisation and Predictive.
COMPONENTS_SITE = "components"
MASKS_SITE = "mask_logprobs"
#: The decoder's raw mask logits (before the softmax over slots, which loses their per-pixel
#: offset; IODINE's refinement reads them).
MASK_LOGITS_SITE = "mask_logits"


def latent_site(layer: int) -> str:
    """Site name of stochastic layer ``layer`` (paper indexing, 1..L; ``z_L`` is decoded)."""
    return f"z_{layer}"


def site_value(site: Message) -> Tensor:
    """The value of a recorded sample site (Pyro types it ``Optional`` since it is unset until a
    handler or the distribution fills it; in a finished trace it is always a tensor)."""
    return cast(Tensor, site["value"])


def site_distribution(site: Message) -> TorchDistribution:
    """The distribution of a recorded sample site (Pyro types ``fn`` as any callable; every
    sample site of this package's programs draws from a Pyro distribution)."""
    return cast(TorchDistribution, site["fn"])
