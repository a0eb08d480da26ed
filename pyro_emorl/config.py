"""Configuration dataclasses, the paper's presets, and `build`."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyro_emorl import fields
from pyro_emorl.baselines.slot_attention import SlotAttentionGuide, build_slot_attention
from pyro_emorl.guide import HierarchicalGuide
from pyro_emorl.infer.elbo import step_weights as _step_weights
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
MODELS = ("emorl", "slot_attention")
#: The official code's xavier gain.
OFFICIAL_INIT_GAIN = 0.02


@dataclass(frozen=True)
class GECOConfig:
    """GECO settings (see [GECO][pyro_emorl.infer.GECO], which uses them).

    Attributes:
        target_per_element: the reconstruction target, a negative log-likelihood per image
            element (``C * H * W`` elements), in ``convention``; the presets quote the official
            per-element targets (Tetrominoes -1.224, CLEVR6 -2.206).
        convention: ``"official"`` (the official code's unnormalised likelihoods; converted by
            adding ``1/2 log(2 pi)`` per element) or ``"normalized"`` (this library's).
        ema_decay: decay of the moving average ``C_ema`` of ``target - nll``, in ``[0, 1)``.
        step_size: base step of the multiplier: ``beta <- max(beta_min, beta - s * C_ema)``.
        speedup: multiplier of ``step_size`` while the constraint is met (``C_ema > 0``); 5 for
            the official CLEVR6 128x128 recipe, 1 elsewhere.
        beta_init: initial ``beta`` (the weight of the NLL is ``softplus(beta)``).
        beta_min: floor of ``beta``.
        warm_start: optimisation steps of the plain ELBO before GECO takes over.
    """

    target_per_element: float
    convention: str = "official"
    ema_decay: float = 0.99
    step_size: float = 1e-6
    speedup: float = 1.0
    beta_init: float = 0.55
    beta_min: float = 0.55
    warm_start: int = 1000

    def __post_init__(self) -> None:
        _set = object.__setattr__
        _set(
            self,
            "target_per_element",
            fields.real("geco.target_per_element", self.target_per_element),
        )
        fields.choice("geco.convention", self.convention, ("official", "normalized"))
        decay = fields.real("geco.ema_decay", self.ema_decay, minimum=0.0)
        if decay >= 1:
            raise ValueError(f"geco.ema_decay must be in [0, 1), got {decay}")
        _set(self, "ema_decay", decay)
        for name in ("step_size", "speedup"):
            _set(self, name, fields.real(f"geco.{name}", getattr(self, name), positive=True))
        for name in ("beta_init", "beta_min"):
            _set(self, name, fields.real(f"geco.{name}", getattr(self, name)))
        _set(self, "warm_start", fields.integer("geco.warm_start", self.warm_start, 0))


@dataclass(frozen=True)
class TrainingConfig:
    """The optimisation recipe (official values by default).

    Attributes:
        steps: optimisation steps of the whole run.
        batch_size: images per step, over all processes together (split across ``torchrun``
            ranks).
        lr: Adam's base learning rate.
        warmup_steps: steps of the linear learning-rate warm-up from 0.
        lr_half_life: steps per halving of the learning rate after the warm-up (see
            [official_lr_factor][pyro_emorl.infer.official_lr_factor]).
        clip_grad_norm: the global gradient norm is clipped to this (``None``: no clipping).
        curriculum: ``(first_step, I)`` pairs: from ``first_step`` on, training uses ``I``
            refinement steps (see [RefinementCurriculum][pyro_emorl.infer.RefinementCurriculum]).
        kl_warmup_steps: steps over which the KL weight rises linearly from near 0 to
            ``kl_beta`` (see [kl_warmup_factor][pyro_emorl.infer.kl_warmup_factor]); 0, the
            official recipe, charges the full KL from the first step.
        noise_warmup_steps: steps over which the sampling noise of the latents ``z_1 .. z_L``
            rises linearly from 0 (the posterior means) to its full scale; the initial slot
            noise ``z_0`` is never scaled, since it is what tells the slots apart. 0, the
            official recipe, samples with the full noise from the first step.
    """

    steps: int = 300_000
    batch_size: int = 32
    lr: float = 4e-4
    warmup_steps: int = 10_000
    lr_half_life: int = 100_000
    clip_grad_norm: float = 5.0
    curriculum: tuple[tuple[int, int], ...] = ((-1, 3), (100_000, 1))
    kl_warmup_steps: int = 0
    noise_warmup_steps: int = 0

    def __post_init__(self) -> None:
        _set = object.__setattr__
        _set(self, "steps", fields.integer("training.steps", self.steps, 1))
        _set(self, "batch_size", fields.integer("training.batch_size", self.batch_size, 1))
        _set(self, "lr", fields.real("training.lr", self.lr, positive=True))
        _set(self, "warmup_steps", fields.integer("training.warmup_steps", self.warmup_steps, 0))
        _set(self, "lr_half_life", fields.integer("training.lr_half_life", self.lr_half_life, 1))
        clip = self.clip_grad_norm
        if clip is not None:
            _set(
                self, "clip_grad_norm", fields.real("training.clip_grad_norm", clip, positive=True)
            )
        _set(self, "curriculum", fields.curriculum("training.curriculum", self.curriculum))
        _set(
            self,
            "kl_warmup_steps",
            fields.integer("training.kl_warmup_steps", self.kl_warmup_steps, 0),
        )
        _set(
            self,
            "noise_warmup_steps",
            fields.integer("training.noise_warmup_steps", self.noise_warmup_steps, 0),
        )


@dataclass(frozen=True)
class EMORLConfig:
    """Everything that defines an EfficientMORL model and its training.

    Attributes:
        image_shape: ``(C, H, W)``.
        num_slots: ``K``.
        z_dim: ``D``.
        num_layers: stochastic layers ``L`` (for ``model="slot_attention"``: the attention
            iterations, 3 in the official code, one point-mass site each).
        refinement_steps: ``I`` at evaluation (training follows ``training.curriculum``).
        log_scale: ``ln sigma`` of the likelihood.
        decoder: ``"iodine"``, ``"small"`` or ``"big"``.
        likelihood: ``"gaussian"`` (mask-weighted mean) or ``"mixture"`` (pixel-wise GMM).
        prior: ``"reversed++"``, ``"reversed"``, ``"bottom_up"`` or ``"standard_normal"``.
        dual_gru: DualGRU (True) or the plain-GRU ablation.
        learn_scale: learn ``ln sigma``.
        kl_beta: KL weight.
        step_weights: ``"official"`` or ``"paper"`` refinement step weights, or the weights
            ``w_0 .. w_I`` themselves (for a curriculum with a single ``I``).
        init_gain: xavier gain of the convolutions and linear layers at initialisation (the
            official code's 0.02 makes the decoder ignore the latents for thousands of steps;
            the fast recipes use 1.0).
        geco: GECO settings or ``None``.
        training: the optimisation recipe.
        model: ``"emorl"`` (EfficientMORL) or ``"slot_attention"``: the official code's Slot
            Attention baseline as a Pyro program (module ``pyro_emorl.baselines.slot_attention``;
            presets ``slot_attention_*``). Slot Attention uses ``image_shape``, ``num_slots``,
            ``z_dim``, ``num_layers``, ``decoder``, ``likelihood``, ``log_scale``,
            ``learn_scale``, ``init_gain`` (decoder only) and ``training``; it needs
            ``refinement_steps = 0``, a curriculum of ``I = 0`` only, no GECO and a step weight
            of 1 at ``I = 0`` (``step_weights="paper"`` or ``(1.0,)``); ``prior``, ``dual_gru``
            and ``kl_beta`` do not apply (its KL is 0).
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
    step_weights: str | tuple[float, ...] = "official"
    init_gain: float = OFFICIAL_INIT_GAIN
    geco: GECOConfig | None = None
    training: TrainingConfig = field(default_factory=TrainingConfig)
    model: str = "emorl"

    def __post_init__(self) -> None:
        _set = object.__setattr__
        shape = self.image_shape
        if isinstance(shape, str | bytes) or not isinstance(shape, Sequence) or len(shape) != 3:
            raise ValueError(f"image_shape must be (C, H, W), got {shape!r}")
        _set(
            self, "image_shape", tuple(fields.integer("image_shape (C, H, W)", s, 1) for s in shape)
        )
        for name in ("num_slots", "z_dim", "num_layers", "refinement_steps"):
            minimum = 0 if name in ("refinement_steps", "num_layers") else 1
            _set(self, name, fields.integer(name, getattr(self, name), minimum))
        _set(self, "init_gain", fields.real("init_gain", self.init_gain, positive=True))
        _set(self, "log_scale", fields.real("log_scale (ln sigma)", self.log_scale))
        _set(self, "kl_beta", fields.real("kl_beta", self.kl_beta, minimum=0.0))
        for name in ("dual_gru", "learn_scale"):
            fields.boolean(name, getattr(self, name))
        if isinstance(self.step_weights, str):
            fields.choice("step_weights", self.step_weights, ("official", "paper"))
        elif isinstance(self.step_weights, Sequence) and not isinstance(self.step_weights, bytes):
            # Canonical form (tuples, as checkpoints store it; JSON gives lists).
            weights = tuple(fields.real("step_weights", w) for w in self.step_weights)
            _set(self, "step_weights", weights)
        else:
            raise ValueError(
                f"step_weights must be 'official', 'paper' or numbers, got {self.step_weights!r}"
            )
        fields.choice("model", self.model, MODELS)
        fields.choice("decoder", self.decoder, DECODERS)
        fields.choice("likelihood", self.likelihood, LIKELIHOODS)
        fields.choice("prior", self.prior, PRIORS)
        if self.geco is not None and not isinstance(self.geco, GECOConfig):
            raise ValueError(f"geco must be GECO settings or None, got {self.geco!r}")
        if not isinstance(self.training, TrainingConfig):
            raise ValueError(f"training must be a TrainingConfig, got {self.training!r}")
        if self.decoder == "big" and self.image_shape[1:] != (96, 96):
            raise ValueError("decoder='big' only produces 96x96 images")
        if self.model == "slot_attention":
            self._check_slot_attention()

    def _check_slot_attention(self) -> None:
        problems = []
        if self.num_layers < 1:
            problems.append(
                f"num_layers (attention iterations) must be >= 1, not {self.num_layers}"
            )
        if self.refinement_steps != 0:
            problems.append(f"refinement_steps must be 0, not {self.refinement_steps}")
        if any(steps != 0 for _, steps in self.training.curriculum):
            problems.append(
                f"training.curriculum must be [[-1, 0]], not {list(self.training.curriculum)}"
            )
        if self.geco is not None:
            problems.append("geco must be None")
        if self.training.noise_warmup_steps != 0:
            problems.append(
                "training.noise_warmup_steps must be 0 (its latents are point masses), "
                f"not {self.training.noise_warmup_steps}"
            )
        if self._step_weight_at_zero() != 1.0:
            problems.append(
                f"step_weights must weigh I = 0 by 1 ('paper' or [1.0]), not {self.step_weights!r}"
            )
        if problems:
            raise ValueError(
                "model='slot_attention' (no refinement, no KL, no GECO) needs: "
                + "; ".join(problems)
                + " (the presets slot_attention_tetrominoes, slot_attention_multi_dsprites and "
                "slot_attention_clevr6 set them)"
            )

    def _step_weight_at_zero(self) -> float | None:
        try:
            return _step_weights(0, self.step_weights)[0]
        except ValueError:
            return None

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
        """Inverse of `to_dict`."""
        data = dict(data)
        if data.get("geco") is not None:
            data["geco"] = GECOConfig(**data["geco"])
        if "training" in data:
            data["training"] = TrainingConfig(**data["training"])
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
) -> tuple[EMORLModel, HierarchicalGuide | SlotAttentionGuide]:
    """The Pyro model and guide for ``config`` (both ``nn.Module``s, official initialisation).

    ``config.model == "slot_attention"`` gives the Slot Attention baseline: an `EMORLModel` with
    an improper flat slot prior and a point-mass guide (``SlotAttentionGuide``, module
    ``pyro_emorl.baselines.slot_attention``).

    Args:
        config: the configuration.
        register_params: let model and guide register their parameters in Pyro's param store
            on every call, for ``pyro.infer.SVI``.
    """
    if config.model == "slot_attention":
        return build_slot_attention(config, register_params)
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
