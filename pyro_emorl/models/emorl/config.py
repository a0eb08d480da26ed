"""The configuration of EfficientMORL: its own fields beside the shared ones."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pyro_emorl.config import GECOConfig, ModelConfig, ObjectiveSettings, TrainingConfig, fields
from pyro_emorl.registry import check_component

#: The official code's xavier gain.
OFFICIAL_INIT_GAIN = 0.02


@dataclass(frozen=True)
class EMORLConfig(ModelConfig):
    """Everything that defines an EfficientMORL model and its training.

    The components are named: ``prior``, ``likelihood`` and ``decoder`` are names registered
    with [register][pyro_emorl.register] (the library's or your own), built with the options
    in ``prior_options``, ``likelihood_options`` and ``decoder_options``.

    Attributes:
        image_shape: ``(C, H, W)``.
        num_slots: ``K``.
        refinement_steps: ``I`` at evaluation (training follows ``training.curriculum``).
        training: the optimisation recipe.
        z_dim: ``D``.
        num_layers: stochastic layers ``L``.
        log_scale: ``ln sigma`` of the likelihood.
        decoder: a registered decoder: ``"iodine"``, ``"small"``, ``"big"`` or your own.
        likelihood: a registered likelihood: ``"gaussian"`` (mask-weighted mean), ``"mixture"``
            (pixel-wise GMM) or your own.
        prior: a registered prior: ``"reversed++"``, ``"reversed"``, ``"bottom_up"``,
            ``"standard_normal"`` or your own.
        dual_gru: DualGRU (True) or the plain-GRU ablation.
        learn_scale: learn ``ln sigma``.
        kl_beta: KL weight.
        step_weights: ``"official"`` or ``"paper"`` refinement step weights, or the weights
            ``w_0 .. w_I`` themselves (for a curriculum with a single ``I``).
        init_gain: xavier gain of the convolutions and linear layers at initialisation (the
            official code's 0.02 makes the decoder ignore the latents for thousands of steps;
            the fast recipes use 1.0).
        geco: GECO settings or ``None``.
        sample_initial_state: start each slot's recurrent state from its own sample ``z_0``,
            not the shared mean ``mu_0`` (off in the paper's recipes).
        truncate_gradients: back-propagate through the last bottom-up layer only (the state
            it starts from is detached; off in the paper's recipes).
        per_slot_init: each slot starts from its own learned initial mean and scale, not one
            shared by all (off in the paper's recipes; the model then decodes into exactly
            ``num_slots`` slots).
        prior_options: keyword options of the prior's factory.
        likelihood_options: keyword options of the likelihood's factory.
        decoder_options: keyword options of the decoder's factory.
    """

    model: ClassVar[str] = "emorl"
    nested: ClassVar[Mapping[str, type]] = {"training": TrainingConfig, "geco": GECOConfig}

    refinement_steps: int = 3
    z_dim: int = 64
    num_layers: int = 3
    log_scale: float = math.log(0.1)
    decoder: str = "iodine"
    likelihood: str = "gaussian"
    prior: str = "reversed++"
    dual_gru: bool = True
    learn_scale: bool = False
    kl_beta: float = 1.0
    step_weights: str | tuple[float, ...] = "official"
    init_gain: float = OFFICIAL_INIT_GAIN
    geco: GECOConfig | None = None
    sample_initial_state: bool = False
    truncate_gradients: bool = False
    per_slot_init: bool = False
    prior_options: dict[str, Any] = field(default_factory=dict)
    likelihood_options: dict[str, Any] = field(default_factory=dict)
    decoder_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        _set = object.__setattr__
        _set(self, "z_dim", fields.integer("z_dim", self.z_dim, 1))
        _set(self, "num_layers", fields.integer("num_layers", self.num_layers, 0))
        _set(self, "init_gain", fields.real("init_gain", self.init_gain, positive=True))
        _set(self, "log_scale", fields.real("log_scale (ln sigma)", self.log_scale))
        _set(self, "kl_beta", fields.real("kl_beta", self.kl_beta, minimum=0.0))
        for name in (
            "dual_gru",
            "learn_scale",
            "sample_initial_state",
            "truncate_gradients",
            "per_slot_init",
        ):
            fields.boolean(name, getattr(self, name))
        _set(self, "step_weights", check_step_weights(self.step_weights))
        for kind in ("decoder", "likelihood", "prior"):
            _set(self, f"{kind}_options", check_component(self, kind))
        if self.geco is not None and not isinstance(self.geco, GECOConfig):
            raise ValueError(f"geco must be GECO settings or None, got {self.geco!r}")
        if self.decoder == "big" and self.image_shape[1:] != (96, 96):
            raise ValueError("decoder='big' only produces 96x96 images")

    def objective_settings(self) -> ObjectiveSettings:
        """The refinement ELBO with the configured step weights, KL weight and GECO."""
        return ObjectiveSettings(
            self.refinement_steps, self.step_weights, self.kl_beta, self.geco, self.image_shape
        )

    @classmethod
    def from_official(cls, net: Mapping[str, Any], **overrides: Any) -> EMORLConfig:
        """Build from the official ``Net`` option names.

        Accepts ``K``, ``z_size``, ``input_size``, ``stochastic_layers``, ``refinement_iters``,
        ``log_scale``, ``image_decoder``, ``image_likelihood`` (``Gaussian``/``GMM``),
        ``bottom_up_prior``, ``reverse_prior_plusplus``, ``use_DualGRU``, ``geco_warm_start``,
        ``kl_beta`` and ``geco`` (``None`` or ``{"target_per_element": t}``, official convention).
        """
        known = {
            "K", "z_size", "input_size", "stochastic_layers", "refinement_iters", "log_scale",
            "image_decoder", "image_likelihood", "bottom_up_prior", "reverse_prior_plusplus",
            "use_DualGRU", "geco_warm_start", "kl_beta", "geco", "batch_size",
        }  # fmt: skip
        unknown = set(net) - known
        if unknown:
            raise ValueError(
                f"unknown official Net options {sorted(unknown)}; known: {sorted(known)}"
            )
        default = cls()
        likelihood = {"Gaussian": "gaussian", "GMM": "mixture"}
        official_likelihood = net.get("image_likelihood", "Gaussian")
        if official_likelihood not in likelihood:
            raise ValueError(
                f"image_likelihood must be 'Gaussian' or 'GMM', got {official_likelihood!r}"
            )
        if net.get("bottom_up_prior", False):
            if net.get("reverse_prior_plusplus", False):
                raise ValueError("bottom_up_prior and reverse_prior_plusplus exclude each other")
            prior = "bottom_up"
        else:
            prior = "reversed++" if net.get("reverse_prior_plusplus", True) else "reversed"
        geco = net.get("geco")
        if geco is not None:
            geco = GECOConfig(
                target_per_element=float(geco["target_per_element"]),
                convention="official",
                warm_start=int(net.get("geco_warm_start", 1000)),
            )
        config = cls(
            image_shape=tuple(net.get("input_size", default.image_shape)),
            num_slots=int(net.get("K", 4)),
            z_dim=int(net.get("z_size", default.z_dim)),
            num_layers=int(net.get("stochastic_layers", default.num_layers)),
            refinement_steps=int(net.get("refinement_iters", default.refinement_steps)),
            log_scale=float(net.get("log_scale", default.log_scale)),
            decoder=net.get("image_decoder", default.decoder),
            likelihood=likelihood[official_likelihood],
            prior=prior,
            dual_gru=bool(net.get("use_DualGRU", True)),
            kl_beta=float(net.get("kl_beta", 1.0)),
            geco=geco,
        )
        return config.replace(**overrides) if overrides else config


def check_step_weights(value: Any) -> str | tuple[float, ...]:
    """``"official"``, ``"paper"``, or step weights as a tuple of finite numbers."""
    if isinstance(value, str):
        return fields.choice("step_weights", value, ("official", "paper"))
    if isinstance(value, Sequence) and not isinstance(value, bytes):
        # Canonical form (tuples, as checkpoints store it; JSON gives lists).
        return tuple(fields.real("step_weights", w) for w in value)
    raise ValueError(f"step_weights must be 'official', 'paper' or numbers, got {value!r}")
