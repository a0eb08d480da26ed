"""pyro_emorl: EfficientMORL (Emami et al., ICML 2021) in Pyro.

Typical use::

    import pyro_emorl as pe
    model, guide = pe.build(pe.presets.multi_dsprites())
    loss_fn = pe.infer.RefinementELBO(num_steps=3)(model, guide)
"""

from pyro_emorl import baselines, compat, infer, likelihoods, metrics, nn, presets, priors
from pyro_emorl.config import EMORLConfig, GECOConfig, TrainingConfig, build
from pyro_emorl.decompose import DecodedSlots, Decomposition, StepDecomposition, decompose
from pyro_emorl.guide import HierarchicalGuide, PosteriorState
from pyro_emorl.model import EMORLModel
from pyro_emorl.pretrained import load_pretrained

__all__ = [
    "DecodedSlots",
    "Decomposition",
    "EMORLConfig",
    "EMORLModel",
    "GECOConfig",
    "HierarchicalGuide",
    "PosteriorState",
    "StepDecomposition",
    "TrainingConfig",
    "baselines",
    "build",
    "compat",
    "decompose",
    "infer",
    "likelihoods",
    "load_pretrained",
    "metrics",
    "nn",
    "presets",
    "priors",
]
__version__ = "0.1.0"
