"""The official EfficientMORL initialisation."""

from __future__ import annotations

from typing import TypeVar

from torch import nn

ModuleT = TypeVar("ModuleT", bound=nn.Module)

_WEIGHTED = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


def official_init_(module: ModuleT, gain: float = 0.02) -> ModuleT:
    """Xavier-normal weights with a small gain and zero biases, in place.

    The official code initialises almost every convolution and linear layer this way (gain 0.02,
    so at initialisation the decoder outputs RGB near 0.5 and uniform masks). LayerNorms, GRUs and
    the DualGRU are left to their own initialisation.

    Args:
        module: every ``Conv2d``, ``ConvTranspose2d`` and ``Linear`` inside it is re-initialised.
        gain: the xavier gain.

    Returns:
        ``module``, for chaining.
    """
    for m in module.modules():
        if isinstance(m, _WEIGHTED):
            nn.init.xavier_normal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


def default_init_(module: ModuleT) -> ModuleT:
    """PyTorch's own initialisation of every layer inside ``module``, in place.

    Calls ``reset_parameters()`` of ``module`` and of every submodule that has one (``Linear``,
    ``Conv2d``, ``LayerNorm``, ``GRUCell``, ...). The official Slot Attention baseline leaves its
    encoder and slot-attention layers at this initialisation (only its decoder gets the
    xavier-normal init of [official_init_][pyro_emorl.nn.official_init_]).

    Args:
        module: the module to re-initialise.

    Returns:
        ``module``, for chaining.
    """
    for m in module.modules():
        reset = getattr(m, "reset_parameters", None)
        if callable(reset):
            reset()
    return module
