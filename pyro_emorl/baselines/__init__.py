"""Baselines of the paper as Pyro programs built from the same blocks, trained and evaluated by
the same code (select one with the configuration's ``model`` field)."""

from pyro_emorl.baselines.slot_attention import (
    SLOT_ATTENTION_LOG_SCALE,
    FlatDensity,
    FlatSlotPrior,
    PointMass,
    SlotAttentionGuide,
    build_slot_attention,
    nll_offset,
    official_loss,
    point_mass,
)

__all__ = [
    "SLOT_ATTENTION_LOG_SCALE",
    "FlatDensity",
    "FlatSlotPrior",
    "PointMass",
    "SlotAttentionGuide",
    "build_slot_attention",
    "nll_offset",
    "official_loss",
    "point_mass",
]
