"""EfficientMORL's programs built from a configuration (registered as the model ``"emorl"``)."""

from __future__ import annotations

from pyro_emorl.models.emorl.config import OFFICIAL_INIT_GAIN, EMORLConfig
from pyro_emorl.models.emorl.guide import HierarchicalGuide
from pyro_emorl.models.slot_model import SlotModel
from pyro_emorl.nn.encoder import ImageEncoder
from pyro_emorl.nn.init import official_init_
from pyro_emorl.nn.refinement import RefinementNetwork
from pyro_emorl.nn.stochastic_layer import BottomUpLayer
from pyro_emorl.registry import make_component, register


@register("model", "emorl", config=EMORLConfig)
def build_emorl(
    config: EMORLConfig, register_params: bool = False
) -> tuple[SlotModel, HierarchicalGuide]:
    """EfficientMORL: the hierarchical slot prior, a decoder and a likelihood as the model; the
    bottom-up guide with its refinement network (official initialisation).

    Args:
        config: the configuration; its prior, likelihood and decoder are built by name.
        register_params: let model and guide register their parameters in Pyro's param store
            on every call, for ``pyro.infer.SVI``.
    """
    model = SlotModel(
        prior=make_component("prior", config),
        decoder=make_component("decoder", config),
        likelihood=make_component("likelihood", config),
        num_slots=config.num_slots,
        image_shape=config.image_shape,
        register_params=register_params,
    )
    guide = HierarchicalGuide(
        encoder=ImageEncoder(config.image_shape[0]),
        layer=BottomUpLayer(config.z_dim, dual_gru=config.dual_gru),
        refiner=RefinementNetwork(config.z_dim),
        num_layers=config.num_layers,
        num_slots=config.num_slots,
        z_dim=config.z_dim,
        image_shape=config.image_shape,
        register_params=register_params,
        sample_initial_state=config.sample_initial_state,
        truncate_gradients=config.truncate_gradients,
        per_slot_init=config.per_slot_init,
    )
    if config.init_gain != OFFICIAL_INIT_GAIN:  # the official gain is the blocks' own init
        for module in (model, guide):
            official_init_(module, gain=config.init_gain)
    return model, guide
