"""Scoring trained models the way the paper does, and loading checkpoints to score."""

from pyro_emorl.evaluation.checkpoint import LoadedModel, load_for_inference
from pyro_emorl.evaluation.protocol import (
    CLEVRTEX_METRICS,
    METRICS,
    EvaluationResult,
    evaluate,
    evaluate_batch,
    upsample_masks,
)

__all__ = [
    "CLEVRTEX_METRICS",
    "METRICS",
    "EvaluationResult",
    "LoadedModel",
    "evaluate",
    "evaluate_batch",
    "load_for_inference",
    "upsample_masks",
]
