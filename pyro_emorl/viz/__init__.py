"""Figures of what EfficientMORL sees: decompositions, inference steps, traversals, samples."""

from pyro_emorl.viz.decomposition import plot_decomposition, save_figure
from pyro_emorl.viz.samples import plot_samples, sample_scenes
from pyro_emorl.viz.steps import plot_inference_steps
from pyro_emorl.viz.traversal import (
    Traversal,
    latent_traversal,
    plot_traversal,
    save_traversal_gif,
)

__all__ = [
    "Traversal",
    "latent_traversal",
    "plot_decomposition",
    "plot_inference_steps",
    "plot_samples",
    "plot_traversal",
    "sample_scenes",
    "save_figure",
    "save_traversal_gif",
]
