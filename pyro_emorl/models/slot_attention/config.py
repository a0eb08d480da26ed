"""The configuration of the Slot Attention baseline: its own fields beside the shared ones."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pyro_emorl.config import ModelConfig, ObjectiveSettings, TrainingConfig, fields
from pyro_emorl.registry import check_component

SLOT_ATTENTION_LOG_SCALE = -0.5 * math.log(2.0)
"""``ln sigma`` of the presets' likelihood: ``sigma = 1/sqrt(2)``, so ``1 / (2 sigma^2) = 1`` and
the NLL is the summed squared error plus a constant."""


@dataclass(frozen=True)
class SlotAttentionConfig(ModelConfig):
    """Slot Attention (Locatello et al. 2020) as the official EfficientMORL code trains it.

    No refinement, no KL and no GECO: the objective is the likelihood of the image under the
    decoded slots, at ``I = 0`` with step weight 1.

    Attributes:
        image_shape: ``(C, H, W)``.
        num_slots: ``K``.
        refinement_steps: must be 0 (the slots are not refined).
        training: the optimisation recipe (its curriculum must be ``I = 0`` only and it has no
            noise warm-up: the slots are point masses).
        z_dim: slot width ``D``.
        num_layers: attention iterations (3 in the official code), one latent site each.
        log_scale: ``ln sigma`` of the likelihood.
        decoder: a registered decoder (``"small"``, ``"big"``, ``"iodine"`` or your own).
        likelihood: a registered likelihood (``"gaussian"`` in the official recipe).
        learn_scale: learn ``ln sigma``.
        init_gain: xavier gain of the decoder at initialisation (the official 0.02).
        likelihood_options: keyword options of the likelihood's factory.
        decoder_options: keyword options of the decoder's factory.
    """

    model: ClassVar[str] = "slot_attention"
    nested: ClassVar[Mapping[str, type]] = {"training": TrainingConfig}

    z_dim: int = 64
    num_layers: int = 3
    log_scale: float = SLOT_ATTENTION_LOG_SCALE
    decoder: str = "small"
    likelihood: str = "gaussian"
    learn_scale: bool = False
    init_gain: float = 0.02
    likelihood_options: dict[str, Any] = field(default_factory=dict)
    decoder_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        _set = object.__setattr__
        _set(self, "z_dim", fields.integer("z_dim", self.z_dim, 1))
        _set(self, "init_gain", fields.real("init_gain", self.init_gain, positive=True))
        _set(self, "log_scale", fields.real("log_scale (ln sigma)", self.log_scale))
        fields.boolean("learn_scale", self.learn_scale)
        for kind in ("decoder", "likelihood"):
            _set(self, f"{kind}_options", check_component(self, kind))
        problems = []
        if isinstance(self.num_layers, bool) or not isinstance(self.num_layers, int):
            problems.append(f"num_layers must be an integer, not {self.num_layers!r}")
        elif self.num_layers < 1:
            problems.append(
                f"num_layers (attention iterations) must be >= 1, not {self.num_layers}"
            )
        if self.refinement_steps != 0:
            problems.append(f"refinement_steps must be 0, not {self.refinement_steps}")
        if any(steps != 0 for _, steps in self.training.curriculum):
            problems.append(
                f"training.curriculum must be [[-1, 0]], not {list(self.training.curriculum)}"
            )
        if self.training.noise_warmup_steps != 0:
            problems.append(
                "training.noise_warmup_steps must be 0 (its latents are point masses), "
                f"not {self.training.noise_warmup_steps}"
            )
        if problems:
            raise ValueError(
                "Slot Attention (no refinement, no KL, no GECO) needs: "
                + "; ".join(problems)
                + " (the presets slot_attention_tetrominoes, slot_attention_multi_dsprites and "
                "slot_attention_clevr6 set them)"
            )

    def objective_settings(self) -> ObjectiveSettings:
        """The likelihood alone: ``I = 0`` with step weight 1 (the KL of point masses under a
        flat prior is 0)."""
        return ObjectiveSettings(0, (1.0,), 1.0, None, self.image_shape)
