"""``emorl train``: argument parsing, configuration overrides, and a few steps on tiny data."""

from __future__ import annotations

import argparse
import json

import pytest

import pyro_emorl as pe
from pyro_emorl import train
from pyro_emorl.data import generate
from pyro_emorl.train import cli
from tests.tiny import num_threads

# A reduced Tetrominoes model so a step takes tens of milliseconds.
SMALL = ["num_slots=2", "z_dim=8", "num_layers=1", "training.curriculum=[[-1,1]]"]


def _parse(argv: list[str]) -> argparse.Namespace:
    """What ``emorl train ...`` parses to, once ``cli.register`` is wired into ``emorl``."""
    parser = argparse.ArgumentParser(prog="emorl")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def tetrominoes_file(tmp_path_factory: pytest.TempPathFactory):
    return generate("tetrominoes", tmp_path_factory.mktemp("data") / "t.h5", 8, 2, progress=False)


def test_resolve_config_applies_overrides() -> None:
    config = cli.resolve_config(
        "tetrominoes",
        [
            "num_slots=5",
            "decoder=iodine",
            "training.lr=2e-4",
            "training.curriculum=[[-1,3],[10,1]]",
            "geco.warm_start=7",
            "image_shape=[3,35,35]",
        ],
        steps=12,
        batch_size=None,
    )
    assert config.num_slots == 5 and config.decoder == "iodine"
    assert config.training.lr == 2e-4 and config.training.curriculum == ((-1, 3), (10, 1))
    assert config.training.steps == 12 and config.training.batch_size == 32
    assert config.geco.warm_start == 7 and config.geco.target_per_element == -1.224
    assert config == config.from_dict(config.to_dict())


def test_resolve_config_switches_geco() -> None:
    assert cli.resolve_config("tetrominoes", ["geco=null"]).geco is None
    geco = cli.resolve_config("multi_dsprites", ['geco={"target_per_element": -2.0}']).geco
    assert geco == pe.GECOConfig(target_per_element=-2.0)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("num_slot=3", "unknown configuration field 'num_slot'"),
        ("training.rate=1", "unknown configuration field 'training.rate'"),
        ("geco.warm_start=5", "the preset has no GECO"),
        ("novalue", "KEY=VALUE"),
        ("decoder=huge", "no decoder named 'huge' is registered"),
        ('geco={"target": 1}', r"unknown geco field\(s\) \['target'\]"),
        ("training=5", "training must be a TrainingConfig, got 5"),
        ("training=[1]", "training must be a TrainingConfig"),
        ("prior_options.scale=2", r"the prior 'reversed\+\+' has no option\(s\) \['scale'\]"),
    ],
)
def test_resolve_config_rejects_bad_overrides(override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cli.resolve_config("multi_dsprites", [override])


def test_a_training_field_given_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="--steps and --set training.steps both set"):
        cli.resolve_config("tetrominoes", ["training.steps=50"], steps=2, batch_size=None)


def test_parser_defaults() -> None:
    args = _parse(["train", "--preset", "clevr6", "--data", "x.h5"])
    assert args.func is cli.run
    assert (args.steps, args.batch_size, args.out, args.seed, args.resume) == (
        None,
        None,
        None,
        0,
        False,
    )
    # Presets are looked up after --import has registered a user's: an unknown one is a
    # one-line error of the command (test_user_components), not of the parser.
    with pytest.raises(SystemExit):
        _parse(["train", "--preset", "tetrominoes", "--steps", "0"])


def _small_run(data, out, seed: int) -> list[str]:
    """``emorl train`` of the reduced Tetrominoes model on ``data``, batch 2, quiet."""
    argv = ["train", "--preset", "tetrominoes", "--data", str(data), "--batch-size", "2"]
    argv += ["--out", str(out), "--device", "cpu", "--seed", str(seed)]
    argv += ["--no-progress", "--no-tensorboard"]
    for override in SMALL:
        argv += ["--set", override]
    return argv


def test_emorl_train_runs_and_resumes(tetrominoes_file, tmp_path) -> None:
    out = tmp_path / "run"
    argv = _small_run(tetrominoes_file, out, seed=3)
    argv += ["--log-every", "1", "--checkpoint-every", "2", "--figure-every", "2"]
    with num_threads(1):
        assert cli.run(_parse([*argv, "--steps", "2"])) == 0
        assert cli.run(_parse([*argv, "--steps", "3", "--resume"])) == 0
    assert [r["step"] for r in train.read_metrics(out / "metrics.jsonl")] == [1, 2, 3]
    checkpoint = pe.io.load_checkpoint(pe.io.latest_checkpoint(out / "checkpoints"))
    assert checkpoint["step"] == 3 and checkpoint["data"]["seed"] == 3
    assert checkpoint["config"]["num_slots"] == 2
    assert (out / "figures" / "step-00000002.png").is_file()


def test_emorl_train_with_starts_continues_the_best_and_resumes(
    tetrominoes_file, tmp_path, capsys
) -> None:
    from pyro_emorl.cli import main

    out = tmp_path / "run"
    argv = _small_run(tetrominoes_file, out, seed=1)
    argv += ["--starts", "2", "--select-at", "2", "--figure-every", "0"]
    with num_threads(1):
        assert main([*argv, "--steps", "3"]) == 0
        assert main([*argv, "--steps", "4", "--resume"]) == 0
        # A selection step past the run's end is refused before any work.
        assert main([*argv, "--steps", "4", "--select-at", "5", "--out", str(tmp_path / "x")]) == 2
    assert "select_at must be between 1 and the run's 4 steps, got 5" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    record = json.loads((out / "starts.json").read_text())
    assert record["seeds"] == [2, 3] and record["best"] in (2, 3)
    steps = {
        s: pe.io.load_checkpoint(pe.io.latest_checkpoint(out / f"start-{s}/checkpoints"))["step"]
        for s in (2, 3)
    }
    assert steps == {record["best"]: 4, 5 - record["best"]: 2}


def test_clevr_without_data_is_a_clear_error() -> None:
    config = pe.presets.clevr6()
    with pytest.raises(ValueError, match="no generator for 'clevr6'"):
        train.training_dataset("clevr6", config)


def test_data_of_the_wrong_size_is_a_clear_error(tetrominoes_file) -> None:
    with pytest.raises(ValueError, match="35x35 images but the configuration expects 64x64"):
        train.training_dataset("multi_dsprites", pe.presets.multi_dsprites(), tetrominoes_file)


def test_the_slot_attention_baseline_trains_and_evaluates_from_the_cli(
    tetrominoes_file, tmp_path, capsys
) -> None:
    from pyro_emorl.cli import main

    out = tmp_path / "sa"
    argv = ["train", "--model", "slot_attention", "--preset", "tetrominoes"]
    argv += ["--data", str(tetrominoes_file), "--steps", "2", "--batch-size", "2"]
    argv += ["--out", str(out), "--device", "cpu", "--no-progress", "--no-tensorboard"]
    argv += ["--set", "num_slots=2", "--eval-every", "0", "--figure-every", "0"]
    with num_threads(1):
        assert main(argv) == 0
        checkpoint = pe.io.latest_checkpoint(out / "checkpoints")
        assert pe.io.load_checkpoint(checkpoint)["config"]["model"] == "slot_attention"
        scores = tmp_path / "scores.json"
        evaluate = ["evaluate", str(checkpoint), "--data", str(tetrominoes_file)]
        assert main([*evaluate, "--out", str(scores), "--no-progress"]) == 0
    assert scores.is_file()
    assert main([*argv[:4], "tetrominoes_fast", *argv[5:]]) == 2
    assert "--model slot_attention has no preset for 'tetrominoes_fast'" in capsys.readouterr().err
