"""A screen of issue "objects on every seed": sharper masks from the first step.

Registers the decoder ``small_mask_scale``: the small spatial-broadcast decoder whose mask
logits are multiplied by ``mask_scale`` (a mask temperature of ``1 / mask_scale``), so that
small differences between the slots' logits already give unequal masks at initialisation.

    python benchmarks/learning.py --import benchmarks/screens/mask_scale.py \
        --set decoder=small_mask_scale --set decoder_options.mask_scale=5 \
        --seeds 2 --jobs 2 --threads 1 --steps 1000 --eval-every 250 --table mask5.json
"""

from __future__ import annotations

from torch import Tensor, nn

from pyro_emorl import register
from pyro_emorl.models.decoders import DecoderShape
from pyro_emorl.nn.decoder import SpatialBroadcastDecoder


class ScaledMaskDecoder(nn.Module):
    """A decoder whose mask logits are multiplied by a constant.

    Args:
        decoder: the decoder wrapped (its ``forward(z)`` gives ``(rgb, mask_logits)``).
        mask_scale: the factor.
    """

    def __init__(self, decoder: SpatialBroadcastDecoder, mask_scale: float) -> None:
        super().__init__()
        self.decoder = decoder
        self.mask_scale = mask_scale
        self.image_size = decoder.image_size

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """``z [..., D]`` -> RGB ``[..., 3, H, W]`` and scaled mask logits ``[..., 1, H, W]``."""
        rgb, logits = self.decoder(z)
        return rgb, self.mask_scale * logits


@register("decoder", "small_mask_scale")
def small_mask_scale(config: DecoderShape, *, mask_scale: float = 5.0) -> ScaledMaskDecoder:
    """The small decoder (Tetrominoes) with its mask logits multiplied by ``mask_scale``."""
    if not mask_scale > 0:
        raise ValueError(f"mask_scale must be positive, got {mask_scale}")
    _, height, width = config.image_shape
    small = SpatialBroadcastDecoder(config.z_dim, (height, width), "small")
    return ScaledMaskDecoder(small, mask_scale)
