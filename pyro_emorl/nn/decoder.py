"""Slot decoders: each slot's latent becomes an RGB component and a mask logit."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyro_emorl.nn.init import official_init_
from pyro_emorl.nn.positional import position_grid
from pyro_emorl.nn.precision import autocast_convs


def cpu_channels_last(x: Tensor) -> Tensor:
    """``x`` in channels-last layout on CPU, where oneDNN convolutions (forward and backward) run
    1.3-2x faster in that layout (measured on 2 cores); unchanged on other devices."""
    return x.contiguous(memory_format=torch.channels_last) if x.device.type == "cpu" else x


def _split_output(out: Tensor, batch: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """``[M, 4, H, W]`` -> (sigmoid RGB ``[*batch, 3, H, W]``, logits ``[*batch, 1, H, W]``)."""
    out = out.reshape(*batch, *out.shape[1:])
    return torch.sigmoid(out[..., :3, :, :]), out[..., 3:, :, :]


class SpatialBroadcastDecoder(nn.Module):
    """Spatial-broadcast decoder: tile ``z`` over a grid, add projected positions, convolve.

    ``kind="iodine"``: grid ``(H+10, W+10)``, four 3x3 convolutions without padding (64 channels,
    ELU), then a 3x3 convolution to 4 channels. ``kind="small"`` (Slot Attention's light decoder,
    Tetrominoes): grid ``(H+6, W+6)``, three 5x5 convolutions with padding 1 (32 channels, ReLU),
    then a 3x3 convolution with padding 1.

    The first convolution is linear in its input, so it is computed separably: the tiled latent
    contributes ``sum_d z_d * S[:, d]`` where ``S`` is the first kernel summed over the taps that
    fall inside the grid (per pixel: all taps inside, or, with padding, a row condition times a
    column condition), and the position term is convolved once and shared by every slot. The
    result equals the plain convolution of the tiled input up to float rounding, at a fraction of
    the cost. With a ``conv_dtype`` the whole stack, this first layer included, runs in it.

    Args:
        z_dim: latent width ``D``.
        image_size: output ``(H, W)``.
        kind: ``"iodine"`` or ``"small"``.
    """

    _SPECS = {
        # grid margin, hidden channels, hidden kernel, padding, number of hidden layers, activation
        "iodine": (10, 64, 3, 0, 4, nn.ELU),
        "small": (6, 32, 5, 1, 3, nn.ReLU),
    }

    def __init__(self, z_dim: int, image_size: tuple[int, int], kind: str = "iodine") -> None:
        super().__init__()
        if kind not in self._SPECS:
            raise ValueError(f"unknown decoder {kind!r}; choose one of {sorted(self._SPECS)}")
        margin, channels, kernel, padding, depth, activation = self._SPECS[kind]
        self.image_size = tuple(image_size)
        self.grid_size = (image_size[0] + margin, image_size[1] + margin)
        self.padding = padding
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Conv2d(z_dim if i == 0 else channels, channels, kernel, 1, padding)]
            layers += [activation()]
        layers += [nn.Conv2d(channels, 4, 3, 1, padding)]
        self.convs = nn.Sequential(*layers)
        self.position_projection = nn.Linear(4, z_dim)
        #: dtype of the hidden and output convolutions (``None``: the parameters'; see
        #: [set_conv_dtype][pyro_emorl.nn.precision.set_conv_dtype]).
        self.conv_dtype: torch.dtype | None = None
        official_init_(self)

    def _first_layer(self, z: Tensor) -> Tensor:
        """The first convolution of the tiled ``z [M, D]`` plus positions: ``[M, C1, Ho, Wo]``.

        The result is laid out channels-last (physically ``[M, Ho, Wo, C1]``), the layout the
        next convolutions want on a CPU, so that no copy is needed to get there.
        """
        conv: nn.Conv2d = self.convs[0]  # type: ignore[assignment]
        hg, wg = self.grid_size
        grid = position_grid(hg, wg, device=z.device, dtype=z.dtype)
        positions = self.position_projection(grid).permute(2, 0, 1).unsqueeze(0)
        shared = F.conv2d(positions, conv.weight, conv.bias, padding=self.padding)  # [1,C1,Ho,Wo]
        # [1, Ho, Wo, C1], stored in that order: the sums below take their layout from it, and
        # a permuted view would leave them (and every later layer) channels-first.
        shared = shared.permute(0, 2, 3, 1).contiguous()
        out_c, in_c, kh, kw = conv.weight.shape
        if self.padding == 0:
            # Every output pixel sees all taps: the tiled latent adds a constant per slot.
            per_slot = z @ conv.weight.sum(dim=(2, 3)).T
            return (per_slot[:, None, None, :] + shared).permute(0, 3, 1, 2)
        # With zero padding the border pixels see fewer taps. Which taps a pixel (i, j) sees is
        # a row condition times a column condition, so the tiled latent adds
        # sum_r rows[i, r] * per_row_tap[m, r, j, :], where per_row_tap is z times the kernel
        # summed over each column's in-bounds taps: a small matrix product, then one batched
        # product over the kh kernel rows that writes the output, with the positions added.
        _, ho, wo, _ = shared.shape
        rows = _taps_in_bounds(hg, kh, self.padding, z)  # [Ho, kh]
        cols = _taps_in_bounds(wg, kw, self.padding, z)  # [Wo, kw]
        kernel = torch.einsum("jl,cdkl->dkjc", cols, conv.weight).reshape(in_c, -1)
        per_row_tap = (z @ kernel).view(-1, kh, wo * out_c)  # [M, kh, Wo * C1]
        out = torch.baddbmm(
            shared.reshape(1, ho, wo * out_c), rows.expand(len(z), ho, kh), per_row_tap
        )  # [M, Ho, Wo * C1]
        return out.view(-1, ho, wo, out_c).permute(0, 3, 1, 2)

    def _convolve(self, z: Tensor) -> Tensor:
        """The whole stack on flat latents: ``[M, D]`` -> ``[M, 4, H, W]``."""
        return self.convs[1:](self._first_layer(z))

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Decode every slot.

        Args:
            z: latents ``[..., D]`` (typically ``[B, K, D]``).

        Returns:
            ``(rgb, mask_logits)``: ``[..., 3, H, W]`` in (0, 1) and ``[..., 1, H, W]``.
        """
        batch = z.shape[:-1]
        # The first layer is a convolution too: in conv_dtype with the others, so that its
        # output (the largest tensor of the stack) is never cast.
        out = autocast_convs(self, z.reshape(-1, z.shape[-1]), self._convolve)
        return _split_output(out, batch)


def _taps_in_bounds(size: int, kernel: int, padding: int, like: Tensor) -> Tensor:
    """``[size + 2 * padding - kernel + 1, kernel]``: 1 where output position ``i``'s tap ``t``
    reads the input (index ``i + t - padding`` inside ``[0, size)``), 0 where it reads padding;
    ``like``'s device and dtype."""
    outputs = torch.arange(size + 2 * padding - kernel + 1, device=like.device)
    index = outputs[:, None] + torch.arange(kernel, device=like.device) - padding
    return ((index >= 0) & (index < size)).to(like.dtype)


class DeconvDecoder(nn.Module):
    """Slot Attention's deconvolutional decoder (``big``; 96x96 outputs only).

    A 6x6 broadcast grid, four stride-2 5x5 transposed convolutions (6 -> 96), a stride-1 5x5 and a
    3x3 transposed convolution to 4 channels; ReLU between them.

    Args:
        z_dim: latent width ``D``.
        image_size: must be ``(96, 96)``.
    """

    def __init__(self, z_dim: int, image_size: tuple[int, int] = (96, 96)) -> None:
        super().__init__()
        if tuple(image_size) != (96, 96):
            raise ValueError(
                f"the 'big' decoder only produces 96x96 images, got {tuple(image_size)}; "
                "use decoder='iodine' or 'small' for other sizes"
            )
        self.image_size = (96, 96)
        self.grid_size = (6, 6)
        layers: list[nn.Module] = []
        for i in range(4):
            layers += [nn.ConvTranspose2d(z_dim if i == 0 else 64, 64, 5, 2, 2, output_padding=1)]
            layers += [nn.ReLU()]
        layers += [
            nn.ConvTranspose2d(64, 64, 5, 1, 2),
            nn.ReLU(),
            nn.ConvTranspose2d(64, 4, 3, 1, 1),
        ]
        self.convs = nn.Sequential(*layers)
        self.position_projection = nn.Linear(4, z_dim)
        #: dtype of the transposed convolutions (``None``: the parameters').
        self.conv_dtype: torch.dtype | None = None
        official_init_(self)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Same contract as `SpatialBroadcastDecoder.forward`."""
        batch, d = z.shape[:-1], z.shape[-1]
        grid = position_grid(*self.grid_size, device=z.device, dtype=z.dtype)
        positions = self.position_projection(grid).permute(2, 0, 1)
        tiled = cpu_channels_last(z.reshape(-1, d, 1, 1) + positions)
        return _split_output(autocast_convs(self, tiled, self.convs), batch)
