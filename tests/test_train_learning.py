"""Training learns: on generated Tetrominoes the FG-ARI of the decomposition rises clearly above its
value at initialisation within a few CPU minutes (a reduced configuration, see below)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import pyro_emorl as pe
from pyro_emorl import train
from pyro_emorl.data import HDF5Dataset, generate
from pyro_emorl.metrics import ari
from tests.tiny import num_threads

CHECKPOINTS = (0, 500, 1000, 1500)
TEST_IMAGES = 64


def reduced_tetrominoes() -> pe.EMORLConfig:
    """The Tetrominoes model (K=4, D=32, L=3, small decoder) trained for minutes, not days:
    sigma 0.1 instead of 0.3 (a sharper reconstruction term), no GECO, one refinement step,
    batch 8, a 20-step LR warm-up."""
    return pe.presets.tetrominoes(
        log_scale=math.log(0.1),
        geco=None,
        refinement_steps=1,
        training={
            "steps": CHECKPOINTS[-1],
            "batch_size": 8,
            "warmup_steps": 20,
            "curriculum": ((-1, 1),),
        },
    )


def fg_ari(model: pe.EMORLModel, guide: pe.HierarchicalGuide, images, masks) -> float:
    with torch.no_grad():
        decomposition = pe.decompose(model, guide, images, num_steps=1)
    return float(np.mean(ari(masks, decomposition.final.masks)))


@pytest.fixture(autouse=True)
def _two_threads():
    """The same arithmetic, hence the same curve, on any machine."""
    with num_threads(2):
        yield


@pytest.mark.slow
def test_fg_ari_rises_above_its_initial_value(tmp_path) -> None:
    path = generate("tetrominoes", tmp_path / "tetrominoes.h5", 5000, TEST_IMAGES, progress=False)
    config = reduced_tetrominoes()
    dataset = train.training_dataset("tetrominoes", config, path)
    test = HDF5Dataset(path, split="test", masks=True)
    images = torch.stack([test[i]["imgs"] for i in range(TEST_IMAGES)])
    masks = torch.stack([test[i]["masks"] for i in range(TEST_IMAGES)])

    curve = []
    for steps in CHECKPOINTS:
        # Unit-gain initialisation: with the official gain 0.02 the decoder ignores the latents
        # for thousands of steps (FG-ARI stayed at 0.00 after 600 steps in our runs).
        torch.manual_seed(0)
        model, guide = pe.build(config)
        for module in (model, guide):
            pe.nn.official_init_(module, gain=1.0)
        if steps:
            options = train.RunOptions(
                out_dir=tmp_path / "run",
                resume=True,
                device="cpu",
                log_every=100,
                figure_every=0,
                progress=False,
                tensorboard=False,
            )
            step_config = config.replace(training={"steps": steps})
            train.fit(step_config, dataset, options, model=model, guide=guide)
        curve.append((steps, fg_ari(model, guide, images, masks)))
    print("FG-ARI vs step:", json.dumps(curve))

    # Early FG-ARI moves up and down as slots trade objects: judge the last two points.
    initial, late = curve[0][1], float(np.mean([value for _, value in curve[-2:]]))
    assert late > initial + 0.1, curve
