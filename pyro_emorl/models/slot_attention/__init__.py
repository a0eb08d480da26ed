"""Slot Attention (Locatello et al. 2020), the official EfficientMORL code's baseline, as Pyro
programs: configuration, programs, build and presets (registered as the model
``"slot_attention"``)."""

from pyro_emorl.models.slot_attention import presets
from pyro_emorl.models.slot_attention.build import build_slot_attention
from pyro_emorl.models.slot_attention.config import SLOT_ATTENTION_LOG_SCALE, SlotAttentionConfig
from pyro_emorl.models.slot_attention.programs import (
    FlatSlotPrior,
    SlotAttentionGuide,
    nll_offset,
    official_loss,
)

__all__ = [
    "SLOT_ATTENTION_LOG_SCALE",
    "FlatSlotPrior",
    "SlotAttentionConfig",
    "SlotAttentionGuide",
    "build_slot_attention",
    "nll_offset",
    "official_loss",
    "presets",
]
