"""Figures: decomposition steps, latent traversals (PNG and GIF), prior samples."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

import pyro_emorl as pe
from pyro_emorl.viz.decomposition import save_figure
from pyro_emorl.viz.samples import plot_samples, sample_scenes
from pyro_emorl.viz.steps import plot_inference_steps
from pyro_emorl.viz.traversal import latent_traversal, plot_traversal, save_traversal_gif

CONFIG = pe.EMORLConfig(
    image_shape=(3, 12, 12), num_slots=3, z_dim=8, num_layers=2, decoder="small"
)


def _model():
    torch.manual_seed(1)
    model, guide = pe.build(CONFIG)
    with torch.no_grad():
        for p in list(model.parameters()) + list(guide.parameters()):
            p.add_(0.3 * torch.randn_like(p))
    return model, guide


def _assert_not_blank(path, min_bytes=1000):
    assert path.exists() and path.stat().st_size > min_bytes
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
    assert pixels.std() > 1.0, "the image is blank"


def test_inference_steps_figure(tmp_path):
    model, guide = _model()
    images = torch.rand(2, 3, 12, 12)
    out = pe.decompose(model, guide, images, num_steps=2)
    figure = plot_inference_steps(out, images, index=1)
    assert len(figure.axes) == (2 + 2) * (3 + 2 * 3)  # (L + I) rows
    _assert_not_blank(save_figure(figure, tmp_path / "steps.png"))


def test_traversal_changes_only_the_chosen_dimension(tmp_path):
    model, _ = _model()
    z = torch.randn(3, 8)
    traversal = latent_traversal(model, z, slot=1, num_dims=3)
    assert traversal.images.shape == (3, 8, 3, 12, 12)
    assert traversal.activeness.shape == (8,)
    assert traversal.activeness[traversal.dims[0]] == traversal.activeness.max()
    # Independent check of one frame: decode the scene with that dimension replaced.
    d, v = traversal.dims[0], 5
    scene = z.clone()
    scene[1, d] = traversal.values[v]
    rgb, logits = model.decoder(scene)
    expected = (torch.softmax(logits, dim=0) * rgb).sum(0)
    torch.testing.assert_close(traversal.images[0, v], expected.detach())
    _assert_not_blank(save_figure(plot_traversal(traversal), tmp_path / "traversal.png"))
    gif = save_traversal_gif(traversal, tmp_path / "traversal.gif")
    with Image.open(gif) as image:
        assert image.n_frames == 2 * 8 - 2
        assert image.size == (3 * 12 * 3, 12 * 3)


def test_prior_samples(tmp_path):
    model, _ = _model()
    scenes = sample_scenes(model, 5)
    assert scenes.shape == (5, 3, 12, 12)
    assert (scenes >= 0).all() and (scenes <= 1).all()
    _assert_not_blank(save_figure(plot_samples(scenes, columns=3), tmp_path / "samples.png"))
