"""Figures of a scene decomposition: image, reconstruction, segmentation, and every slot."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from torch import Tensor

from pyro_emorl.data.atomic import atomic_path
from pyro_emorl.decompose import Decomposition


def _hwc(image: Tensor) -> np.ndarray:
    """``[C, H, W]`` in ``[0, 1]`` -> ``[H, W, C]`` numpy (grey images keep one channel)."""
    array = image.detach().float().clamp(0, 1).cpu().permute(1, 2, 0).numpy()
    return array[..., 0] if array.shape[-1] == 1 else array


def _show(ax: Axes, image: np.ndarray, title: str, **kwargs: Any) -> None:
    ax.imshow(image, interpolation="nearest", **kwargs)
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_decomposition(
    decomposition: Decomposition,
    images: Tensor,
    index: int = 0,
    *,
    step: int = -1,
    title: str | None = None,
    panel_size: float = 1.4,
) -> Figure:
    """One image's decomposition at one inference step, as a two-row grid.

    Top row: the image, the reconstruction, and each slot's component composited on white by its
    mask. Bottom row: the segmentation (argmax of the masks, one colour per slot, with a legend
    of the colours below), the absolute reconstruction error (mean over channels), and each
    slot's mask.

    The figure is built without ``pyplot`` (no global state, any backend, any thread); save it with
    `save_figure` or ``figure.savefig``.

    Args:
        decomposition: the output of `pyro_emorl.decompose` for ``images``.
        images: the decomposed images ``[B, C, H, W]`` in ``[0, 1]``.
        index: which image of the batch to draw.
        step: which inference step (``0`` amortized, ``-1`` the last refinement step).
        title: figure title (default: the step with the image's NLL and KL in nats).
        panel_size: size of one panel in inches.

    Returns:
        The figure.

    Raises:
        IndexError: if ``index`` or ``step`` is out of range.
        ValueError: if ``images`` does not match the decomposition's shape.
    """
    result = decomposition.steps[step]
    batch, num_slots = result.masks.shape[:2]
    if tuple(images.shape[-3:]) != tuple(result.reconstruction.shape[-3:]) or (
        images.shape[0] != batch
    ):
        raise ValueError(
            f"images {tuple(images.shape)} do not match the decomposition "
            f"(reconstruction {tuple(result.reconstruction.shape)})"
        )
    if not -batch <= index < batch:
        raise IndexError(f"index {index} out of range for a batch of {batch}")
    image = images[index].detach().cpu()
    masks = result.masks[index, :, 0].detach().cpu()  # [K, H, W]
    components = result.components[index].detach().cpu()  # [K, C, H, W]
    reconstruction = result.reconstruction[index].detach().cpu()
    if title is None:
        number = step % len(decomposition.steps)
        name = "amortized" if number == 0 else f"refinement step {number}"
        nll, kl = float(result.nll[index]), float(result.kl[index])
        title = f"{name}: NLL {nll:.1f}, KL {kl:.1f} nats"

    columns = num_slots + 2
    figure = Figure(figsize=(panel_size * columns, panel_size * 2 + 0.4), layout="constrained")
    axes = figure.subplots(2, columns, squeeze=False)
    _show(axes[0, 0], _hwc(image), "image")
    _show(axes[0, 1], _hwc(reconstruction), "reconstruction")
    segmentation = masks.argmax(dim=0).numpy()
    _show(axes[1, 0], segmentation, "segmentation", cmap="tab20", vmin=0, vmax=19)
    error = (reconstruction - image).abs().mean(dim=0).numpy()
    _show(axes[1, 1], error, "|error|", cmap="magma", vmin=0, vmax=1)
    for k in range(num_slots):
        composite = components[k] * masks[k] + (1 - masks[k])
        _show(axes[0, k + 2], _hwc(composite), f"slot {k}")
        _show(axes[1, k + 2], masks[k].numpy(), f"mask {k}", cmap="gray", vmin=0, vmax=1)
    figure.suptitle(title, fontsize=9)
    _segmentation_legend(figure, num_slots)
    return figure


def _segmentation_legend(figure: Figure, num_slots: int) -> None:
    """Below the panels: which colour of the segmentation is which slot (``tab20(k)``)."""
    colors = colormaps["tab20"]
    handles = [Patch(color=colors(k), label=f"slot {k}") for k in range(num_slots)]
    figure.legend(
        handles=handles,
        loc="outside lower center",
        ncol=num_slots,
        fontsize=8,
        frameon=False,
        title="segmentation colours",
        title_fontsize=8,
    )


def save_figure(figure: Figure, path: str | os.PathLike[str], dpi: int = 100) -> Path:
    """Save ``figure`` atomically (a temporary file renamed over ``path``).

    Args:
        figure: the figure.
        path: destination; the format follows the suffix (``.png``, ``.pdf``, ``.svg``, ...).
        dpi: resolution of raster formats.

    Returns:
        ``path``.
    """
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=fmt, dpi=dpi)
    return path
