"""Training: the loop, its callbacks, exact resume, logging and ``torchrun`` data parallelism.

Typical use::

    import pyro_emorl as pe
    from pyro_emorl import train

    config = pe.presets.tetrominoes()
    dataset = train.training_dataset("tetrominoes", config)   # generated and cached
    train.fit(config, dataset, train.RunOptions(out_dir="runs/tetrominoes"))
"""

from pyro_emorl.train.batches import BatchStream, ResumableDistributedSampler
from pyro_emorl.train.callbacks import (
    Callback,
    Checkpoints,
    DecompositionFigures,
    HeldOutScores,
    MetricsLog,
    NonFiniteLossError,
    PaceReport,
    StepEnd,
    StopCondition,
    StopOnSignal,
    TimeBudget,
)
from pyro_emorl.train.data import training_dataset
from pyro_emorl.train.heldout import HeldOutEvaluator
from pyro_emorl.train.logger import read_metrics
from pyro_emorl.train.loop import Trainer, TrainResult, fit
from pyro_emorl.train.options import RunOptions
from pyro_emorl.train.starts import StartsResult, fit_best_start
from pyro_emorl.train.step import StepStats, TrainStep

__all__ = [
    "BatchStream",
    "Callback",
    "Checkpoints",
    "DecompositionFigures",
    "HeldOutEvaluator",
    "HeldOutScores",
    "MetricsLog",
    "NonFiniteLossError",
    "PaceReport",
    "ResumableDistributedSampler",
    "RunOptions",
    "StartsResult",
    "StepEnd",
    "StepStats",
    "StopCondition",
    "StopOnSignal",
    "TimeBudget",
    "TrainResult",
    "TrainStep",
    "Trainer",
    "fit",
    "fit_best_start",
    "read_metrics",
    "training_dataset",
]
