"""How a training run is executed (as opposed to what is trained, which is the config)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pyro_emorl.devices import check_device
from pyro_emorl.nn.precision import check_precision


@dataclass(frozen=True)
class RunOptions:
    """Run settings of `pyro_emorl.train.fit`; none of them changes the trained model.

    Attributes:
        out_dir: run directory: ``checkpoints/``, ``figures/``, ``metrics.jsonl``,
            ``config.json`` and ``tensorboard/``.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``None`` (CUDA when available). Under
            ``torchrun`` a bare ``"cuda"`` means the process's own GPU. A device this machine
            lacks is refused here (see `pyro_emorl.devices.check_device`).
        seed: seeds the initialisation (same on every rank), the sampling noise (``seed + rank``)
            and the data order.
        resume: continue from the newest checkpoint in ``out_dir`` (start afresh if there is
            none). Without it an ``out_dir`` holding checkpoints is an error.
        init_from: a checkpoint (or a shipped model's name, e.g. ``"tetrominoes"``) whose
            weights start a new run instead of the initialisation: every model and guide tensor
            of the same name is copied; tensors the checkpoint lacks (e.g. a new prior's own
            parameters) keep their initialisation. Ignored when resuming.
        overwrite: start in an ``out_dir`` that holds files no run wrote (they are left alone)
            or a run that stopped before its first checkpoint (its files are replaced).
            Checkpoints are never replaced: resume them or choose another folder.
        log_every: steps between metrics records (each costs one host synchronisation).
        checkpoint_every: steps between checkpoints (one is also written at the end and on
            SIGINT/SIGTERM).
        keep_checkpoints: how many of the newest checkpoints to keep.
        figure_every: steps between decomposition figures (0: none; one is drawn at the end
            unless 0).
        num_workers: DataLoader worker processes.
        max_skipped_in_a_row: stop when this many consecutive steps had a non-finite loss or
            gradient (checked at logging steps).
        progress: show a progress bar (rank 0).
        tensorboard: also log to TensorBoard when the ``tensorboard`` package is installed.
        eval_every: steps between evaluations on the held-out sets given to ``fit`` (0: only
            at the start and the end). Each scores FG-ARI, ARI, MSE, KL, mSC and mIoU on the
            first ``eval_images`` images of every set.
        eval_images: how many held-out images each evaluation scores (the paper uses 320).
        eval_batch_size: images per evaluation batch.
        time_budget_s: stop (with a checkpoint and a final evaluation) once this many seconds
            have been spent training; evaluation, figures and checkpoints do not count.
            ``None``: no limit.
        precision: dtype of the encoder's and decoder's convolutions: ``"float32"``,
            ``"bfloat16"`` (autocast; everything else, the likelihood, KL and GECO sums
            included, stays in float32), or ``"auto"``: bfloat16 where it is native (a CPU with
            AVX512-BF16 or AMX, a CUDA device that supports it), float32 elsewhere (see
            [resolve_precision][pyro_emorl.nn.precision.resolve_precision]). A run resumes
            only with the precision it started with.
    """

    out_dir: str | os.PathLike[str] = "runs/emorl"
    device: str | None = None
    seed: int = 0
    resume: bool = False
    overwrite: bool = False
    init_from: str | os.PathLike[str] | None = None
    log_every: int = 100
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    figure_every: int = 5000
    num_workers: int = 0
    max_skipped_in_a_row: int = 20
    progress: bool = True
    tensorboard: bool = True
    eval_every: int = 0
    eval_images: int = 320
    eval_batch_size: int = 32
    time_budget_s: float | None = None
    precision: str = "float32"

    def __post_init__(self) -> None:
        for name in (
            "log_every",
            "checkpoint_every",
            "keep_checkpoints",
            "max_skipped_in_a_row",
            "eval_images",
            "eval_batch_size",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("figure_every", "num_workers", "seed", "eval_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.device is not None:
            check_device(self.device, "device")
        check_precision(self.precision)
        budget = self.time_budget_s
        if budget is not None and not (isinstance(budget, int | float) and budget > 0):
            raise ValueError(f"time_budget_s must be a positive number of seconds, got {budget!r}")

    @property
    def path(self) -> Path:
        """``out_dir`` as a path."""
        return Path(self.out_dir)
