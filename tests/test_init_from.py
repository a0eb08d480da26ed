"""``RunOptions(init_from=...)``: a new run starts from a checkpoint's weights (the shipped model
or one of yours), keeping the initialisation of tensors the checkpoint lacks; its checkpoints
still name its own components."""

from __future__ import annotations

import pytest
import torch

import pyro_emorl as pe
from pyro_emorl import train
from pyro_emorl.cli import main
from pyro_emorl.data import generate
from tests.test_train_worker import tiny_config, tiny_dataset


def _options(out_dir, **changes) -> train.RunOptions:
    fields = dict(out_dir=out_dir, device="cpu", progress=False, tensorboard=False)
    fields.update(figure_every=0, log_every=1, checkpoint_every=1)
    return train.RunOptions(**(fields | changes))


def test_a_run_starts_from_another_runs_weights(tmp_path, capsys) -> None:
    first = train.fit(tiny_config(steps=2), tiny_dataset(), _options(tmp_path / "first"))
    start = pe.io.load_checkpoint(first.checkpoint)
    # A run of zero optimiser effect would prove nothing: compare the programs before training.
    second = train.fit(
        tiny_config(steps=1).replace(training={"lr": 1e-12, "warmup_steps": 0}),
        tiny_dataset(),
        _options(tmp_path / "second", init_from=first.checkpoint),
    )
    assert "started from the weights of" in capsys.readouterr().err
    for key in ("model", "guide"):
        after = pe.io.load_checkpoint(second.checkpoint)[key]
        for name, value in start[key].items():
            torch.testing.assert_close(after[name], value, rtol=1e-6, atol=1e-9, msg=name)
    assert pe.io.load_checkpoint(second.checkpoint)["components"]["prior"]["name"] == "reversed++"


def test_weights_of_another_model_are_refused(tmp_path) -> None:
    first = train.fit(tiny_config(steps=1), tiny_dataset(), _options(tmp_path / "first"))
    wider = tiny_config(steps=1).replace(z_dim=tiny_config().z_dim + 1)
    with pytest.raises(ValueError, match="init_from .*size mismatch|init_from .*shape"):
        train.fit(wider, tiny_dataset(), _options(tmp_path / "wider", init_from=first.checkpoint))
    with pytest.raises(FileNotFoundError, match="init_from: no checkpoint"):
        train.fit(tiny_config(steps=1), tiny_dataset(), _options(tmp_path / "x", init_from="no.pt"))


def test_the_command_line_fine_tunes_the_shipped_model_with_another_likelihood(tmp_path) -> None:
    """`emorl train --init-from tetrominoes --set likelihood=mixture`: the run starts from the
    shipped weights (its first held-out score is the shipped model's, far above a fresh
    initialisation's) and records the likelihood it was asked for."""
    data = generate("tetrominoes", tmp_path / "d.h5", 8, 8, progress=False)
    out = tmp_path / "fine"
    argv = ["train", "--preset", "tetrominoes_fast", "--data", str(data), "--eval-data", str(data)]
    argv += ["--out", str(out), "--steps", "1", "--batch-size", "4", "--eval-every", "0"]
    argv += ["--figure-every", "0", "--no-progress", "--no-tensorboard"]
    argv += ["--set", "likelihood=mixture", "--set", "training.lr=1e-12"]
    assert main([*argv, "--init-from", "tetrominoes"]) == 0
    records = train.read_metrics(out / "metrics.jsonl")
    scores = [r["test/fg_ari"] for r in records if "test/fg_ari" in r]
    assert scores[0] > 0.8  # the shipped model scores about 0.97; an initialisation about 0.05
    assert (
        pe.io.load_checkpoint(out / "checkpoints" / "step-00000001.pt")["components"]["likelihood"][
            "name"
        ]
        == "mixture"
    )
