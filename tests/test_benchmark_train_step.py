"""benchmarks/train_step.py's profile summary: where a step's CPU time goes."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def train_step():
    sys.path.insert(0, str(BENCHMARKS))  # the script imports its sibling _presets
    try:
        spec = importlib.util.spec_from_file_location("train_step", BENCHMARKS / "train_step.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_profile_shares_cover_the_step(train_step) -> None:
    images = torch.randn(4, 8, 32, 32)
    weight = torch.randn(16, 8, 5, 5, requires_grad=True)
    matrix = torch.randn(64, 64, requires_grad=True)

    def step() -> None:
        loss = F.conv2d(images, weight).square().mean() + (matrix @ matrix).sum()
        loss.backward()

    summary = train_step.profile_summary(step, repeats=2)
    share = summary["share"]
    assert set(share) == {"convolution", "matmul", "other"}
    assert sum(share.values()) == pytest.approx(1.0, abs=2e-3)
    # a 5x5 convolution of 4x8x32x32 costs far more than a 64x64 product
    assert share["convolution"] > share["matmul"] > 0
    assert any("conv" in name for name in summary["top_ops_ms_per_step"])
    assert summary["self_cpu_ms_per_step"] > 0
