"""Inference: ELBO terms from traces, the refinement ELBO, GECO, schedules."""

from pyro_emorl.infer.elbo import RefinementELBO, step_weights
from pyro_emorl.infer.geco import GECO
from pyro_emorl.infer.noise import FixedNoise, ScaledNoise
from pyro_emorl.infer.objective import build_objective
from pyro_emorl.infer.schedule import (
    RefinementCurriculum,
    kl_warmup_factor,
    noise_warmup_factor,
    official_lr_factor,
)
from pyro_emorl.infer.terms import StepTerms, trace_terms

__all__ = [
    "GECO",
    "FixedNoise",
    "RefinementCurriculum",
    "RefinementELBO",
    "ScaledNoise",
    "StepTerms",
    "build_objective",
    "kl_warmup_factor",
    "noise_warmup_factor",
    "official_lr_factor",
    "step_weights",
    "trace_terms",
]
