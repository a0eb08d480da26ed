"""IODINE (Greff et al., ICML 2019) as Pyro programs: configuration, networks, programs, build
and presets (registered as the model ``"iodine"``, with the decoder ``"iodine_broadcast"`` and the
likelihood ``"logistic_mixture"``).

The default programs are the PyTorch port's (karazijal/clevrtex), which float64 fixtures pin; the
TF1 original's choices (google-deepmind/deepmind-research ``iodine/``) are configuration options,
and the presets ``iodine_tetrominoes``, ``iodine_multi_dsprites`` and ``iodine_clevr6`` use them
(see [IODINEConfig][pyro_emorl.models.iodine.IODINEConfig]).
"""

from pyro_emorl.models.iodine import presets
from pyro_emorl.models.iodine.build import build_iodine, iodine_broadcast, logistic_mixture
from pyro_emorl.models.iodine.config import (
    ORIGINAL_PRIOR_SCALE,
    IODINEConfig,
    iodine_step_weights,
)
from pyro_emorl.models.iodine.networks import (
    BroadcastDecoder,
    RefinementInputs,
    RefinementNetwork,
    SonnetLSTMCell,
)
from pyro_emorl.models.iodine.presets import (
    ORIGINAL_DEPARTURES,
    iodine_clevr6,
    iodine_multi_dsprites,
    iodine_tetrominoes,
)
from pyro_emorl.models.iodine.programs import (
    IODINEGuide,
    IODINEPosterior,
    IODINEPrior,
    LogisticMixtureLikelihood,
    PixelMixtureLogistic,
)

__all__ = [
    "ORIGINAL_DEPARTURES",
    "ORIGINAL_PRIOR_SCALE",
    "BroadcastDecoder",
    "IODINEConfig",
    "IODINEGuide",
    "IODINEPosterior",
    "IODINEPrior",
    "LogisticMixtureLikelihood",
    "PixelMixtureLogistic",
    "RefinementInputs",
    "RefinementNetwork",
    "SonnetLSTMCell",
    "build_iodine",
    "iodine_broadcast",
    "iodine_clevr6",
    "iodine_multi_dsprites",
    "iodine_step_weights",
    "iodine_tetrominoes",
    "logistic_mixture",
    "presets",
]
