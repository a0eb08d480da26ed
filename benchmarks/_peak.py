"""A machine's matrix-multiply rate, the practical peak a step is measured against."""

from __future__ import annotations

import statistics
import time

import torch


def matmul_gflops(
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    sizes: tuple[int, ...] = (512, 1024, 2048),
    repeats: int = 7,
) -> dict:
    """GFLOP/s of square matrix products at the current thread count.

    For each size ``n`` the median over ``repeats`` timed products (``2 n^3`` FLOPs each, after
    two untimed ones); the best size's median is the practical peak.

    Returns:
        ``{"gflops": best, "by_size": {n: median}}``.
    """
    cuda = torch.device(device).type == "cuda"
    synchronize = torch.cuda.synchronize if cuda else lambda: None
    by_size = {}
    for n in sizes:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        for _ in range(2):
            a @ b
        rates = []
        for _ in range(repeats):
            synchronize()
            start = time.perf_counter()
            a @ b
            synchronize()
            rates.append(2 * n**3 / (time.perf_counter() - start) / 1e9)
        by_size[n] = round(statistics.median(rates), 1)
    return {"gflops": max(by_size.values()), "by_size": by_size}


def conv_gflops(
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    sizes: tuple[int, ...] = (128, 256, 512),
    repeats: int = 7,
) -> dict:
    """GFLOP/s of 1x1 convolutions (``C -> C`` channels on a 32x32 channels-last image, so a
    GEMM through the convolution library, oneDNN on a CPU) at the current thread count.

    On a CPU torch's matrix products go through MKL, which on some CPUs (AMD's) uses slower
    code paths than oneDNN's convolutions; the practical peak is the better of the two.

    Returns:
        ``{"gflops": best, "by_size": {C: median}}``.
    """
    cuda = torch.device(device).type == "cuda"
    synchronize = torch.cuda.synchronize if cuda else lambda: None
    by_size = {}
    for c in sizes:
        x = torch.randn(8, c, 32, 32, device=device).to(dtype)
        x = x.contiguous(memory_format=torch.channels_last)
        w = torch.randn(c, c, 1, 1, device=device).to(dtype)
        w = w.contiguous(memory_format=torch.channels_last)
        flops = 2 * 8 * 32 * 32 * c * c
        for _ in range(2):
            torch.nn.functional.conv2d(x, w)
        rates = []
        for _ in range(repeats):
            synchronize()
            start = time.perf_counter()
            torch.nn.functional.conv2d(x, w)
            synchronize()
            rates.append(flops / (time.perf_counter() - start) / 1e9)
        by_size[c] = round(statistics.median(rates), 1)
    return {"gflops": max(by_size.values()), "by_size": by_size}


def practical_peak(dtype: torch.dtype = torch.float32, device: str = "cpu") -> dict:
    """The better of `matmul_gflops` and `conv_gflops`, with both."""
    matmul = matmul_gflops(dtype, device)
    conv = conv_gflops(dtype, device)
    return {"gflops": max(matmul["gflops"], conv["gflops"]), "matmul": matmul, "conv": conv}


def step_flops(step) -> int:  # noqa: ANN001  (any callable running one step)
    """The FLOPs ``step()`` performs in matrix products and convolutions (forward and backward),
    as `torch.utils.flop_counter` counts them; element-wise work is not counted."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())
