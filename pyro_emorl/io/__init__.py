"""Files: checkpoints (with their component names and format), the import of official
EfficientMORL weights, and the table of shipped models. Below both training and evaluation."""

from pyro_emorl.io.checkpoint import (
    export_for_inference,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from pyro_emorl.io.loading import LoadedModel, load_for_inference
from pyro_emorl.io.official import load_official

__all__ = [
    "LoadedModel",
    "export_for_inference",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_for_inference",
    "load_official",
    "save_checkpoint",
]
