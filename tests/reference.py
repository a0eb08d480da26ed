"""Run one reference fixture (produced by the official implementation) through pyro_emorl."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch

from pyro_emorl import EMORLConfig, build
from pyro_emorl.infer import GECO, FixedNoise, RefinementELBO
from pyro_emorl.infer.geco import HALF_LOG_2PI
from pyro_emorl.io import official as official_io
from pyro_emorl.nn import set_conv_dtype
from pyro_emorl.sites import COMPONENTS_SITE, INITIAL_SITE, MASKS_SITE, latent_site

#: The fixtures that travel with the repository (produced by the official code at 67939f0).
BUNDLED_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "reference"
#: The real DeepMind Tetrominoes records that travel with the repository.
REAL_RECORDS = Path(__file__).resolve().parent / "fixtures" / "real" / "tetrominoes_mini.tfrecords"


def fixture_paths() -> list[Path]:
    """The bundled fixtures plus any ``*.pt`` in ``$EMORL_REFERENCE_FIXTURES`` (by name, the
    bundled copy first)."""
    paths = {p.name: p for p in BUNDLED_FIXTURES.glob("*.pt")}
    extra = os.environ.get("EMORL_REFERENCE_FIXTURES")
    if extra:
        for p in Path(extra).glob("*.pt"):
            paths.setdefault(p.name, p)
    return [paths[name] for name in sorted(paths)]


def load_fixture(path: Path) -> dict[str, Any]:
    return torch.load(path, weights_only=False)


def run_fixture(
    fixture: dict[str, Any],
    dtype: torch.dtype = torch.float64,
    conv_dtype: torch.dtype | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Build from the fixture's config alone, inject its noise, compute everything it holds.

    ``dtype`` is the parameters', the images' and the noise's; ``conv_dtype`` that of the
    convolution stacks (`pyro_emorl.nn.set_conv_dtype`); ``device`` where all of it runs.
    """
    config = EMORLConfig.from_official(fixture["config"])
    model_state, guide_state, _ = official_io.convert_state_dict(fixture["state_dict"], config)
    model, guide = build(config)
    model.load_state_dict(model_state)
    guide.load_state_dict(guide_state)
    model.to(device, dtype)
    guide.to(device, dtype)
    for module in (model, guide):
        set_conv_dtype(module, conv_dtype)

    num_layers, num_steps = config.num_layers, config.refinement_steps
    noise = {name: value.to(device, dtype) for name, value in fixture["noise"].items()}
    # With L = 0 the initial sample is the decoded (and refined) one.
    decoded = noise["init"] if num_layers == 0 else noise[f"layer_{num_layers}"]
    top = [decoded] + [noise[f"refine_{r}"] for r in range(1, num_steps + 1)]
    site_noise = {INITIAL_SITE: noise["init"], latent_site(num_layers): top}
    site_noise.update({latent_site(i): noise[f"layer_{i}"] for i in range(1, num_layers)})

    elbo = RefinementELBO(num_steps=num_steps, kl_beta=config.kl_beta)
    objective = elbo
    if config.geco is not None:
        objective = GECO(
            elbo,
            config.geco.target_per_element,
            config.image_shape,
            convention="official",
            warm_start=config.geco.warm_start,
        ).to(device, dtype)
        objective.num_updates.fill_(fixture["global_step"])
        if fixture["geco_state"] is not None:
            objective.C_ema.fill_(fixture["geco_state"]["C_ema"])
            objective.beta.fill_(fixture["geco_state"]["beta"])
    images = ((fixture["x"] + 1) / 2).to(device, dtype)
    with FixedNoise(site_noise):
        terms = elbo.steps(model, guide, images, objective=objective.objective)
    loss = elbo.weighted_loss(terms, objective.objective)
    loss.backward()

    # The official loss is the plain ELBO without GECO, before the warm start, or with kl_beta 0.
    geco_active = config.geco is not None and bool(objective.active) and config.kl_beta != 0
    constant = 0.0 if geco_active else HALF_LOG_2PI * math.prod(config.image_shape)
    weights_sum = sum((num_steps + 3 - r) / (num_steps + 1) for r in range(num_steps + 1))
    grads = {f"model.{k}": p.grad for k, p in model.named_parameters()}
    grads.update({f"guide.{k}": p.grad for k, p in guide.named_parameters()})

    step0_guide = terms[0].guide_trace
    layers = []
    for layer in range(1, num_layers + 1):
        fn = step0_guide.nodes[latent_site(layer)]["fn"].base_dist
        layers.append(
            {"loc": fn.loc, "scale": fn.scale, "attention": terms[0].state.attention[layer - 1]}
        )
    steps = []
    for r, t in enumerate(terms):
        step = {
            "nll": t.nll,
            "kl": t.kl,
            "x_loc": t.model_trace.nodes[COMPONENTS_SITE]["value"],
            "mask_logprobs": t.model_trace.nodes[MASKS_SITE]["value"],
        }
        if r == 0:
            step["kl_per_layer"] = {
                layer: t.kl_per_site[latent_site(layer)] for layer in range(1, num_layers + 1)
            }
        else:
            fn = t.guide_trace.nodes[latent_site(num_layers)]["fn"].base_dist
            step["loc"], step["scale"] = fn.loc, fn.scale
        steps.append(step)
    init_fn = step0_guide.nodes[INITIAL_SITE]["fn"].base_dist.base_dist
    return {
        "config": config,
        "init": {"loc": init_fn.loc, "scale": init_fn.scale},
        "layers": layers,
        "steps": steps,
        "total_loss_official": loss.detach() - weights_sum * constant,
        "grads": grads,
    }


def expected_grads(fixture: dict[str, Any], config: EMORLConfig) -> dict[str, torch.Tensor]:
    """The fixture's gradients renamed to our parameter names (via the same key conversion)."""
    grads = dict(fixture["expected"]["grads"])
    for name in fixture["expected"]["params_without_grad"]:
        grads[name] = torch.zeros_like(fixture["state_dict"][name])
    model_grads, guide_grads, _ = official_io.convert_state_dict(grads, config)
    out = {f"model.{k}": v for k, v in model_grads.items()}
    out.update({f"guide.{k}": v for k, v in guide_grads.items()})
    return out
