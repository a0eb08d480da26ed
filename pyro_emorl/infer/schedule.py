"""The official learning-rate schedule and refinement curriculum."""

from __future__ import annotations

import bisect
from collections.abc import Sequence


def official_lr_factor(step: int, warmup_steps: int = 10_000, half_life: int = 100_000) -> float:
    """Learning-rate multiplier at optimisation step ``step`` (use with ``LambdaLR``).

    Linear warm-up from 0 over ``warmup_steps``, then ``0.5 ** ((step - warmup) / half_life)``.
    The step right after the warm-up uses the full rate (a quirk of the reference's
    ``GradualWarmupScheduler`` that we keep so learning rates match step for step).

    Args:
        step: 0-based optimisation step.
        warmup_steps: warm-up length (10,000).
        half_life: steps per halving after the warm-up (100,000).

    Returns:
        The factor applied to the base learning rate.
    """
    if warmup_steps > 0 and step <= warmup_steps:
        return step / warmup_steps
    if step == warmup_steps + 1:
        return 1.0
    return 0.5 ** ((step - warmup_steps) / half_life)


def kl_warmup_factor(step: int, warmup_steps: int) -> float:
    """Multiplier of the KL weight at optimisation step ``step`` during a KL warm-up.

    Rises linearly from ``1 / warmup_steps`` at step 0 to 1 at step ``warmup_steps - 1`` and stays
    there (Bowman et al., 2016). Starting near 0 lets the posteriors carry information before the
    KL is charged in full, so the decoder learns to read the latents sooner. The official code has
    no KL warm-up (``warmup_steps=0``: the factor is always 1).

    Args:
        step: 0-based optimisation step.
        warmup_steps: warm-up length (0: none).
    """
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, (step + 1) / warmup_steps)


class RefinementCurriculum:
    """Number of refinement steps ``I`` as a function of the training step.

    Args:
        schedule: ``(first_step, I)`` pairs; the last pair whose ``first_step <= step`` wins (the
            reference's rule). Tetrominoes: ``[(-1, 3)]``; Multi-dSprites and CLEVR6:
            ``[(-1, 3), (100_000, 1)]``.
    """

    def __init__(self, schedule: Sequence[tuple[int, int]]) -> None:
        pairs = sorted((int(s), int(i)) for s, i in schedule)
        if not pairs:
            raise ValueError("the curriculum needs at least one (step, I) pair")
        if any(i < 0 for _, i in pairs):
            raise ValueError(f"refinement steps must be >= 0, got {pairs}")
        self.schedule = pairs
        self._starts = [s for s, _ in pairs]

    def __call__(self, step: int) -> int:
        """``I`` at training step ``step``."""
        index = bisect.bisect_right(self._starts, step) - 1
        if index < 0:
            raise ValueError(f"the curriculum {self.schedule} does not cover step {step}")
        return self.schedule[index][1]


def noise_warmup_factor(step: int, warmup_steps: int) -> float:
    """Scale of the latents' sampling noise at optimisation step ``step`` during a noise warm-up.

    Rises linearly from 0 at step 0 (the decoder reads the posterior means) to 1 at step
    ``warmup_steps`` and stays there. The official code has no noise warm-up (``warmup_steps=0``:
    the factor is always 1).

    Args:
        step: 0-based optimisation step.
        warmup_steps: warm-up length (0: none).
    """
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, step / warmup_steps)
