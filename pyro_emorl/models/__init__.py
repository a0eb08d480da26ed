"""Model families and the components they share, each registered by name.

Importing this package registers the library's priors, likelihoods and decoders, and the model
families in their own folders (``emorl``, ``slot_attention``), with their presets. A new family
is one more folder imported here.
"""

from pyro_emorl.models import decoders, emorl, iodine, likelihoods, priors, slot_attention
from pyro_emorl.models.posterior import GaussianPosterior, PointPosterior
from pyro_emorl.models.slot_model import SlotModel

__all__ = [
    "GaussianPosterior",
    "PointPosterior",
    "SlotModel",
    "decoders",
    "emorl",
    "iodine",
    "likelihoods",
    "priors",
    "slot_attention",
]
