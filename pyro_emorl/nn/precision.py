"""Lower-precision convolutions: bfloat16 autocast of the convolution stacks only.

The encoder's and decoders' convolutions are nearly all of a step's arithmetic. On CPUs with
native bfloat16 (AVX512-BF16 or AMX) oneDNN runs them several times faster in bfloat16; the
rest of the program (slot attention, the GRUs, the posteriors, likelihood, KL and GECO sums)
stays in the parameters' dtype, because each stack casts its output back. On a CPU without
native bfloat16 the same arithmetic is emulated and slower, so
[resolve_precision][pyro_emorl.nn.precision.resolve_precision] keeps float32 there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, cast

import torch
from torch import Tensor, nn

#: What a ``precision`` setting may be.
PRECISIONS = ("float32", "bfloat16", "auto")
#: /proc/cpuinfo flags of native bfloat16 arithmetic.
_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


class ConvDtypeModule(Protocol):
    """A module whose convolution stacks run in ``conv_dtype`` (``None``: their own dtype)."""

    conv_dtype: torch.dtype | None


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes in bfloat16 natively (an ``avx512_bf16`` or ``amx_bf16`` flag).

    Args:
        cpuinfo: the text of ``/proc/cpuinfo`` (read when ``None``; ``False`` where there is
            none, as off Linux).
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return not _BF16_FLAGS.isdisjoint(line.split(":", 1)[1].split())
    return False


def check_precision(precision: str) -> str:
    """``precision`` itself, if it is one of [PRECISIONS][pyro_emorl.nn.precision.PRECISIONS].

    Raises:
        ValueError: naming the value and the choices.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The convolution dtype that a ``precision`` setting means on ``device``.

    Args:
        precision: ``"float32"`` (no autocast), ``"bfloat16"`` (always), or ``"auto"``
            (bfloat16 where it is native: a CPU with AVX512-BF16/AMX, a CUDA device that
            supports it; float32 elsewhere).
        device: where the model runs.

    Returns:
        ``torch.bfloat16``, or ``None`` for the parameters' own dtype.

    Raises:
        ValueError: for an unknown ``precision``.
    """
    if check_precision(precision) == "float32":
        return None
    if precision == "bfloat16":
        return torch.bfloat16
    if device.type == "cpu":
        native = cpu_has_native_bf16()
    else:
        native = device.type == "cuda" and torch.cuda.is_bf16_supported()
    return torch.bfloat16 if native else None


def autocast_convs(module: ConvDtypeModule, x: Tensor, convs: Callable[[Tensor], Tensor]) -> Tensor:
    """``convs(x)`` in ``module.conv_dtype`` (when set), cast back to ``x``'s dtype.

    Args:
        module: a module with a ``conv_dtype`` attribute (``None``: no autocast).
        x: the stack's input.
        convs: the convolution stack.
    """
    dtype = module.conv_dtype
    if dtype is None:
        return convs(x)
    with torch.autocast(x.device.type, dtype=dtype):
        out = convs(x)
    return out.to(x.dtype)


class HasSubmodules(Protocol):
    """Anything with ``modules()``: an ``nn.Module``, or a model typed by its protocol."""

    def modules(self) -> Iterator[nn.Module]:
        """The module and every submodule."""
        ...


def set_conv_dtype(module: HasSubmodules, dtype: torch.dtype | None) -> int:
    """Run the convolution stacks inside ``module`` in ``dtype`` (``None``: their own dtype).

    A setting of the modules, not of their parameters: state dicts and checkpoints are
    unchanged, and a model loaded afresh runs in its own dtype again.

    Args:
        module: any module (e.g. the model or the guide); every submodule with a
            ``conv_dtype`` attribute (the encoder and the decoders) is set.
        dtype: ``torch.bfloat16`` or ``None``.

    Returns:
        How many submodules were set.
    """
    count = 0
    for sub in module.modules():
        if hasattr(sub, "conv_dtype"):
            cast(ConvDtypeModule, sub).conv_dtype = dtype
            count += 1
    return count
