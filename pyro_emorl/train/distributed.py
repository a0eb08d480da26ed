"""``torchrun`` process groups and the few collectives the training loop needs.

Gradients are averaged by hand (`allreduce_mean_`) rather than by wrapping the objective in
``DistributedDataParallel``. DDP does work here (checked with gloo: the refinement ELBO calls
``torch.autograd.grad`` inside its forward pass, which DDP accepts with
``find_unused_parameters=True``, also when the curriculum changes ``I``), but the manual
all-reduce is simpler and does more: one flat all-reduce after ``backward`` averages the gradients
together with the logged scalars (so every rank agrees on the GECO statistics and on whether a
step is skipped), there is no graph traversal for unused parameters, no re-broadcast of the GECO
buffers at every forward, and ``state_dict`` keys carry no ``module.`` prefix. EfficientMORL's
models (under 1M parameters) gain nothing from DDP's overlap of communication with the backward
pass.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from pyro_emorl.devices import check_device


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits in the job.

    Attributes:
        rank: global rank (0 in a single-process run).
        world_size: number of processes.
        device: this process's device (``cuda:LOCAL_RANK`` under ``torchrun`` on GPUs).
        control_group: a gloo group for host-side flags and objects (``None`` when single).
    """

    rank: int
    world_size: int
    device: torch.device
    control_group: Any = None

    @property
    def is_main(self) -> bool:
        """Whether this process logs and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether more than one process trains."""
        return self.world_size > 1

    def any_rank(self, flag: bool) -> bool:
        """``True`` on every rank if ``flag`` is ``True`` on any (a host-side collective on the
        gloo group, so no device synchronisation)."""
        if not self.distributed:
            return flag
        value = torch.tensor([int(flag)])
        dist.all_reduce(value, op=dist.ReduceOp.MAX, group=self.control_group)
        return bool(value.item())

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (picklable, CPU tensors), in rank order, on every rank."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj, group=self.control_group)
        return out


def resolve_device(device: str | torch.device | None, local_rank: int = 0) -> torch.device:
    """The training device: ``None`` picks CUDA when available; a bare ``"cuda"`` under
    ``torchrun`` means this process's GPU ``cuda:LOCAL_RANK``.

    Raises:
        ValueError: for a device this machine does not have (see `check_device`).
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = check_device(device, "device")
    if device.type == "cuda" and device.index is None:
        device = check_device(torch.device("cuda", local_rank), "device")
    return device


@contextmanager
def distributed_context(device: str | torch.device | None = None) -> Iterator[DistributedContext]:
    """Join the ``torchrun`` job described by the environment, if any, for the duration.

    Without ``WORLD_SIZE`` > 1 in the environment (and no process group already initialised) this
    is a single-process context. Otherwise it initialises the default process group (NCCL on CUDA,
    gloo on CPU) unless the caller already did, and destroys it on exit only if it created it.

    Args:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``None`` (CUDA when available).

    Yields:
        The `DistributedContext`.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device, local_rank)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1 and not dist.is_initialized():
        yield DistributedContext(rank=0, world_size=1, device=device)
        return
    created = not dist.is_initialized()
    if created:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    control = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else None
    try:
        yield DistributedContext(
            rank=dist.get_rank(),
            world_size=dist.get_world_size(),
            device=device,
            control_group=control,
        )
    finally:
        if created:
            dist.destroy_process_group()


def allreduce_mean_(tensors: Sequence[Tensor]) -> None:
    """Average ``tensors`` over all ranks in place, in a single all-reduce.

    Args:
        tensors: same shapes, dtype and device on every rank (gradients and scalars).
    """
    if not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= dist.get_world_size()
    offset = 0
    for t in tensors:
        t.copy_(flat[offset : offset + t.numel()].view_as(t))
        offset += t.numel()


def broadcast_module_(module: nn.Module, src: int = 0) -> None:
    """Copy ``module``'s parameters and buffers from rank ``src`` to every rank."""
    for tensor in [*module.parameters(), *module.buffers()]:
        dist.broadcast(tensor.data, src=src)
