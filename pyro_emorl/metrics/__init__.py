"""Evaluation metrics of EfficientMORL: segmentation, reconstruction and disentanglement, and
the ClevrTex evaluator's count accuracy and DICE.

All metrics accept numpy arrays or torch tensors (any device), compute in float64 and return
numpy arrays (per image where applicable) or floats. Segmentation metrics share one reading of
masks and label maps, spelled out under the ``true`` and ``pred`` arguments of
`ari`. A per-image score that is undefined (an image without a foreground object, or with
all-zero ground-truth masks) is NaN, with an `UndefinedMetricWarning`; `mean_over_defined`
averages the defined ones and gives ``None`` when there are none.
"""

from pyro_emorl.metrics._undefined import UndefinedMetricWarning, mean_over_defined
from pyro_emorl.metrics.activeness import activeness
from pyro_emorl.metrics.ari import ari
from pyro_emorl.metrics.count_accuracy import count_accuracy
from pyro_emorl.metrics.dci import DCIResult, FactorType, dci
from pyro_emorl.metrics.dice import dice
from pyro_emorl.metrics.importance_scores import (
    completeness,
    completeness_per_factor,
    disentanglement,
    disentanglement_per_code,
)
from pyro_emorl.metrics.matching import SlotMatch, gather_matched, match_slots_to_objects
from pyro_emorl.metrics.mean_iou import mean_iou
from pyro_emorl.metrics.mse import mse
from pyro_emorl.metrics.segmentation_covering import segmentation_covering

__all__ = [
    "DCIResult",
    "FactorType",
    "SlotMatch",
    "UndefinedMetricWarning",
    "activeness",
    "ari",
    "completeness",
    "completeness_per_factor",
    "count_accuracy",
    "dci",
    "dice",
    "disentanglement",
    "disentanglement_per_code",
    "gather_matched",
    "match_slots_to_objects",
    "mean_iou",
    "mean_over_defined",
    "mse",
    "segmentation_covering",
]
