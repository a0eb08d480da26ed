"""The one check of a device name, shared by every command (``--device``) and the Python API.

A device that is not a torch device string (``gpu``), or one this machine does not have (``cuda``
without CUDA, ``cuda:3`` with one GPU, ``mps`` off Apple silicon), is refused with one line naming
the value and the fix, before any data is generated, read or any model is built.
"""

from __future__ import annotations

import torch

#: What to suggest when a device name is not understood.
CHOICES = "cpu, cuda, cuda:N or mps"


def _named(option: str, value: object) -> str:
    # "--device gpu" for a command-line option, "device='gpu'" for a Python argument.
    return f"{option} {value}" if option.startswith("--") else f"{option}={str(value)!r}"


def check_device(device: str | torch.device, option: str = "--device") -> torch.device:
    """``device`` as a `torch.device` this machine can run on.

    Args:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` (or ``"xpu"``), or a
            `torch.device`.
        option: how the caller calls the value in messages: ``"--device"`` (a command-line
            option) or the name of a Python argument such as ``"device"`` or ``"map_location"``.

    Returns:
        The `torch.device` (a bare ``"cuda"`` keeps no index).

    Raises:
        ValueError: naming the value and the fix, if it is not a device, or the machine lacks it.
    """
    what = _named(option, device)
    cpu = _named(option, "cpu")
    if not isinstance(device, str | torch.device):
        raise ValueError(f"{what}: not a device; use {CHOICES}")
    try:
        resolved = device if isinstance(device, torch.device) else torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{what}: not a device; use {CHOICES}") from None
    kind = resolved.type
    if kind == "cpu":
        return resolved
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{what}: CUDA is not available on this machine; use {cpu}")
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            plural = "s" if count != 1 else ""
            raise ValueError(
                f"{what}: this machine has {count} CUDA device{plural} "
                f"(cuda:0 to cuda:{count - 1}); choose one of them, or use {_named(option, 'cuda')}"
            )
        return resolved
    if kind == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"{what}: MPS (Apple GPU) is not available on this machine; use {cpu}")
        return resolved
    if kind == "xpu" and hasattr(torch, "xpu"):
        if not torch.xpu.is_available():
            raise ValueError(f"{what}: XPU is not available on this machine; use {cpu}")
        return resolved
    raise ValueError(f"{what}: not a device to run on; use {CHOICES}")
