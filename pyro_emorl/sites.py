"""Names of the Pyro sample sites shared by the model, the guide and the inference code."""

#: The symmetry-breaking initial sample (an auxiliary guide site with no model counterpart).
INITIAL_SITE = "z_0"
#: The observed image.
OBSERVATION_SITE = "x"
#: Deterministic model sites holding the decoded slots, for visualisation and Predictive.
COMPONENTS_SITE = "components"
MASKS_SITE = "mask_logprobs"
#: The decoder's raw mask logits (before the softmax over slots, which loses their per-pixel
#: offset; IODINE's refinement reads them).
MASK_LOGITS_SITE = "mask_logits"


def latent_site(layer: int) -> str:
    """Site name of stochastic layer ``layer`` (paper indexing, 1..L; ``z_L`` is decoded)."""
    return f"z_{layer}"
