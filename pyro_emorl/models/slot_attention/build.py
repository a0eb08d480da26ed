"""Slot Attention's programs built from a configuration (registered as the model
``"slot_attention"``)."""

from __future__ import annotations

from pyro_emorl.models.slot_attention.config import SlotAttentionConfig
from pyro_emorl.models.slot_attention.programs import (
    OFFICIAL_MLP_HIDDEN,
    FlatSlotPrior,
    SlotAttentionGuide,
)
from pyro_emorl.models.slot_model import SlotModel
from pyro_emorl.nn.encoder import ImageEncoder
from pyro_emorl.nn.init import default_init_, official_init_
from pyro_emorl.nn.slot_attention_iteration import SlotAttentionIteration
from pyro_emorl.registry import make_component, register


@register("model", "slot_attention", config=SlotAttentionConfig)
def build_slot_attention(
    config: SlotAttentionConfig, register_params: bool = False
) -> tuple[SlotModel, SlotAttentionGuide]:
    """Slot Attention: a flat prior, a decoder and a likelihood as the model; the point-mass
    guide of the attention iterations.

    Initialisation as in the official code: PyTorch's defaults everywhere except the decoder
    (xavier-normal with gain ``config.init_gain``, officially 0.02).

    Args:
        config: the configuration; its likelihood and decoder are built by name.
        register_params: let model and guide register their parameters in Pyro's param store
            on every call, for ``pyro.infer.SVI``.
    """
    decoder = make_component("decoder", config)
    if config.init_gain != 0.02:  # the decoders' own init is the official gain
        official_init_(decoder, gain=config.init_gain)
    model = SlotModel(
        prior=FlatSlotPrior(config.z_dim, config.num_layers),
        decoder=decoder,
        likelihood=make_component("likelihood", config),
        num_slots=config.num_slots,
        image_shape=config.image_shape,
        register_params=register_params,
    )
    guide = SlotAttentionGuide(
        encoder=default_init_(ImageEncoder(config.image_shape[0])),
        slot_attention=SlotAttentionIteration(config.z_dim, hidden=OFFICIAL_MLP_HIDDEN),
        num_layers=config.num_layers,
        num_slots=config.num_slots,
        z_dim=config.z_dim,
        image_shape=config.image_shape,
        register_params=register_params,
    )
    return model, guide
