"""The configuration of IODINE: its own fields beside the shared ones.

The defaults are the PyTorch port's experiment configuration (karazijal/clevrtex
``experiments/iodine.py``: CLEVR at 128x128, K = 11, D = 128, 5 decodes, LSTM 256, 64 channels,
sigma 0.1, Adam 3e-4, batch 32, gradient clipping 5), whose programs the float64 fixtures pin.
Every place where the port departs from the TF1 original (google-deepmind/deepmind-research
``iodine/``) is a field here; the presets ``iodine_tetrominoes``, ``iodine_multi_dsprites`` and
``iodine_clevr6`` set the original's choices.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pyro_emorl.config import ModelConfig, ObjectiveSettings, TrainingConfig, fields
from pyro_emorl.config.base import check_options

#: The port's constant learning rate, as the library's schedule expresses it: a half-life of
#: 10^18 steps changes the rate by less than 1e-12 relative over 10^6 steps.
CONSTANT_LR_HALF_LIFE = 10**18

#: The original's prior ``N(0, softplus(0))`` per dimension: the standard deviation ``sqrt(ln 2)``.
ORIGINAL_PRIOR_SCALE = math.sqrt(math.log(2.0))

#: Step-weight schemes by name (see `iodine_step_weights`).
STEP_WEIGHT_SCHEMES = ("port", "original")


def iodine_step_weights(num_steps: int, scheme: str | Sequence[float]) -> tuple[float, ...]:
    """The weights ``w_0 .. w_I`` of IODINE's loss ``sum_r w_r * objective_r`` for ``I``
    refinement steps (``I + 1`` decodes).

    ``"port"``: ``w_r = (r + 1) / (I + 1)`` (the port's ``(i + 1) / T`` with ``T = I + 1``
    decodes). ``"original"``: ``linspace(0, 1, I + 1)``, ``w_r = r / I``, so the initial
    posterior's term has weight 0 (the original's ``iter_loss_weight="linspace"``; it needs
    ``I >= 1``). A sequence gives the weights explicitly.

    Args:
        num_steps: ``I``.
        scheme: ``"port"``, ``"original"`` or ``I + 1`` numbers.

    Returns:
        ``I + 1`` weights.
    """
    if scheme == "port":
        return tuple((r + 1) / (num_steps + 1) for r in range(num_steps + 1))
    if scheme == "original":
        if num_steps < 1:
            raise ValueError("the original's step weights linspace(0, 1, I + 1) need I >= 1")
        return tuple(r / num_steps for r in range(num_steps + 1))
    if isinstance(scheme, str):
        raise ValueError(f"step_weights must be one of {STEP_WEIGHT_SCHEMES} or numbers")
    weights = tuple(float(w) for w in scheme)
    if len(weights) != num_steps + 1:
        raise ValueError(f"need {num_steps + 1} step weights for I = {num_steps}, got {weights}")
    return weights


def _port_training() -> TrainingConfig:
    """The port's recipe: Adam 3e-4 (constant), batch 32, clipping 5, 10^6 steps, I = 4."""
    return TrainingConfig(
        steps=1_000_000,
        batch_size=32,
        lr=3e-4,
        warmup_steps=0,
        lr_half_life=CONSTANT_LR_HALF_LIFE,
        clip_grad_norm=5.0,
        curriculum=((-1, 4),),
    )


def _sizes(name: str, value: Any, minimum: int) -> tuple[int, ...]:
    """A sequence of integers >= ``minimum`` as a tuple (JSON gives lists)."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ValueError(f"{name} must be a list of integers, got {value!r}")
    return tuple(fields.integer(name, v, minimum) for v in value)


@dataclass(frozen=True)
class IODINEConfig(ModelConfig):
    """IODINE (Greff et al., ICML 2019): a slot model refined by a learned refinement network.

    Model: ``z_k ~ N(0, prior_scale^2 I)``, the decoder ``decoder`` (default the port's spatial
    broadcast decoder, ``"iodine_broadcast"``), a pixel-wise mixture likelihood ``likelihood``.
    Guide: a learned initial posterior, then ``I`` refinement steps of the refinement network on
    IODINE's auxiliary inputs. Loss: ``sum_r w_r * mean_B(nll_r + kl_beta * kl_r)``.

    Where the PyTorch port and the TF1 original differ, the default is the port's and the field
    named gives the original's choice:

    * ``prior_scale``: 1 (port); ``sqrt(ln 2)``, i.e. ``N(0, ln 2)`` (original).
    * ``likelihood``, ``log_scale``: ``"mixture"``, Gaussian with sigma 0.1, one mixture per
      channel (port); ``"logistic_mixture"`` with scale 0.03, one mixture per pixel over the
      joint channels (original).
    * ``refinement_steps``: 4, the port's 5 decodes minus one; 5, the original's ``num_iters``
      (6 decodes).
    * ``step_weights``: ``"port"``, ``(r + 1) / (I + 1)``; ``"original"``, ``r / I`` (the
      initial posterior's term weighs 0).
    * ``decoder_options``: ``architecture="port"``, 3x3 unpadded convolutions on a grid enlarged
      by 8, a 1x1 output and sigmoid means; ``architecture="original"``, the constant 5.0
      appended to ``z``, "SAME" convolutions, a k x k output and unbounded means.
    * ``refine_channels``, ``refine_kernel``, ``refine_padding``: 4 convolutions 3x3 with
      padding 1 (port); 3 of 5x5 or 4 of 3x3 with TensorFlow's "same" padding (original).
    * ``refine_mlp``, ``refine_mlp_activate_final``: ``Linear + ELU`` (port); ``[128]`` or
      ``[256, 256]`` without a final ELU (original).
    * ``lstm``, ``lstm_size``: ``nn.LSTM``, two biases and no forget bias (port); Sonnet's LSTM,
      one bias and forget bias 1, none for Tetrominoes (original).
    * ``refinement_inputs``: 17 channels with a log-space mask posterior, the leave-one-out
      likelihood, the gradient w.r.t. the log masks, LayerNorms with an affine per element and
      ``d loc``, ``d raw_variance`` normalised apart (port); 18 or 24 channels with capacity,
      mask probabilities, a probability-space posterior, the counterfactual, the gradient
      w.r.t. the logits, Sonnet's LayerNorm (affine per channel) and ``d zp`` normalised jointly
      (original).
    * ``coordinates``: linear (port); ``"linear"`` or ``"cos"`` (original).
    * ``init``: xavier-normal with gain 0.02, initial posterior ``[0, 1]`` (port); Sonnet's
      truncated normal, glorot-uniform initial posterior (original).
    * ``training``: Adam 3e-4 constant, batch 32 (port); per dataset, decayed by 0.1 per 10^6
      steps (original).

    ``port_image_tiling`` reproduces a bug of the port (off by default, on only to reproduce its
    fixtures): the image input of slot ``(b, k)`` is image ``(b K + k) mod B``, another image of
    the batch when ``B > 1``.

    Attributes:
        image_shape: ``(C, H, W)``.
        num_slots: ``K``.
        refinement_steps: refinement steps ``I`` at evaluation (``I + 1`` decodes).
        training: the optimisation recipe; ``training.curriculum`` must hold one ``I`` (the step
            weights are those of that ``I``).
        z_dim: ``D``.
        prior_scale: standard deviation of the slot prior.
        likelihood: a registered likelihood whose distribution exposes its components:
            ``"mixture"`` (Gaussian) or ``"logistic_mixture"``.
        log_scale: ``ln`` of the likelihood's scale (sigma, or the logistic scale).
        learn_scale: learn ``log_scale``.
        decoder: a registered decoder (``"iodine_broadcast"`` or your own).
        refinement_inputs: ``"port"`` or ``"original"`` (see
            [RefinementInputs][pyro_emorl.models.iodine.RefinementInputs]).
        coordinates: coordinate channels of the refinement inputs, ``"linear"`` or ``"cos"``
            (``"cos"`` with the original inputs only).
        port_image_tiling: reproduce the port's image-tiling bug (see above).
        refine_channels: widths of the refinement encoder's stride-2 convolutions.
        refine_kernel: their kernel size.
        refine_padding: ``"symmetric"`` (the port) or ``"same"`` (TensorFlow's; the original).
        refine_mlp: widths of the encoder's MLP after the spatial mean.
        refine_mlp_activate_final: ELU after its last layer (the port: yes; the original: no).
        lstm: ``"torch"`` (the port's ``nn.LSTM``) or ``"sonnet"`` (``snt.LSTM``, forget bias 1).
        lstm_size: its hidden size; 0 for no recurrent layer (the original's Tetrominoes).
        init: ``"port"`` or ``"original"`` initialisation.
        kl_beta: KL weight.
        step_weights: ``"port"``, ``"original"`` or the weights ``w_0 .. w_I``.
        likelihood_options: keyword options of the likelihood's factory.
        decoder_options: keyword options of the decoder's factory (``architecture``,
            ``channels``, ``kernel``, ``layers`` for ``"iodine_broadcast"``).
    """

    model: ClassVar[str] = "iodine"
    nested: ClassVar[Mapping[str, type]] = {"training": TrainingConfig}

    image_shape: tuple[int, int, int] = (3, 128, 128)
    num_slots: int = 11
    refinement_steps: int = 4
    training: TrainingConfig = field(default_factory=_port_training)
    z_dim: int = 128
    prior_scale: float = 1.0
    likelihood: str = "mixture"
    log_scale: float = math.log(0.1)
    learn_scale: bool = False
    decoder: str = "iodine_broadcast"
    refinement_inputs: str = "port"
    coordinates: str = "linear"
    port_image_tiling: bool = False
    refine_channels: tuple[int, ...] = (64, 64, 64, 64)
    refine_kernel: int = 3
    refine_padding: str = "symmetric"
    refine_mlp: tuple[int, ...] = (256,)
    refine_mlp_activate_final: bool = True
    lstm: str = "torch"
    lstm_size: int = 256
    init: str = "port"
    kl_beta: float = 1.0
    step_weights: str | tuple[float, ...] = "port"
    likelihood_options: dict[str, Any] = field(default_factory=dict)
    decoder_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        _set = object.__setattr__
        _set(self, "z_dim", fields.integer("z_dim", self.z_dim, 1))
        _set(self, "prior_scale", fields.real("prior_scale", self.prior_scale, positive=True))
        _set(self, "log_scale", fields.real("log_scale", self.log_scale))
        _set(self, "kl_beta", fields.real("kl_beta", self.kl_beta, minimum=0.0))
        for name in ("learn_scale", "port_image_tiling", "refine_mlp_activate_final"):
            fields.boolean(name, getattr(self, name))
        fields.choice("refinement_inputs", self.refinement_inputs, ("port", "original"))
        fields.choice("coordinates", self.coordinates, ("linear", "cos"))
        if self.refinement_inputs == "port" and self.coordinates != "linear":
            raise ValueError("coordinates='cos' needs refinement_inputs='original'")
        fields.choice("refine_padding", self.refine_padding, ("symmetric", "same"))
        fields.choice("lstm", self.lstm, ("torch", "sonnet"))
        fields.choice("init", self.init, ("port", "original"))
        _set(self, "refine_channels", _sizes("refine_channels", self.refine_channels, 1))
        _set(self, "refine_mlp", _sizes("refine_mlp", self.refine_mlp, 1))
        _set(self, "refine_kernel", fields.integer("refine_kernel", self.refine_kernel, 1))
        _set(self, "lstm_size", fields.integer("lstm_size", self.lstm_size, 0))
        for name in ("decoder", "likelihood"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name} must be a registered name, got {getattr(self, name)!r}")
            options = check_options(f"{name}_options", getattr(self, f"{name}_options"))
            _set(self, f"{name}_options", options)
        weights = self.step_weights
        if not isinstance(weights, str) and isinstance(weights, Sequence):
            weights = tuple(fields.real("step_weights", w) for w in weights)
        elif weights not in STEP_WEIGHT_SCHEMES:
            raise ValueError(
                f"step_weights must be one of {STEP_WEIGHT_SCHEMES} or numbers, got {weights!r}"
            )
        _set(self, "step_weights", weights)
        iterations = {steps for _, steps in self.training.curriculum}
        if len(iterations) != 1:
            raise ValueError(
                "IODINE trains with one number of refinement steps: training.curriculum must "
                f"hold a single I, got {list(self.training.curriculum)}"
            )
        iodine_step_weights(self.training_steps, self.step_weights)  # refuse a mismatch now

    @property
    def training_steps(self) -> int:
        """The refinement steps ``I`` of training (the curriculum's one ``I``)."""
        return self.training.curriculum[0][1]

    def objective_settings(self) -> ObjectiveSettings:
        """The refinement ELBO with IODINE's step weights for the training ``I`` (explicit
        numbers), the KL weight and no GECO."""
        weights = iodine_step_weights(self.training_steps, self.step_weights)
        return ObjectiveSettings(self.training_steps, weights, self.kl_beta, None, self.image_shape)
