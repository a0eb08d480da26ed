"""Configuration dataclasses, the paper's presets, and :func:`build`."""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pyro_emorl.guide import HierarchicalGuide
from pyro_emorl.likelihoods import build_likelihood
from pyro_emorl.model import EMORLModel
from pyro_emorl.nn.decoder import build_decoder
from pyro_emorl.nn.encoder import ImageEncoder
from pyro_emorl.nn.init import official_init_
from pyro_emorl.nn.refinement import RefinementNetwork
from pyro_emorl.nn.stochastic_layer import BottomUpLayer
from pyro_emorl.priors import build_prior

DECODERS = ("iodine", "small", "big")
LIKELIHOODS = ("gaussian", "mixture")
PRIORS = ("reversed++", "reversed", "bottom_up", "standard_normal")
#: The official code's xavier gain.
OFFICIAL_INIT_GAIN = 0.02


@dataclass(frozen=True)
class GECOConfig:
    """GECO settings (see :class:`pyro_emorl.infer.GECO`).

    ``target_per_element`` is given in ``convention``: the presets quote the official
    (unnormalised) per-element targets.
    """

    target_per_element: float
    convention: str = "official"
    ema_decay: float = 0.99
    step_size: float = 1e-6
    speedup: float = 1.0
    beta_init: float = 0.55
    beta_min: float = 0.55
    warm_start: int = 1000


@dataclass(frozen=True)
class TrainingConfig:
    """The optimisation recipe (official values by default)."""

    steps: int = 300_000
    batch_size: int = 32
    lr: float = 4e-4
    warmup_steps: int = 10_000
    lr_half_life: int = 100_000
    clip_grad_norm: float = 5.0
    #: ``(first_step, I)`` pairs, see :class:`pyro_emorl.infer.RefinementCurriculum`.
    curriculum: tuple[tuple[int, int], ...] = ((-1, 3), (100_000, 1))


@dataclass(frozen=True)
class EMORLConfig:
    """Everything that defines an EfficientMORL model and its training.

    Attributes:
        image_shape: ``(C, H, W)``.
        num_slots: ``K``.
        z_dim: ``D``.
        num_layers: stochastic layers ``L``.
        refinement_steps: ``I`` at evaluation (training follows ``training.curriculum``).
        log_scale: ``ln sigma`` of the likelihood.
        decoder: ``"iodine"``, ``"small"`` or ``"big"``.
        likelihood: ``"gaussian"`` (mask-weighted mean) or ``"mixture"`` (pixel-wise GMM).
        prior: ``"reversed++"``, ``"reversed"``, ``"bottom_up"`` or ``"standard_normal"``.
        dual_gru: DualGRU (True) or the plain-GRU ablation.
        learn_scale: learn ``ln sigma``.
        kl_beta: KL weight.
        step_weights: ``"official"`` or ``"paper"`` refinement step weights.
        init_gain: xavier gain of the convolutions and linear layers at initialisation (the
            official code's 0.02 makes the decoder ignore the latents for thousands of steps;
            the fast recipes use 1.0).
        geco: GECO settings or ``None``.
        training: the optimisation recipe.
    """

    image_shape: tuple[int, int, int] = (3, 64, 64)
    num_slots: int = 4
    z_dim: int = 64
    num_layers: int = 3
    refinement_steps: int = 3
    log_scale: float = math.log(0.1)
    decoder: str = "iodine"
    likelihood: str = "gaussian"
    prior: str = "reversed++"
    dual_gru: bool = True
    learn_scale: bool = False
    kl_beta: float = 1.0
    step_weights: str = "official"
    init_gain: float = OFFICIAL_INIT_GAIN
    geco: GECOConfig | None = None
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "image_shape", tuple(int(s) for s in self.image_shape))
        if len(self.image_shape) != 3 or min(self.image_shape) < 1:
            raise ValueError(f"image_shape must be (C, H, W), got {self.image_shape}")
        for name in ("num_slots", "z_dim", "num_layers", "refinement_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ValueError(f"{name} must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))
            minimum = 0 if name in ("refinement_steps", "num_layers") else 1
            if value < minimum:
                raise ValueError(f"{name} must be >= {minimum}, got {value}")
        if not (isinstance(self.init_gain, numbers.Real) and 0 < self.init_gain < math.inf):
            raise ValueError(f"init_gain must be a positive number, got {self.init_gain!r}")
        if not math.isfinite(self.log_scale):
            raise ValueError(f"log_scale (ln sigma) must be finite, got {self.log_scale}")
        if isinstance(self.step_weights, str) and self.step_weights not in ("official", "paper"):
            raise ValueError(
                f"step_weights must be 'official' or 'paper', got {self.step_weights!r}"
            )
        if self.refinement_steps < 0:
            raise ValueError(f"refinement_steps must be >= 0, got {self.refinement_steps}")
        for name, allowed in (
            ("decoder", DECODERS),
            ("likelihood", LIKELIHOODS),
            ("prior", PRIORS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.decoder == "big" and self.image_shape[1:] != (96, 96):
            raise ValueError("decoder='big' only produces 96x96 images")

    def replace(self, **changes: Any) -> EMORLConfig:
        """A copy with some fields changed (``training`` and ``geco`` accept dicts of changes)."""
        for name in ("training", "geco"):
            if isinstance(changes.get(name), Mapping):
                current = getattr(self, name)
                changes[name] = dataclasses.replace(current, **changes[name])
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form (for checkpoints and JSON)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EMORLConfig:
        """Inverse of :meth:`to_dict`."""
        data = dict(data)
        if data.get("geco") is not None:
            data["geco"] = GECOConfig(**data["geco"])
        if "training" in data:
            training = dict(data["training"])
            training["curriculum"] = tuple(tuple(p) for p in training.get("curriculum", ()))
            data["training"] = TrainingConfig(**training)
        data["image_shape"] = tuple(data.get("image_shape", cls.image_shape))
        return cls(**data)

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


def build(
    config: EMORLConfig, register_params: bool = False
) -> tuple[EMORLModel, HierarchicalGuide]:
    """The Pyro model and guide for ``config`` (both ``nn.Module``s, official initialisation).

    Args:
        config: the configuration.
        register_params: let model and guide register their parameters in Pyro's param store
            on every call, for ``pyro.infer.SVI``.
    """
    c, h, w = config.image_shape
    model = EMORLModel(
        prior=build_prior(config.prior, config.z_dim, config.num_layers),
        decoder=build_decoder(config.decoder, config.z_dim, (h, w)),
        likelihood=build_likelihood(config.likelihood, config.log_scale, config.learn_scale),
        num_slots=config.num_slots,
        image_shape=config.image_shape,
        register_params=register_params,
    )
    guide = HierarchicalGuide(
        encoder=ImageEncoder(c),
        layer=BottomUpLayer(config.z_dim, dual_gru=config.dual_gru),
        refiner=RefinementNetwork(config.z_dim),
        num_layers=config.num_layers,
        num_slots=config.num_slots,
        z_dim=config.z_dim,
        image_shape=config.image_shape,
        register_params=register_params,
    )
    if config.init_gain != OFFICIAL_INIT_GAIN:  # the official gain is the blocks' own init
        for module in (model, guide):
            official_init_(module, gain=config.init_gain)
    return model, guide
