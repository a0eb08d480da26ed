"""Plain-torch building blocks of EfficientMORL (no Pyro import here).

The Pyro programs in `pyro_emorl.model` and `pyro_emorl.guide` are assembled from these.
"""

from pyro_emorl.nn.conditional_gaussian import ConditionalGaussian
from pyro_emorl.nn.decoder import DeconvDecoder, SpatialBroadcastDecoder
from pyro_emorl.nn.dual_gru import DualGRUCell, ProjectedGRUCell
from pyro_emorl.nn.encoder import ImageEncoder
from pyro_emorl.nn.init import default_init_, official_init_
from pyro_emorl.nn.parameterization import raw_to_scale
from pyro_emorl.nn.positional import position_grid
from pyro_emorl.nn.precision import cpu_has_native_bf16, resolve_precision, set_conv_dtype
from pyro_emorl.nn.refinement import RefinementNetwork
from pyro_emorl.nn.slot_attention import SlotAttentionStep
from pyro_emorl.nn.slot_attention_iteration import SlotAttentionIteration
from pyro_emorl.nn.stochastic_layer import BottomUpLayer

__all__ = [
    "BottomUpLayer",
    "ConditionalGaussian",
    "DeconvDecoder",
    "DualGRUCell",
    "ImageEncoder",
    "ProjectedGRUCell",
    "RefinementNetwork",
    "SlotAttentionIteration",
    "SlotAttentionStep",
    "SpatialBroadcastDecoder",
    "cpu_has_native_bf16",
    "default_init_",
    "official_init_",
    "position_grid",
    "raw_to_scale",
    "resolve_precision",
    "set_conv_dtype",
]
