"""Per-image MSE and per-dimension activeness on hand-computed cases."""

import numpy as np
import pytest
import torch

from pyro_emorl.metrics import activeness, mse


def test_mse_per_image():
    images = np.zeros((2, 3, 2, 2))
    images[1] = 1.0
    recons = images.copy()
    recons[0] = 0.5  # every value off by 0.5 -> 0.25
    recons[1, 2, 0, 1] = 0.0  # one of 12 values off by 1 -> 1/12
    np.testing.assert_allclose(mse(images, torch.from_numpy(recons)), [0.25, 1 / 12], rtol=1e-15)
    assert mse(images, recons).dtype == np.float64


def test_mse_rejects_bad_inputs():
    ok = np.zeros((1, 3, 2, 2))
    with pytest.raises(ValueError, match=r"\(x \+ 1\) / 2"):
        mse(ok - 1.0, ok)
    with pytest.raises(ValueError, match="must match"):
        mse(ok, np.zeros((1, 3, 2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        mse(ok, np.full_like(ok, np.nan))
    with pytest.raises(ValueError, match="batch axis"):
        mse(ok[0], ok[0])


def test_activeness_is_mean_pixel_variance_over_traversal():
    # D = 2 dims, V = 3 values, C = 1, H = 1, W = 2. Dim 0 changes nothing; dim 1 moves one
    # pixel through 0, 0.5, 1 (unbiased variance 0.25) and leaves the other fixed.
    images = np.zeros((2, 3, 1, 1, 2))
    images[1, :, 0, 0, 0] = [0.0, 0.5, 1.0]
    np.testing.assert_allclose(activeness(images), [0.0, 0.125], rtol=1e-15)
    # Population variance: 1/6 at the moving pixel.
    np.testing.assert_allclose(activeness(images, ddof=0), [0.0, 1 / 12], rtol=1e-15)
    # Batched over N scenes.
    batched = torch.from_numpy(np.stack([images, 2 * images]))
    np.testing.assert_allclose(activeness(batched), [[0.0, 0.125], [0.0, 0.5]], rtol=1e-15)


def test_activeness_rejects_bad_inputs():
    with pytest.raises(ValueError, match=r"\[D, V, C, H, W\]"):
        activeness(np.zeros((3, 2, 2)))
    with pytest.raises(ValueError, match="V > 1"):
        activeness(np.zeros((2, 1, 1, 2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        activeness(np.full((2, 3, 1, 2, 2), np.nan))
