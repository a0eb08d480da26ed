"""Scenes sampled from the model's prior."""

from __future__ import annotations

import pyro.poutine as poutine
import torch
from matplotlib.figure import Figure
from torch import Tensor

from pyro_emorl.protocols import SceneModel
from pyro_emorl.sites import COMPONENTS_SITE, MASKS_SITE, site_value
from pyro_emorl.viz.decomposition import _hwc, _show


@torch.no_grad()
def sample_scenes(model: SceneModel, num_images: int, num_slots: int | None = None) -> Tensor:
    """Mean images of scenes drawn from the prior: ``[num_images, C, H, W]``.

    The latents come from the model's prior; each image is the mask-weighted mean of the decoded
    slots (the likelihood's mean, without pixel noise).
    """
    trace = poutine.trace(model).get_trace(num_images=num_images, num_slots=num_slots)
    masks = site_value(trace.nodes[MASKS_SITE]).exp()
    mean = (masks * site_value(trace.nodes[COMPONENTS_SITE])).sum(dim=-4)
    # The masks sum to 1 only up to rounding, so a pixel may leave [0, 1] by an ulp.
    return mean.clamp(0.0, 1.0)


def plot_samples(images: Tensor, columns: int = 8, panel_size: float = 1.2) -> Figure:
    """A grid of images ``[N, C, H, W]``."""
    count = images.shape[0]
    rows = -(-count // columns)
    figure = Figure(figsize=(panel_size * columns, panel_size * rows + 0.3), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < count:
            _show(ax, _hwc(images[i]), "")
        else:
            ax.axis("off")
    figure.suptitle("samples from the prior", fontsize=9)
    return figure
