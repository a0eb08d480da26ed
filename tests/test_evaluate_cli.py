"""``emorl evaluate`` and ``emorl visualize`` end to end on generated data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import pyro_emorl as pe
from pyro_emorl.cli import main
from pyro_emorl.data import generate
from tests.test_reference_fixtures import FIXTURES


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tetrominoes.h5"
    return generate("tetrominoes", path, num_train=4, num_test=12, seed=0, progress=False)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A checkpoint in the layout ``emorl train`` writes (config, model, guide, GECO state)."""
    config = pe.presets.tetrominoes(num_layers=2, refinement_steps=1)
    torch.manual_seed(0)
    model, guide = pe.build(config)
    with torch.no_grad():  # away from the near-constant official init, so figures show something
        for p in list(model.parameters()) + list(guide.parameters()):
            p.add_(0.05 * torch.randn_like(p))
    geco = pe.infer.GECO(pe.infer.RefinementELBO(1), -1.224, config.image_shape)
    path = tmp_path_factory.mktemp("run") / "step-00000010.pt"
    torch.save(
        {
            "format": 1,
            "config": config.to_dict(),
            "model": model.state_dict(),
            "guide": guide.state_dict(),
            "geco": geco.state_dict(),
        },
        path,
    )
    return path


def test_evaluate_writes_json(checkpoint, data, tmp_path, capsys):
    out = tmp_path / "results.json"
    args = [str(checkpoint), "--data", str(data), "--num-images", "5", "--batch-size", "2"]
    assert main(["evaluate", *args, "--out", str(out), "--no-progress"]) == 0
    results = json.loads(out.read_text())
    assert results["settings"]["num_images"] == 5
    assert results["settings"]["refine_steps"] == 1
    for name in ("fg_ari", "ari", "mse", "kl", "sc", "msc", "miou"):
        assert len(results["per_image"][name]) == 5
        assert set(results["summary"][name]) == {"mean", "std", "count"}
    assert "fg_ari" in capsys.readouterr().out


def test_evaluate_with_dci(checkpoint, data, tmp_path):
    out = tmp_path / "results.json"
    args = [str(checkpoint), "--data", str(data), "--num-images", "12", "--no-progress", "--dci"]
    assert main(["evaluate", *args, "--out", str(out)]) == 0
    dci = json.loads(out.read_text())["dci"]
    assert dci["factors"] == {
        "color": "discrete",
        "shape": "discrete",
        "x": "continuous",
        "y": "continuous",
    }
    for name in ("disentanglement", "completeness", "informativeness"):
        assert 0 <= dci[name] <= 1
    assert dci["num_pairs"] >= 4


def test_evaluate_other_steps_and_slots(checkpoint, data, tmp_path):
    out = tmp_path / "results.json"
    args = [str(checkpoint), "--data", str(data), "--num-images", "2", "--no-progress"]
    assert (
        main(["evaluate", *args, "--refine-steps", "3", "--num-slots", "6", "--out", str(out)]) == 0
    )
    assert json.loads(out.read_text())["settings"]["num_slots"] == 6


def test_evaluate_official_checkpoint_needs_a_preset(data, tmp_path, capsys):
    fixture = torch.load(FIXTURES[0], weights_only=False)
    path = tmp_path / "official.pth"
    weights = {f"module.{k}": v.float() for k, v in fixture["state_dict"].items()}
    torch.save({"step": 10, "model": weights, "kl_beta": 1.0}, path)
    args = [str(path), "--data", str(data), "--num-images", "2", "--no-progress"]
    assert main(["evaluate", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("emorl evaluate: error:") and "--preset tetrominoes" in err
    assert len(err.splitlines()) == 1
    with pytest.raises(ValueError, match="--preset tetrominoes"):
        main(["--debug", "evaluate", *args])
    assert main(["evaluate", *args, "--preset", "tetrominoes"]) == 0


def test_visualize_writes_figures(checkpoint, data, tmp_path):
    out = tmp_path / "figures"
    args = [str(checkpoint), "--data", str(data), "--out", str(out), "--num-images", "2"]
    assert main(["visualize", *args, "--num-dims", "3", "--num-samples", "4"]) == 0
    names = {p.name for p in out.iterdir()}
    expected = {"decomposition_0.png", "decomposition_1.png", "steps_0.png", "steps_1.png"}
    assert expected | {"traversal_slot0.png", "traversal_slot0.gif", "prior_samples.png"} <= names
    for name in names:
        with Image.open(out / name) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
        assert pixels.std() > 1.0, f"{name} is blank"


def test_train_then_evaluate_then_visualize(data, tmp_path):
    """The three commands chained on a checkpoint that ``emorl train`` wrote."""
    run = tmp_path / "run"
    small = ["num_slots=2", "z_dim=8", "num_layers=1", "training.curriculum=[[-1,1]]"]
    argv = ["train", "--preset", "tetrominoes", "--data", str(data), "--steps", "2"]
    argv += ["--batch-size", "2", "--out", str(run), "--device", "cpu", "--no-progress"]
    argv += ["--no-tensorboard", "--checkpoint-every", "2", "--figure-every", "0"]
    for override in small:
        argv += ["--set", override]
    assert main(argv) == 0
    checkpoint = sorted((run / "checkpoints").glob("step-*.pt"))[-1]
    out = tmp_path / "results.json"
    evaluate = ["evaluate", str(checkpoint), "--data", str(data), "--num-images", "3"]
    assert main([*evaluate, "--out", str(out), "--no-progress"]) == 0
    results = json.loads(out.read_text())
    assert results["settings"]["checkpoint_kind"] == "pyro_emorl"
    assert results["settings"]["num_slots"] == 2
    figures = tmp_path / "figures"
    visualize = ["visualize", str(checkpoint), "--data", str(data), "--out", str(figures)]
    assert main([*visualize, "--num-images", "1", "--num-dims", "2", "--num-samples", "2"]) == 0
    assert (figures / "decomposition_0.png").is_file()
