"""Training EfficientMORL: the loop, exact resume, logging and ``torchrun`` data parallelism.

Typical use::

    import pyro_emorl as pe
    from pyro_emorl import train

    config = pe.presets.tetrominoes()
    dataset = train.training_dataset("tetrominoes", config)   # generated and cached
    train.fit(config, dataset, train.RunOptions(out_dir="runs/tetrominoes"))
"""

from pyro_emorl.train.batches import BatchStream, ResumableDistributedSampler
from pyro_emorl.train.checkpoint import (
    export_for_inference,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from pyro_emorl.train.data import training_dataset
from pyro_emorl.train.logger import read_metrics
from pyro_emorl.train.loop import NonFiniteLossError, Trainer, TrainResult, fit
from pyro_emorl.train.options import RunOptions
from pyro_emorl.train.starts import StartsResult, fit_best_start
from pyro_emorl.train.step import StepStats, TrainStep, build_objective

__all__ = [
    "BatchStream",
    "NonFiniteLossError",
    "ResumableDistributedSampler",
    "RunOptions",
    "StartsResult",
    "StepStats",
    "TrainResult",
    "TrainStep",
    "Trainer",
    "build_objective",
    "export_for_inference",
    "fit",
    "fit_best_start",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "read_metrics",
    "save_checkpoint",
    "training_dataset",
]
