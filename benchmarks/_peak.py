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


def step_flops(step) -> int:  # noqa: ANN001  (any callable running one step)
    """The FLOPs ``step()`` performs in matrix products and convolutions (forward and backward),
    as `torch.utils.flop_counter` counts them; element-wise work is not counted."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())
