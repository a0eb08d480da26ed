"""Scoring trained models the way the paper does (one protocol for training, the command line
and benchmarks)."""

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
    "evaluate",
    "evaluate_batch",
    "upsample_masks",
]
