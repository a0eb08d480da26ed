"""The library's slot decoders, registered by name (the networks live in `pyro_emorl.nn`)."""

from __future__ import annotations

from typing import Protocol

from pyro_emorl.nn.decoder import DeconvDecoder, SpatialBroadcastDecoder
from pyro_emorl.registry import register


class DecoderShape(Protocol):
    """What the library's decoders read of a model configuration."""

    @property
    def z_dim(self) -> int:
        """``D``."""
        ...

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)``."""
        ...


@register("decoder", "iodine")
def iodine_decoder(config: DecoderShape) -> SpatialBroadcastDecoder:
    """Spatial broadcast, four 3x3 convolutions of 64 channels (Multi-dSprites, CLEVR6)."""
    return SpatialBroadcastDecoder(config.z_dim, config.image_shape[1:], "iodine")


@register("decoder", "small")
def small_decoder(config: DecoderShape) -> SpatialBroadcastDecoder:
    """Spatial broadcast, three 5x5 convolutions of 32 channels (Tetrominoes)."""
    return SpatialBroadcastDecoder(config.z_dim, config.image_shape[1:], "small")


@register("decoder", "big")
def big_decoder(config: DecoderShape) -> DeconvDecoder:
    """Transposed convolutions from a 6x6 grid, 96x96 images only (CLEVR6 Slot Attention)."""
    return DeconvDecoder(config.z_dim, config.image_shape[1:])
