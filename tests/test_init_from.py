"""``RunOptions(init_from=...)``: a new run starts from a checkpoint's weights (the shipped model
or one of yours), keeping the initialisation of tensors the checkpoint lacks; its checkpoints
still name its own components."""

from __future__ import annotations

import pytest
import torch

import pyro_emorl as pe
from pyro_emorl import train
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
