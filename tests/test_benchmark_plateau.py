"""benchmarks/plateau.py: the plateau's measures against scipy's entropy and closed forms."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import entropy

import pyro_emorl as pe

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "plateau.py"


@pytest.fixture(scope="module")
def plateau():
    spec = importlib.util.spec_from_file_location("plateau", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["plateau"] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules["plateau"]


def test_entropy_fraction_is_one_for_uniform_and_zero_for_certain(plateau) -> None:
    uniform = torch.full((2, 4, 1, 3, 3), 0.25)
    certain = torch.zeros(2, 4, 1, 3, 3)
    certain[:, 1] = 1.0
    assert plateau.entropy_fraction(uniform, 1) == pytest.approx(1.0)
    assert plateau.entropy_fraction(certain, 1) == pytest.approx(0.0, abs=1e-9)


def test_symmetry_of_a_decomposition_matches_independent_computations(plateau) -> None:
    config = pe.presets.tetrominoes_fast(num_layers=2, z_dim=8, refinement_steps=0)
    torch.manual_seed(0)
    model, guide = pe.build(config)
    with torch.no_grad():
        out = pe.decompose(model, guide, torch.rand(3, 3, 35, 35), decode_layers=False)
    measured = plateau.symmetry(out)
    masks = out.final.masks.numpy()  # [B, K, 1, H, W]
    expected = entropy(masks, axis=1).mean() / math.log(masks.shape[1])
    assert measured["mask_entropy"] == pytest.approx(expected, rel=1e-5)
    loc = out.final.loc.numpy()
    pairs = [np.linalg.norm(b[i] - b[j]) for b in loc for i in range(4) for j in range(4) if i != j]
    assert measured["slot_distance"] == pytest.approx(np.mean(pairs), rel=1e-5)
    colours = out.final.components.numpy()
    assert measured["colour_spread"] == pytest.approx(colours.std(axis=1, ddof=1).mean(), rel=1e-5)
    assert 0 < measured["attention_entropy"] <= 1


def test_position_share_is_the_closed_form_share_of_a_position_plus_image_sum(plateau) -> None:
    """Features ``u[pixel] + v[image]`` with both centred: the total variance is exactly
    ``var(u) + var(v)``, and the pixel's share ``var(u) / (var(u) + var(v))``."""
    generator = torch.Generator().manual_seed(0)
    u = torch.randn(1, 50, 3, generator=generator, dtype=torch.float64)
    v = 3 * torch.randn(20, 1, 3, generator=generator, dtype=torch.float64)
    u, v = u - u.mean(1, keepdim=True), v - v.mean(0, keepdim=True)
    var_u, var_v = float(u.pow(2).mean((0, 1)).sum()), float(v.pow(2).mean((0, 1)).sum())
    share = plateau.position_share(u + v)
    assert share == pytest.approx(var_u / (var_u + var_v), rel=1e-12)
    assert plateau.position_share(u.expand(20, 50, 3)) == pytest.approx(1.0)
    assert plateau.position_share(v.expand(20, 50, 3)) == pytest.approx(0.0, abs=1e-12)
