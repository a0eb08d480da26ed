"""EfficientMORL (Emami et al., ICML 2021) as Pyro programs: configuration, guide, build and
presets (registered as the model ``"emorl"``)."""

from pyro_emorl.models.emorl import presets
from pyro_emorl.models.emorl.build import build_emorl
from pyro_emorl.models.emorl.config import EMORLConfig
from pyro_emorl.models.emorl.guide import HierarchicalGuide

__all__ = ["EMORLConfig", "HierarchicalGuide", "build_emorl", "presets"]
