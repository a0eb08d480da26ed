"""``emorl evaluate`` and ``emorl visualize`` end to end on generated data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

import pyro_emorl as pe
from pyro_emorl.cli import main
from pyro_emorl.data import encode_record, generate, get_schema
from pyro_emorl.data.interrupts import EXIT_INTERRUPTED
from pyro_emorl.data.tfrecord import write_records
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


def test_evaluate_in_bfloat16_scores_like_float32(checkpoint, data, tmp_path):
    scores = {}
    for precision in ("float32", "bfloat16"):
        out = tmp_path / f"{precision}.json"
        args = [str(checkpoint), "--data", str(data), "--num-images", "4", "--out", str(out)]
        assert main(["evaluate", *args, "--precision", precision, "--no-progress"]) == 0
        scores[precision] = json.loads(out.read_text())
    assert scores["bfloat16"]["settings"]["precision"] == "bfloat16"
    mse = [np.array(scores[p]["per_image"]["mse"]) for p in ("float32", "bfloat16")]
    assert not np.array_equal(mse[1], mse[0])  # the convolutions did run in bfloat16 ...
    np.testing.assert_allclose(mse[1], mse[0], rtol=5e-2)  # ... with 8 mantissa bits


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


def _clevr_records(path, objects):
    """CLEVR records whose ``n + 1`` visible entities own vertical stripes of the crop box."""
    schema = get_schema("clevr_with_masks")
    rng = np.random.default_rng(0)
    scenes = []
    for n in objects:
        owner = np.zeros((schema.height, schema.width), dtype=np.int64)
        # The official crop keeps columns 64-256; the stripes of 192 / 11 >= 17 pixels each
        # survive the nearest-neighbour resize to 16x16 (12 source pixels per output pixel).
        edges = np.linspace(64, 256, n + 2).astype(int)
        for entity in range(1, n + 1):
            owner[:, edges[entity] : edges[entity + 1]] = entity
        entities = np.arange(schema.num_entities)[:, None, None]
        scene = {
            "image": rng.integers(0, 256, (schema.height, schema.width, 3), dtype=np.uint8),
            "mask": (entities == owner).astype(np.uint8)[..., None] * 255,
        }
        for spec in schema.factors:
            kind = np.uint8 if spec.kind == "bytes" else np.float32
            scene[spec.name] = np.zeros(spec.shape, dtype=kind)
        scene["visibility"] = (np.arange(schema.num_entities) <= n).astype(np.float32)
        scenes.append(scene)
    return write_records(path, [encode_record(schema, s) for s in scenes])


def test_a_k7_clevr6_checkpoint_is_scored_on_clevr10_at_k11(tmp_path, capsys):
    """The paper's CLEVR10 protocol: a model trained with K = 7 on CLEVR6, evaluated at K = 11."""
    source = _clevr_records(tmp_path / "clevr.tfrecords", [3, 8, 6, 10, 2, 7, 5, 9])
    clevr6, clevr10 = tmp_path / "clevr6.h5", tmp_path / "clevr10.h5"
    convert = ["convert", "clevr_with_masks", str(source), "--resize", "16", "--no-progress"]
    assert main([*convert, "--out", str(clevr6), "--num-train", "2", "--num-test", "1"]) == 0
    tenfold = ["--min-objects", "7", "--max-objects", "10", "--num-train", "0"]
    assert main([*convert, "--out", str(clevr10), *tenfold, "--num-test", "4"]) == 0

    run = tmp_path / "run"
    train = ["train", "--preset", "clevr6", "--data", str(clevr6), "--out", str(run)]
    train += ["--steps", "1", "--batch-size", "2", "--device", "cpu", "--no-progress"]
    train += ["--no-tensorboard", "--eval-every", "0", "--figure-every", "0"]
    for override in ("image_shape=[3,16,16]", "z_dim=8", "num_layers=1", "decoder=small"):
        train += ["--set", override]
    assert main(train) == 0
    checkpoint = sorted((run / "checkpoints").glob("step-*.pt"))[-1]
    capsys.readouterr()

    evaluate = ["evaluate", str(checkpoint), "--data", str(clevr10), "--no-progress"]
    at_seven, at_eleven = tmp_path / "k7.json", tmp_path / "k11.json"
    assert main([*evaluate, "--out", str(at_seven)]) == 0
    # 8, 10, 7 and 9 objects: three images hold more objects than the trained K = 7.
    warning = capsys.readouterr().err
    assert "3 of 4 images hold more objects (up to 10)" in warning
    assert "use --num-slots 11" in warning
    assert main([*evaluate, "--num-slots", "11", "--out", str(at_eleven)]) == 0
    assert "FG-ARI is bounded" not in capsys.readouterr().err
    seven, eleven = json.loads(at_seven.read_text()), json.loads(at_eleven.read_text())
    assert seven["settings"]["num_slots"] == 7 and eleven["settings"]["num_slots"] == 11
    assert eleven["settings"]["max_objects"] == 10
    assert eleven["summary"]["fg_ari"]["count"] == 4


@pytest.fixture(scope="module")
def many_images(tmp_path_factory):
    """Enough test images for an evaluation lasting many seconds on one thread."""
    path = tmp_path_factory.mktemp("data") / "many.h5"
    return generate("tetrominoes", path, num_train=1, num_test=6000, seed=1, progress=False)


@pytest.mark.parametrize(
    "signals",
    [[signal.SIGINT], [signal.SIGTERM], [signal.SIGINT, signal.SIGINT]],
    ids=lambda signals: "+".join(s.name for s in signals),
)
def test_a_signal_stops_evaluate_at_once_and_leaves_its_output_as_it_was(
    signals, many_images, tmp_path
) -> None:
    out = tmp_path / "scores.json"
    out.write_text('{"mine": 1}\n')
    argv = ["evaluate", "tetrominoes", "--data", str(many_images), "--num-images", "6000"]
    argv += ["--refine-steps", "4", "--out", str(out), "--overwrite"]
    process = subprocess.Popen(
        [sys.executable, "-m", "pyro_emorl.cli", *argv],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        seen = b""
        while b"img/s" not in seen:  # the progress bar: the images are being scored
            chunk = process.stderr.read1(256)
            assert chunk, "evaluate ended before scoring"
            seen += chunk
        for signum in signals:  # a double Ctrl-C: the second lands during the clean-up
            process.send_signal(signum)
        start = time.monotonic()
        err = process.communicate(timeout=120)[1].decode()
    finally:
        process.kill()
    assert time.monotonic() - start < 30
    assert process.returncode == EXIT_INTERRUPTED
    last = err.replace("\r", "\n").strip().splitlines()[-1]  # after the progress bar
    assert last == (
        f"emorl evaluate: interrupted by {signals[0].name}: stopped before finishing; "
        f"{out} is as it was before"
    )
    assert sorted(tmp_path.iterdir()) == [out] and out.read_text() == '{"mine": 1}\n'
