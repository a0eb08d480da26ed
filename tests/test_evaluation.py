"""The evaluation protocol and the ArviZ diagnostics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pyro_emorl as pe
from pyro_emorl import diagnostics
from pyro_emorl.evaluation import evaluate, evaluate_batch, upsample_masks
from pyro_emorl.infer import FixedNoise
from pyro_emorl.sites import INITIAL_SITE, latent_site

CONFIG = pe.EMORLConfig(
    image_shape=(3, 12, 12), num_slots=3, z_dim=8, num_layers=2, decoder="small"
)


def _scene(batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Images with two coloured squares and their masks [B, 3, 1, 12, 12]."""
    images = torch.zeros(batch, 3, 12, 12)
    masks = torch.zeros(batch, 3, 1, 12, 12)
    masks[:, 1, 0, 1:5, 1:5] = 1
    masks[:, 2, 0, 6:11, 5:11] = 1
    masks[:, 0] = 1 - masks[:, 1:].sum(1)
    images[:, 0] += masks[:, 1, 0]
    images[:, 1] += masks[:, 2, 0]
    return images, masks


def _model():
    torch.manual_seed(3)
    model, guide = pe.build(CONFIG)
    with torch.no_grad():  # non-trivial weights so slots differ
        for p in list(model.parameters()) + list(guide.parameters()):
            p.add_(0.3 * torch.randn_like(p))
    return model, guide


def test_slot_permutation_leaves_metrics_unchanged():
    model, guide = _model()
    model.double()
    guide.double()
    images, masks = _scene()
    images = images.double()
    b, k, d, steps = 2, CONFIG.num_slots, CONFIG.z_dim, 2
    noise = {name: torch.randn(b, k, d, dtype=torch.float64) for name in ("z_0", "z_1")}
    top = [torch.randn(b, k, d, dtype=torch.float64) for _ in range(steps + 1)]
    perm = torch.tensor([2, 0, 1])

    def run(permute: bool) -> dict[str, np.ndarray]:
        p = (lambda t: t[:, perm]) if permute else (lambda t: t)
        site_noise = {INITIAL_SITE: p(noise["z_0"]), latent_site(1): p(noise["z_1"])}
        site_noise[latent_site(2)] = [p(t) for t in top]
        with FixedNoise(site_noise):
            return evaluate_batch(model, guide, images, masks, num_steps=steps)

    plain, permuted = run(False), run(True)
    for name in plain:
        np.testing.assert_allclose(permuted[name], plain[name], rtol=1e-9, atol=1e-12, err_msg=name)


def test_evaluate_reports_every_metric_and_stops_at_num_images():
    model, guide = _model()
    images, masks = _scene(4)
    batches = [{"imgs": images[:2], "masks": masks[:2]}, {"imgs": images[2:], "masks": masks[2:]}]
    result = evaluate(model, guide, batches, num_steps=1, num_images=3)
    assert result.settings["num_images"] == 3
    for values in result.per_image.values():
        assert values.shape == (3,)
    summary = result.summary()
    assert -1 <= summary["fg_ari"]["mean"] <= 1
    assert summary["mse"]["mean"] > 0
    assert "fg_ari" in result.table()
    with pytest.raises(ValueError, match="masks=True"):
        evaluate(model, guide, [{"imgs": images}], num_steps=1)


def test_upsample_masks_keeps_the_arg_max_of_a_blocky_mask():
    masks = torch.zeros(1, 2, 1, 4, 4)
    masks[0, 0, 0, :, :2] = 1
    masks[0, 1] = 1 - masks[0, 0]
    big = upsample_masks(masks, (8, 8))
    assert big.shape == (1, 2, 1, 8, 8)
    labels = big.argmax(1)[0, 0]
    assert (labels[:, :3] == 0).all() and (labels[:, 5:] == 1).all()


def test_posterior_draws_and_pareto_k():
    model, guide = _model()
    images, _ = _scene(2)
    draws = diagnostics.posterior_draws(model, guide, images, num_draws=200, num_steps=1)
    assert draws.z.shape == (200, 2, 3, 8)
    assert draws.log_weights.shape == (200, 2)
    torch.testing.assert_close(draws.mask_areas.sum(-1), torch.ones(200, 2))
    assert (draws.mask_areas[..., :-1] >= draws.mask_areas[..., 1:]).all()
    k = diagnostics.pareto_k(draws)
    assert k.shape == (2,)


def test_inference_data_has_named_dims():
    z = torch.randn(2, 5, 3, 4, 8)
    data = diagnostics.to_inference_data(z, nll=torch.randn(2, 5, 3))
    assert data.posterior["z"].dims == ("chain", "draw", "image", "slot", "latent")
    assert data.posterior["nll"].dims == ("chain", "draw", "image")
    with pytest.raises(ValueError, match="chain, draw"):
        diagnostics.to_inference_data(torch.randn(3, 4, 8))


def test_multistability_report():
    model, guide = _model()
    images, _ = _scene(2)
    report = diagnostics.multistability(model, guide, images, num_runs=3, num_draws=20, num_steps=1)
    assert set(report.rhat) >= {"nll", "log_weight", "area_0", "area_2"}
    assert report.rhat["nll"].shape == (2,)
    assert report.inference_data.posterior["nll"].shape == (3, 20, 2)
    assert report.unstable_images(threshold=0.0).tolist() == [0, 1]


def test_factor_table_types():
    from pyro_emorl.evaluation.disentanglement import factor_table

    saturated = np.array([[[0, 0, 0], [1, 0, 0], [0, 1, 1]]], dtype=np.float32)  # [N=1, E=3, 3]
    table, names, types = factor_table(
        {"x": np.ones((1, 3)), "shape": np.zeros((1, 3)), "color": saturated,
         "visibility": np.ones((1, 3))}
    )  # fmt: skip
    assert names == ["color", "shape", "x"] and types == ["discrete", "discrete", "continuous"]
    assert len(set(table[0, :, 0].tolist())) == 3  # three distinct colour categories
    _, names, types = factor_table({"color": 0.5 * saturated + 0.2})
    assert names == ["color_0", "color_1", "color_2"] and set(types) == {"continuous"}
    _, names, types = factor_table(np.zeros((2, 4, 9)))  # the official CLEVR array
    assert names[:4] == ["color", "material", "rotation", "shape"]
    assert dict(zip(names, types))["rotation"] == "continuous"
    assert dict(zip(names, types))["size"] == "discrete"
