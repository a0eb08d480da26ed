"""A machine's practical peak GFLOP/s, and the FLOPs of a step, to measure a step against."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import partial

import torch


def _median_gflops(run: Callable[[], object], flops: int, device: str, repeats: int) -> float:
    """Median GFLOP/s of ``run`` (``flops`` each) over ``repeats`` timed calls after two
    untimed ones."""
    synchronize = torch.cuda.synchronize if torch.device(device).type == "cuda" else lambda: None
    for _ in range(2):
        run()
    rates = []
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        run()
        synchronize()
        rates.append(flops / (time.perf_counter() - start) / 1e9)
    return round(statistics.median(rates), 1)


def matmul_gflops(
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    sizes: tuple[int, ...] = (512, 1024, 2048),
    repeats: int = 7,
) -> dict:
    """GFLOP/s of square ``n x n`` matrix products (``2 n^3`` FLOPs) at the current thread
    count, per size; the best size's median is the rate.

    Returns:
        ``{"gflops": best, "by_size": {n: median}}``.
    """
    by_size = {}
    for n in sizes:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        by_size[n] = _median_gflops(partial(torch.matmul, a, b), 2 * n**3, device, repeats)
    return {"gflops": max(by_size.values()), "by_size": by_size}


def conv_gflops(
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    sizes: tuple[int, ...] = (128, 256, 512),
    repeats: int = 7,
) -> dict:
    """GFLOP/s of 1x1 convolutions (``C -> C`` channels on 8 channels-last 32x32 images, so a
    GEMM through the convolution library, oneDNN on a CPU) at the current thread count.

    On a CPU torch's matrix products go through MKL, which on some CPUs (AMD's) uses slower
    code paths than oneDNN's convolutions; the practical peak is the better of the two.

    Returns:
        ``{"gflops": best, "by_size": {C: median}}``.
    """
    by_size = {}
    for c in sizes:
        x = torch.randn(8, c, 32, 32, device=device).to(dtype)
        x = x.contiguous(memory_format=torch.channels_last)
        w = torch.randn(c, c, 1, 1, device=device).to(dtype)
        w = w.contiguous(memory_format=torch.channels_last)
        run = partial(torch.nn.functional.conv2d, x, w)
        by_size[c] = _median_gflops(run, 2 * 8 * 32 * 32 * c * c, device, repeats)
    return {"gflops": max(by_size.values()), "by_size": by_size}


def practical_peak(dtype: torch.dtype = torch.float32, device: str = "cpu") -> dict:
    """The better of `matmul_gflops` and `conv_gflops`, with both."""
    matmul = matmul_gflops(dtype, device)
    conv = conv_gflops(dtype, device)
    return {"gflops": max(matmul["gflops"], conv["gflops"]), "matmul": matmul, "conv": conv}


def step_flops(step: Callable[[], object]) -> int:
    """The FLOPs ``step()`` performs in matrix products and convolutions (forward and backward),
    as `torch.utils.flop_counter` counts them; element-wise work is not counted."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())
