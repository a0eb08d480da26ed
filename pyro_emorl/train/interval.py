"""Running statistics over a logging interval, kept on the device until they are read."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from pyro_emorl.train.step import StepStats

_MEANS = ("loss", "nll", "kl", "grad_norm")


class IntervalStats:
    """Means of the applied steps since the last read, and counts of skipped (non-finite) steps.

    `add` never synchronises with the host; `read` does, once. The state is part of
    the checkpoint so a resumed run logs the same numbers as an uninterrupted one.

    Args:
        device: where the sums live (the training device).
    """

    def __init__(self, device: torch.device) -> None:
        self.sums = torch.zeros(len(_MEANS), device=device)
        self.applied = torch.zeros((), dtype=torch.long, device=device)
        self.skipped = torch.zeros((), dtype=torch.long, device=device)
        self.skipped_total = torch.zeros((), dtype=torch.long, device=device)
        self.skipped_run = torch.zeros((), dtype=torch.long, device=device)
        self.longest_run = torch.zeros((), dtype=torch.long, device=device)

    def add(self, stats: StepStats) -> None:
        """Accumulate one step."""
        values = torch.stack([stats.loss, stats.nll, stats.kl, stats.grad_norm])
        self.sums += torch.where(stats.finite, values, torch.zeros_like(values))
        bad = (~stats.finite).long()
        self.applied += 1 - bad
        self.skipped += bad
        self.skipped_total += bad
        self.skipped_run.copy_((self.skipped_run + 1) * bad)
        self.longest_run.copy_(torch.maximum(self.longest_run, self.skipped_run))

    def read(
        self, extra: dict[str, Tensor] | None = None, reset: bool = True
    ) -> dict[str, float | int | None]:
        """The interval's means and counts (one host synchronisation), then reset the interval.

        Args:
            extra: further device scalars to read in the same synchronisation (e.g. GECO's beta).
            reset: start a new interval (``False`` for a look that must not change later records).

        Returns:
            ``loss``, ``nll``, ``kl``, ``grad_norm`` (means over applied steps; ``None`` if every
            step of the interval was skipped), ``skipped`` (this interval), ``skipped_total``,
            ``longest_skipped_run`` (consecutive skipped steps, longest since the last read), and
            the ``extra`` values.
        """
        extra = extra or {}
        tensors = [self.sums, self.applied, self.skipped, self.skipped_total, self.longest_run]
        tensors += list(extra.values())
        values = torch.cat([t.detach().double().reshape(-1) for t in tensors]).tolist()
        n = len(_MEANS)
        applied, skipped, total, longest = values[n : n + 4]
        record: dict[str, float | int | None] = {
            name: value / applied if applied else None for name, value in zip(_MEANS, values)
        }
        record.update(zip(extra, values[n + 4 :]))
        record = {k: v if v is None or math.isfinite(v) else None for k, v in record.items()}
        record.update(
            skipped=int(skipped), skipped_total=int(total), longest_skipped_run=int(longest)
        )
        if not reset:
            return record
        self.sums.zero_()
        self.applied.zero_()
        self.skipped.zero_()
        self.longest_run.copy_(self.skipped_run)
        return record

    def state_dict(self) -> dict[str, Tensor]:
        """Tensors to store in a checkpoint."""
        return {name: getattr(self, name).clone() for name in self._names()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore from `state_dict`."""
        for name in self._names():
            getattr(self, name).copy_(state[name])

    @staticmethod
    def _names() -> tuple[str, ...]:
        return ("sums", "applied", "skipped", "skipped_total", "skipped_run", "longest_run")
