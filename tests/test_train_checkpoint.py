"""Checkpoint files (atomic, weights_only-loadable, pruned) and RNG state capture."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from pyro_emorl.train.checkpoint import (
    CHECKPOINT_FORMAT,
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from pyro_emorl.train.rng import capture_rng_state, restore_rng_state

CPU = torch.device("cpu")


def _draws() -> tuple:
    return random.random(), random.gauss(0, 1), np.random.rand(), torch.rand(3)


def test_rng_state_round_trip_continues_every_generator() -> None:
    random.gauss(0, 1)  # leaves a cached Gaussian in Python's state
    np.random.randn()  # and one in NumPy's
    state = capture_rng_state(CPU)
    expected = _draws()
    _draws()
    restore_rng_state(state, CPU)
    actual = _draws()
    assert actual[:3] == expected[:3]
    assert torch.equal(actual[3], expected[3])


def test_checkpoint_round_trip_with_weights_only(tmp_path) -> None:
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), fused=True)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "step": 7,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": [capture_rng_state(CPU)],
        "config": {"image_shape": (3, 4, 4), "geco": None},
    }
    path = save_checkpoint(checkpoint, checkpoint_path(tmp_path / "ckpt", 7))
    assert path.name == "step-00000007.pt"
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == [path.name]  # no temporary left
    loaded = torch.load(path, weights_only=True)
    assert loaded["step"] == 7 and loaded["config"]["image_shape"] == (3, 4, 4)
    assert torch.equal(loaded["model"]["weight"], model.weight)
    restore_rng_state(loaded["rng"][0], CPU)


def test_failed_write_leaves_the_previous_checkpoint(tmp_path) -> None:
    path = tmp_path / "step-00000001.pt"
    save_checkpoint({"format": CHECKPOINT_FORMAT, "step": 1}, path)
    with pytest.raises((AttributeError, TypeError, RuntimeError)):  # a lambda does not pickle
        save_checkpoint({"format": CHECKPOINT_FORMAT, "bad": lambda: None}, path)
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_latest_list_and_prune(tmp_path) -> None:
    assert latest_checkpoint(tmp_path / "missing") is None
    for step in (10, 2, 300):
        checkpoint = {"format": CHECKPOINT_FORMAT, "step": step}
        save_checkpoint(checkpoint, checkpoint_path(tmp_path, step))
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "step-00000002.pt",
        "step-00000010.pt",
        "step-00000300.pt",
    ]
    assert latest_checkpoint(tmp_path).name == "step-00000300.pt"
    deleted = prune_checkpoints(tmp_path, keep=2)
    assert [p.name for p in deleted] == ["step-00000002.pt"]
    assert len(list_checkpoints(tmp_path)) == 2


def test_load_rejects_other_files(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "none.pt")
    torch.save({"step": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a pyro_emorl training checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
