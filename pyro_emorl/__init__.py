"""pyro_emorl: EfficientMORL (Emami et al., ICML 2021) and other slot models in Pyro.

Typical use::

    import pyro_emorl as pe
    model, guide = pe.build(pe.presets.multi_dsprites())
    loss_fn = pe.infer.RefinementELBO(num_steps=3)(model, guide)

Components (priors, likelihoods, decoders), whole models and presets are registered by name
with `register`; the library's own are registered the same way.
"""

import importlib
from types import ModuleType

from pyro_emorl import (
    data,
    evaluation,
    infer,
    io,
    metrics,
    models,
    nn,
    presets,
    protocols,
    train,
)
from pyro_emorl.config import GECOConfig, ModelConfig, TrainingConfig
from pyro_emorl.decompose import Decomposition, decompose
from pyro_emorl.io import load_for_inference
from pyro_emorl.models import SlotModel
from pyro_emorl.models.emorl import EMORLConfig, HierarchicalGuide
from pyro_emorl.models.likelihoods import GaussianLikelihood, MixtureLikelihood
from pyro_emorl.models.priors import HierarchicalPrior, StandardNormalPrior
from pyro_emorl.models.slot_attention import SlotAttentionConfig
from pyro_emorl.pretrained import load_pretrained
from pyro_emorl.protocols import (
    Decoder,
    Guide,
    ImageLikelihood,
    Posterior,
    RefinableGuide,
    SceneModel,
    SlotPrior,
)
from pyro_emorl.registry import build, import_components, register, registered
from pyro_emorl.sites import latent_site
from pyro_emorl.train import RunOptions, fit
from pyro_emorl.version import __version__


def __getattr__(name: str) -> ModuleType:
    # The figures need matplotlib (about 30 MB and 0.3 s): imported on first use of `pe.viz`.
    if name == "viz":
        return importlib.import_module("pyro_emorl.viz")
    raise AttributeError(f"module 'pyro_emorl' has no attribute {name!r}")


__all__ = [
    "Decoder",
    "Decomposition",
    "EMORLConfig",
    "GECOConfig",
    "GaussianLikelihood",
    "Guide",
    "HierarchicalGuide",
    "HierarchicalPrior",
    "ImageLikelihood",
    "MixtureLikelihood",
    "ModelConfig",
    "Posterior",
    "RefinableGuide",
    "RunOptions",
    "SceneModel",
    "SlotAttentionConfig",
    "SlotModel",
    "SlotPrior",
    "StandardNormalPrior",
    "TrainingConfig",
    "__version__",
    "build",
    "data",
    "decompose",
    "evaluation",
    "fit",
    "import_components",
    "infer",
    "io",
    "latent_site",
    "load_for_inference",
    "load_pretrained",
    "metrics",
    "models",
    "nn",
    "presets",
    "protocols",
    "register",
    "registered",
    "train",
    "viz",
]
