"""The image encoder: a CNN, the position grid and a per-pixel MLP."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pyro_emorl.nn.decoder import cpu_channels_last
from pyro_emorl.nn.init import official_init_
from pyro_emorl.nn.positional import position_grid
from pyro_emorl.nn.precision import autocast_convs


class ImageEncoder(nn.Module):
    """Per-pixel features for slot attention, computed once per image.

    Four 5x5 convolutions (64 channels, ReLU), plus a learned projection of the fixed position
    grid, then ``LayerNorm -> Linear -> ReLU -> Linear`` on every pixel.

    Args:
        in_channels: image channels ``C``.
        features: feature width (64 in the paper).
    """

    def __init__(self, in_channels: int = 3, features: int = 64) -> None:
        super().__init__()
        self.features = features
        layers: list[nn.Module] = []
        for i in range(4):
            layers += [nn.Conv2d(in_channels if i == 0 else features, features, 5, 1, 2), nn.ReLU()]
        self.convs = nn.Sequential(*layers)
        # Default PyTorch init for the position projection, as in the official code.
        self.position_projection = nn.Linear(4, features)
        self.mlp = nn.Sequential(
            nn.LayerNorm(features),
            nn.Linear(features, features),
            nn.ReLU(),
            nn.Linear(features, features),
        )
        #: dtype of the convolutions (``None``: the parameters'; see
        #: [set_conv_dtype][pyro_emorl.nn.precision.set_conv_dtype]).
        self.conv_dtype: torch.dtype | None = None
        official_init_(self.convs)
        official_init_(self.mlp)

    def forward(self, images: Tensor) -> Tensor:
        """Encode images.

        Args:
            images: ``[..., C, H, W]`` in ``[0, 1]``; mapped to ``[-1, 1]`` here, as the official
                data loader does.

        Returns:
            Features ``[..., H * W, F]`` (pixels in row-major order).
        """
        *batch, c, h, w = images.shape
        x = autocast_convs(self, cpu_channels_last(images.reshape(-1, c, h, w) * 2 - 1), self.convs)
        grid = position_grid(h, w, device=images.device, dtype=images.dtype)
        x = x.permute(0, 2, 3, 1) + self.position_projection(grid)
        return self.mlp(x.reshape(*batch, h * w, self.features))
