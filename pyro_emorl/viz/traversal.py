"""Latent traversals: vary one slot's most active latent dimensions and decode the scene."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image
from torch import Tensor

from pyro_emorl import metrics
from pyro_emorl.data.atomic import atomic_path
from pyro_emorl.protocols import SceneModel
from pyro_emorl.viz.decomposition import _hwc, _show


@dataclass(frozen=True)
class Traversal:
    """Decoded scenes along latent traversals of one slot.

    Attributes:
        images: ``[len(dims), V, C, H, W]`` reconstructions (mask-weighted means).
        dims: the traversed latent dimensions, most active first.
        values: the ``V`` values each dimension takes.
        activeness: activeness of every latent dimension ``[D]`` (pixel variance across values).
        slot: the traversed slot.
    """

    images: Tensor
    dims: list[int]
    values: Tensor
    activeness: np.ndarray
    slot: int


@torch.no_grad()
def _decode_scenes(model: SceneModel, z: Tensor) -> Tensor:
    rgb, mask_logits = model.decoder(z)
    return (torch.softmax(mask_logits, dim=-4) * rgb).sum(dim=-4)


@torch.no_grad()
def latent_traversal(
    model: SceneModel,
    z: Tensor,
    slot: int,
    *,
    num_dims: int = 10,
    values: Tensor | None = None,
) -> Traversal:
    """Traverse the ``num_dims`` most active dimensions of ``slot`` in the scene ``z``.

    Every dimension ``d`` of the slot is set in turn to each of ``values`` (default 8 points in
    [-2.5, 2.5], the bulk of the ``N(0, I)`` top-layer prior) with the other slots unchanged, the
    whole scene is decoded, and the activeness of ``d`` is the mean over pixels of the variance
    across values (the official activeness). The most active dimensions are kept.

    Args:
        model: the model (its decoder is used).
        z: one scene's latents ``[K, D]`` (e.g. ``decompose(...).final.loc[i]``).
        slot: which slot to traverse.
        num_dims: how many dimensions to keep.
        values: traversal values ``[V]``.

    Returns:
        A `Traversal`.
    """
    if z.dim() != 2:
        raise ValueError(f"z must be one scene's latents [K, D], got {tuple(z.shape)}")
    num_slots, z_dim = z.shape
    if not 0 <= slot < num_slots:
        raise ValueError(f"slot must be in [0, {num_slots}), got {slot}")
    if values is None:
        values = torch.linspace(-2.5, 2.5, 8, dtype=z.dtype, device=z.device)
    scenes = z.expand(z_dim, len(values), num_slots, z_dim).clone()  # [D, V, K, D]
    dims = torch.arange(z_dim, device=z.device)
    scenes[dims, :, slot, dims] = values
    images = _decode_scenes(model, scenes)  # [D, V, C, H, W]
    activeness = metrics.activeness(images.cpu().numpy())
    order = np.argsort(-activeness, kind="stable")[: min(num_dims, z_dim)]
    chosen = [int(d) for d in order]
    return Traversal(images[chosen].cpu(), chosen, values.cpu(), activeness, slot)


def plot_traversal(traversal: Traversal, panel_size: float = 1.0) -> Figure:
    """A grid: one row per dimension (most active first), one column per value."""
    rows, columns = traversal.images.shape[:2]
    figure = Figure(figsize=(panel_size * columns, panel_size * rows + 0.3), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    for r, d in enumerate(traversal.dims):
        for c in range(columns):
            title = f"{float(traversal.values[c]):+.1f}" if r == 0 else ""
            _show(axes[r, c], _hwc(traversal.images[r, c]), title)
        axes[r, 0].set_ylabel(f"dim {d}\n{traversal.activeness[d]:.1e}", fontsize=7)
    figure.suptitle(f"slot {traversal.slot}: most active latent dimensions", fontsize=9)
    return figure


def save_traversal_gif(
    traversal: Traversal, path: str | os.PathLike[str], scale: int = 3, frame_ms: int = 250
) -> Path:
    """Animated GIF (Pillow, no ffmpeg): frame ``v`` shows every traversed dimension at value ``v``
    side by side; the animation runs forth and back. Written atomically.

    Args:
        traversal: from `latent_traversal`.
        path: destination ``.gif``.
        scale: integer upscaling of the pixels.
        frame_ms: duration of one frame.

    Returns:
        ``path``.
    """
    images = (traversal.images.clamp(0, 1) * 255).round().to(torch.uint8)  # [R, V, C, H, W]
    frames = []
    for v in range(images.shape[1]):
        row = torch.cat(list(images[:, v]), dim=-1)  # [C, H, R*W]
        array = row.permute(1, 2, 0).numpy()
        if array.shape[-1] == 1:
            array = array[..., 0]
        frame = Image.fromarray(array)
        frames.append(
            frame.resize((frame.width * scale, frame.height * scale), Image.Resampling.NEAREST)
        )
    frames = frames + frames[-2:0:-1]
    path = Path(path)
    with atomic_path(path) as tmp:
        frames[0].save(
            tmp, format="GIF", save_all=True, append_images=frames[1:], duration=frame_ms, loop=0
        )
    return path
