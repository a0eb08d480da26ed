"""Named configurations: the paper's presets (equal to the official train configs), the CPU
recipes and the baselines' presets, each defined in its model's folder and registered by name.

`get` returns any registered preset, a user's own included; the library's are also functions of
this module (``pe.presets.tetrominoes()``).
"""

from __future__ import annotations

from typing import Any

from pyro_emorl.config import ModelConfig
from pyro_emorl.models.emorl.presets import (
    TETROMINOES_FAST_DEPARTURES,
    clevr6,
    clevr6_128,
    clevrtex,
    multi_dsprites,
    tetrominoes,
    tetrominoes_fast,
)
from pyro_emorl.models.iodine.presets import (
    iodine_clevr6,
    iodine_multi_dsprites,
    iodine_tetrominoes,
    iodine_tetrominoes_fast,
)
from pyro_emorl.models.slot_attention.presets import (
    slot_attention_clevr6,
    slot_attention_multi_dsprites,
    slot_attention_tetrominoes,
)
from pyro_emorl.registry import REGISTRY, preset


def get(name: str, **overrides: Any) -> ModelConfig:
    """The preset called ``name`` with optional field overrides."""
    return preset(name, **overrides)


def names() -> list[str]:
    """The names of every registered preset, sorted."""
    return REGISTRY.names("preset")


def data_of(name: str) -> str | None:
    """The generator of the images of preset ``name`` (``None``: it has none; pass a file)."""
    data: str | None = REGISTRY.get("preset", name).extras.get("data")
    return data


__all__ = [
    "TETROMINOES_FAST_DEPARTURES",
    "clevr6",
    "clevr6_128",
    "clevrtex",
    "data_of",
    "get",
    "iodine_clevr6",
    "iodine_multi_dsprites",
    "iodine_tetrominoes",
    "iodine_tetrominoes_fast",
    "multi_dsprites",
    "names",
    "slot_attention_clevr6",
    "slot_attention_multi_dsprites",
    "slot_attention_tetrominoes",
    "tetrominoes",
    "tetrominoes_fast",
]
