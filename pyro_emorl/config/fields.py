"""Type and range checks of configuration fields, with messages that name the field and the fix.

The configuration dataclasses run these in ``__post_init__``, so a bad value from Python, a
``--set`` override or a checkpoint is refused when the configuration is made, before any work.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any


def integer(name: str, value: Any, minimum: int) -> int:
    """``value`` as an ``int`` >= ``minimum`` (booleans are refused: ``True`` is no count)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def real(name: str, value: Any, *, positive: bool = False, minimum: float | None = None) -> float:
    """``value`` as a finite ``float`` (optionally > 0 or >= ``minimum``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def boolean(name: str, value: Any) -> bool:
    """``value`` if it is ``True`` or ``False`` (strings such as ``'no'`` are refused)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    """``value`` if it is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")
    return value


def betas(name: str, value: Any) -> tuple[float, float]:
    """``value`` as Adam's ``(beta1, beta2)``, each in ``[0, 1)``."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or len(value) != 2:
        raise ValueError(f"{name} must be two numbers (beta1, beta2), got {value!r}")
    pair = tuple(real(name, b, minimum=0.0) for b in value)
    if not all(b < 1 for b in pair):
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return pair[0], pair[1]


def curriculum(name: str, value: Any) -> tuple[tuple[int, int], ...]:
    """``value`` as ``((first_step, I), ...)``: at least one pair, the first from step -1 or 0."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or not value:
        raise ValueError(
            f"{name} must be a list of (first_step, I) pairs such as [[-1, 3]], got {value!r}"
        )
    pairs = []
    for pair in value:
        if isinstance(pair, str | bytes) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise ValueError(f"{name} must hold (first_step, I) pairs, got {pair!r}")
        pairs.append((integer(f"{name} first_step", pair[0], -1), integer(f"{name} I", pair[1], 0)))
    if min(step for step, _ in pairs) > 0:
        raise ValueError(f"{name} must cover step 0 (start a pair at -1 or 0), got {value!r}")
    return tuple(pairs)
