"""IODINE through the same commands as EfficientMORL: ``emorl train --preset iodine_tetrominoes``
for 2 steps, ``--resume``, ``emorl evaluate`` and ``emorl visualize``, on a tiny generated set."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import pyro_emorl.models.iodine  # noqa: F401  (registers IODINE if the package does not yet)
from pyro_emorl import io, train
from pyro_emorl.cli import main
from pyro_emorl.data import generate
from tests.tiny import num_threads

# The original's Tetrominoes architecture, shrunk so that a step takes well under a second.
SMALL = [
    "num_slots=2",
    "z_dim=4",
    "refinement_steps=1",
    "training.curriculum=[[-1,1]]",
    'decoder_options={"architecture": "original", "channels": 8, "kernel": 3}',
    "refine_channels=[8,8]",
    "refine_kernel=3",
    "refine_mlp=[8]",
    "lstm_size=8",
]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tetrominoes.h5"
    return generate("tetrominoes", path, num_train=4, num_test=4, seed=0, progress=False)


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    """A run of ``emorl train --preset iodine_tetrominoes``: 2 steps, then resumed to 3."""
    run = tmp_path_factory.mktemp("run")
    argv = ["train", "--preset", "iodine_tetrominoes", "--data", str(data), "--batch-size", "2"]
    argv += ["--out", str(run), "--device", "cpu", "--no-progress", "--no-tensorboard"]
    argv += ["--log-every", "1", "--checkpoint-every", "2", "--figure-every", "2"]
    for override in SMALL:
        argv += ["--set", override]
    with num_threads(1):
        assert main([*argv, "--steps", "2"]) == 0
        assert main([*argv, "--steps", "3", "--resume"]) == 0
    return run


def test_train_and_resume(run):
    assert [r["step"] for r in train.read_metrics(run / "metrics.jsonl")] == [1, 2, 3]
    checkpoint = io.load_checkpoint(io.latest_checkpoint(run / "checkpoints"))
    assert checkpoint["step"] == 3
    assert checkpoint["config"]["model"] == "iodine"
    assert checkpoint["config"]["num_slots"] == 2
    assert checkpoint["components"]["decoder"]["name"] == "iodine_broadcast"
    assert checkpoint["components"]["likelihood"]["name"] == "logistic_mixture"
    assert (run / "figures" / "step-00000002.png").is_file()


def test_evaluate(run, data, tmp_path):
    checkpoint = io.latest_checkpoint(run / "checkpoints")
    out = tmp_path / "results.json"
    evaluate = ["evaluate", str(checkpoint), "--data", str(data), "--num-images", "3"]
    with num_threads(1):
        assert main([*evaluate, "--batch-size", "2", "--out", str(out), "--no-progress"]) == 0
    results = json.loads(out.read_text())
    assert results["settings"]["refine_steps"] == 1
    assert results["settings"]["num_slots"] == 2
    assert len(results["per_image"]["fg_ari"]) == 3


def test_visualize(run, data, tmp_path):
    checkpoint = io.latest_checkpoint(run / "checkpoints")
    figures = tmp_path / "figures"
    visualize = ["visualize", str(checkpoint), "--data", str(data), "--out", str(figures)]
    with num_threads(1):
        assert main([*visualize, "--num-images", "1", "--num-dims", "2", "--num-samples", "2"]) == 0
    names = {p.name for p in figures.iterdir()}
    assert {"decomposition_0.png", "steps_0.png", "prior_samples.png"} <= names
    with Image.open(figures / "decomposition_0.png") as image:
        assert np.asarray(image.convert("RGB"), dtype=np.float64).std() > 1.0
