"""IODINE's programs built from a configuration (registered as the model ``"iodine"``), and its
components registered by name: the decoder ``"iodine_broadcast"`` and the likelihood
``"logistic_mixture"``."""

from __future__ import annotations

import math
from typing import Protocol

import torch
from torch import nn

from pyro_emorl.models.iodine.config import IODINEConfig
from pyro_emorl.models.iodine.networks import (
    BroadcastDecoder,
    RefinementInputs,
    RefinementNetwork,
    original_init_,
    port_init_,
)
from pyro_emorl.models.iodine.programs import (
    IODINEGuide,
    IODINEPrior,
    LogisticMixtureLikelihood,
)
from pyro_emorl.models.slot_model import SlotModel
from pyro_emorl.registry import make_component, register


class DecoderShape(Protocol):
    """What ``"iodine_broadcast"`` reads of a model configuration."""

    @property
    def z_dim(self) -> int:
        """``D``."""
        ...

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)``."""
        ...


class ScaleSettings(Protocol):
    """What ``"logistic_mixture"`` reads of a model configuration."""

    @property
    def log_scale(self) -> float:
        """``ln`` of the logistic scale."""
        ...

    @property
    def learn_scale(self) -> bool:
        """Whether it is trained."""
        ...


@register("decoder", "iodine_broadcast")
def iodine_broadcast(
    config: DecoderShape,
    *,
    architecture: str = "port",
    channels: int = 64,
    kernel: int = 3,
    layers: int = 4,
) -> BroadcastDecoder:
    """IODINE's spatial broadcast decoder: the port's (``architecture="port"``: 3x3 valid convs,
    sigmoid means) or the TF1 original's (``"original"``: 5.0 latent channel, SAME convs)."""
    return BroadcastDecoder(
        config.z_dim, config.image_shape, architecture, channels, kernel, layers
    )


@register("likelihood", "logistic_mixture")
def logistic_mixture(config: ScaleSettings) -> LogisticMixtureLikelihood:
    """Pixel-wise mixture of logistics over the joint channels (IODINE's original; scale
    ``exp(log_scale)``, 0.03 there)."""
    return LogisticMixtureLikelihood(config.log_scale, config.learn_scale)


def _initialise(config: IODINEConfig, decoder: nn.Module, guide: IODINEGuide) -> None:
    """The port's or the original's initialisation, in place."""
    if config.init == "port":
        for module in (decoder, guide.network):
            port_init_(module)
        return
    for module in (decoder, guide.network, guide.inputs):
        original_init_(module)
    # tf.get_variable's default for the [2D] initial posterior: glorot-uniform, whose fans are
    # both 2D for a vector, so the limit is sqrt(6 / (2D + 2D)).
    limit = math.sqrt(6 / (2 * guide.initial_params.numel()))
    with torch.no_grad():
        guide.initial_params.uniform_(-limit, limit)


@register("model", "iodine", config=IODINEConfig)
def build_iodine(
    config: IODINEConfig, register_params: bool = False
) -> tuple[SlotModel, IODINEGuide]:
    """IODINE: the slot prior, the configured decoder and mixture likelihood as the model; the
    refinement guide.

    Args:
        config: the configuration; its likelihood and decoder are built by name.
        register_params: let model and guide register their parameters in Pyro's param store
            on every call, for ``pyro.infer.SVI``.
    """
    decoder = make_component("decoder", config)
    model = SlotModel(
        prior=IODINEPrior(config.z_dim, config.prior_scale),
        decoder=decoder,
        likelihood=make_component("likelihood", config),
        num_slots=config.num_slots,
        image_shape=config.image_shape,
        register_params=register_params,
    )
    inputs = RefinementInputs(
        config.refinement_inputs, config.image_shape, config.z_dim, config.coordinates
    )
    network = RefinementNetwork(
        inputs.spatial_channels,
        inputs.flat_size,
        config.z_dim,
        conv_channels=config.refine_channels,
        kernel=config.refine_kernel,
        padding=config.refine_padding,
        mlp=config.refine_mlp,
        mlp_activate_final=config.refine_mlp_activate_final,
        lstm=config.lstm,
        lstm_size=config.lstm_size,
    )
    guide = IODINEGuide(
        inputs,
        network,
        num_slots=config.num_slots,
        z_dim=config.z_dim,
        image_shape=config.image_shape,
        port_image_tiling=config.port_image_tiling,
        register_params=register_params,
    )
    _initialise(config, decoder, guide)
    return model, guide
