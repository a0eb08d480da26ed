"""Tiny configurations and helpers shared by the core tests (kept small: 2 shared CPU cores)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

import pyro_emorl as pe
from pyro_emorl.sites import INITIAL_SITE, latent_site

IMAGE_SHAPE = (3, 12, 12)
K, D, L, STEPS, B = 3, 8, 2, 2, 2
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


@contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Temporarily change torch's default dtype."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def tiny_config(**overrides: Any) -> pe.EMORLConfig:
    """3x12x12 images, K=3, D=8, L=2, I=2 (small decoder unless overridden)."""
    fields = dict(
        image_shape=IMAGE_SHAPE,
        num_slots=K,
        z_dim=D,
        num_layers=L,
        refinement_steps=STEPS,
        decoder="small",
        likelihood="gaussian",
    )
    fields.update(overrides)
    return pe.EMORLConfig(**fields)


def randomize_(modules: nn.Module | tuple[nn.Module, ...], std: float = 0.3, seed: int = 0) -> None:
    """Overwrite every parameter with non-trivial random values, in place.

    The official init makes the decoder nearly constant (so many properties would hold trivially).
    Weights get N(0, gain^2 / fan_in) with gain 1.5 (so activations neither vanish nor saturate),
    vectors (biases, norms, the initial posterior) get N(0, std^2).
    """
    if isinstance(modules, nn.Module):
        modules = (modules,)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in modules:
            for p in module.parameters():
                noise = torch.randn(p.shape, generator=generator, dtype=torch.float64)
                scale = 1.5 / math.sqrt(p[0].numel()) if p.dim() >= 2 else std
                p.copy_(noise * scale)


def build_random(
    config: pe.EMORLConfig | None = None, *, seed: int = 0, std: float = 0.3, **kwargs: Any
) -> tuple[pe.SlotModel, pe.HierarchicalGuide]:
    """``pe.build`` in float64 with every parameter re-drawn (see :func:`randomize_`).

    Built under the float64 default dtype: buffers made from Python floats (the likelihood's
    ``ln sigma``) would otherwise be rounded to float32 before ``.double()``.
    """
    with default_dtype(torch.float64):
        model, guide = pe.build(config or tiny_config(), **kwargs)
    randomize_((model, guide), std=std, seed=seed)
    return model, guide


def random_images(batch: int = B, shape: tuple[int, ...] = IMAGE_SHAPE, seed: int = 1) -> Tensor:
    """Float64 images in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand((batch, *shape), generator=generator, dtype=torch.float64)


def site_noise(
    batch: int = B,
    num_slots: int = K,
    z_dim: int = D,
    num_layers: int = L,
    num_steps: int = STEPS,
    seed: int = 2,
) -> dict[str, Tensor | list[Tensor]]:
    """Standard-normal noise for every reparameterised sample (``FixedNoise`` layout)."""
    generator = torch.Generator().manual_seed(seed)

    def eps() -> Tensor:
        return torch.randn(batch, num_slots, z_dim, generator=generator, dtype=torch.float64)

    noise: dict[str, Tensor | list[Tensor]] = {INITIAL_SITE: eps()}
    for layer in range(1, num_layers):
        noise[latent_site(layer)] = eps()
    noise[latent_site(num_layers)] = [eps() for _ in range(num_steps + 1)]
    return noise


def gaussian_log_density(x: Tensor, loc: Tensor, scale: Tensor | float) -> Tensor:
    """Elementwise log N(x; loc, scale^2), written out."""
    scale = torch.as_tensor(scale, dtype=x.dtype)
    return -0.5 * ((x - loc) / scale) ** 2 - torch.log(scale) - HALF_LOG_2PI


def normal_kl(loc_q: Tensor, scale_q: Tensor, loc_p: Tensor, scale_p: Tensor) -> Tensor:
    """Elementwise KL(N(loc_q, scale_q^2) || N(loc_p, scale_p^2)), written out."""
    return (
        torch.log(scale_p / scale_q) + (scale_q**2 + (loc_q - loc_p) ** 2) / (2 * scale_p**2) - 0.5
    )


def softplus_scale(raw: Tensor) -> Tensor:
    """The official standard deviation sqrt(log(1 + exp(min(raw, 80))) + 1e-5), written out."""
    return torch.sqrt(torch.log1p(torch.exp(torch.clamp(raw, max=80.0))) + 1e-5)


@contextmanager
def num_threads(n: int) -> Iterator[None]:
    """Temporarily limit torch's intra-op threads (2 shared cores: spinning threads of a second
    worker make small ops 10x slower under load)."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def assert_close(actual: Tensor, expected: Tensor, rel: float = 1e-10, what: str = "") -> None:
    """``max |actual - expected| <= rel * max(1, max |expected|)`` (shapes must agree)."""
    actual, expected = torch.as_tensor(actual).detach(), torch.as_tensor(expected).detach()
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(1.0, float(expected.abs().max())) if expected.numel() else 1.0
    error = float((actual - expected).abs().max()) if expected.numel() else 0.0
    assert error <= rel * scale, f"{what}: max |diff| {error:.3e} > {rel:g} x {scale:.3e}"
