"""Configuration: the settings every model shares, field checks, and the objective's settings.

A leaf of the package: it imports nothing else of pyro_emorl, so any layer may use it.
"""

from pyro_emorl.config.base import ModelConfig, ObjectiveSettings
from pyro_emorl.config.training import GECOConfig, TrainingConfig

__all__ = ["GECOConfig", "ModelConfig", "ObjectiveSettings", "TrainingConfig"]
