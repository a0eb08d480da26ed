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


def _rgb(config: DecoderShape, name: str) -> tuple[int, int]:
    """The image size, after checking that the images have the 3 channels the decoder makes."""
    channels, height, width = config.image_shape
    if channels != 3:
        raise ValueError(
            f"the {name!r} decoder makes RGB images, but image_shape has {channels} channel(s): "
            "repeat grey images to 3 channels (the converters do) or register a decoder of yours"
        )
    return height, width


@register("decoder", "iodine")
def iodine_decoder(config: DecoderShape) -> SpatialBroadcastDecoder:
    """Spatial broadcast, four 3x3 convolutions of 64 channels (Multi-dSprites, CLEVR6)."""
    return SpatialBroadcastDecoder(config.z_dim, _rgb(config, "iodine"), "iodine")


@register("decoder", "small")
def small_decoder(config: DecoderShape) -> SpatialBroadcastDecoder:
    """Spatial broadcast, three 5x5 convolutions of 32 channels (Tetrominoes)."""
    return SpatialBroadcastDecoder(config.z_dim, _rgb(config, "small"), "small")


@register("decoder", "big")
def big_decoder(config: DecoderShape) -> DeconvDecoder:
    """Transposed convolutions from a 6x6 grid, 96x96 images only (CLEVR6 Slot Attention)."""
    return DeconvDecoder(config.z_dim, _rgb(config, "big"))
