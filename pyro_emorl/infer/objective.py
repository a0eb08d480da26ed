"""The training objective a configuration asks for: the refinement ELBO, maybe wrapped by GECO."""

from __future__ import annotations

from pyro_emorl.config import ObjectiveSettings
from pyro_emorl.infer.elbo import RefinementELBO
from pyro_emorl.infer.geco import GECO


def build_objective(settings: ObjectiveSettings) -> tuple[RefinementELBO, GECO | None]:
    """The refinement ELBO of ``settings`` and, if they have GECO settings, the GECO wrapper.

    Args:
        settings: a configuration's ``objective_settings()``.
    """
    elbo = RefinementELBO(
        num_steps=settings.num_steps, weights=settings.weights, kl_beta=settings.kl_beta
    )
    if settings.geco is None:
        return elbo, None
    return elbo, GECO.from_config(elbo, settings.geco, settings.image_shape)
