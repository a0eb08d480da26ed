"""``torch.compile`` of the convolution stacks, shared by the benchmarks that time it."""

from __future__ import annotations

import torch


def compile_conv_stacks(modules: tuple[torch.nn.Module, ...], mode: str = "default") -> None:
    """Route the forward of every convolution stack in ``modules`` through ``torch.compile``.

    The stacks are the submodules with a ``conv_dtype`` attribute (the encoder's and the
    decoder's, see `pyro_emorl.nn.set_conv_dtype`): nearly all of a step's arithmetic, and free
    of Pyro's Python-side bookkeeping, which compiling the whole step would have to trace through.

    Args:
        modules: the model and the guide.
        mode: ``torch.compile``'s mode; ``"reduce-overhead"`` replays CUDA graphs on a GPU.
    """
    for module in modules:
        for sub in module.modules():
            if hasattr(sub, "conv_dtype"):
                sub.forward = torch.compile(sub.forward, dynamic=False, mode=mode)
