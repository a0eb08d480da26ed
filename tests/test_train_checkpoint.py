"""Checkpoint files (atomic, weights_only-loadable, pruned) and RNG state capture."""

from __future__ import annotations

import os
import random
import stat

import numpy as np
import pytest
import torch

from pyro_emorl import train
from pyro_emorl.io.checkpoint import (
    CHECKPOINT_FORMAT,
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from pyro_emorl.train.rng import capture_rng_state, restore_rng_state
from tests.test_train_worker import tiny_config, tiny_dataset
from tests.tiny import num_threads

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


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_written_files_get_the_permissions_the_umask_gives(tmp_path, umask) -> None:
    """Checkpoints and datasets are readable as any new file would be (not mkstemp's 0600)."""
    from pyro_emorl.data import generate

    previous = os.umask(umask)
    try:
        checkpoint = save_checkpoint({"format": CHECKPOINT_FORMAT}, tmp_path / "step-1.pt")
        data = generate("tetrominoes", tmp_path / "t.h5", num_train=2, num_test=1, progress=False)
    finally:
        os.umask(previous)
    for path in (checkpoint, data):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


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
    with pytest.raises(ValueError, match="other.pt is not a pyro_emorl checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def _options(out_dir, **changes) -> train.RunOptions:
    fields = dict(
        out_dir=out_dir,
        device="cpu",
        log_every=1,
        checkpoint_every=2,
        figure_every=0,
        progress=False,
        tensorboard=False,
    )
    return train.RunOptions(**(fields | changes))


def test_resume_falls_back_over_a_damaged_newest_checkpoint(tmp_path, capsys) -> None:
    with num_threads(1):
        train.fit(tiny_config(steps=4), tiny_dataset(), _options(tmp_path))
        newest = checkpoint_path(tmp_path / "checkpoints", 4)
        newest.write_bytes(newest.read_bytes()[:3000])  # a full disk, a bad copy
        capsys.readouterr()
        result = train.fit(tiny_config(steps=6), tiny_dataset(), _options(tmp_path, resume=True))
    warning = capsys.readouterr().err.strip()
    assert warning.startswith(f"warning: checkpoint {newest} is damaged (")
    assert warning.endswith("falling back to the previous checkpoint step-00000002.pt")
    assert result.step == 6
    # The run went on from step 2: every step is logged once, and step 4 was written anew.
    assert [r["step"] for r in train.read_metrics(tmp_path / "metrics.jsonl")] == [1, 2, 3, 4, 5, 6]
    assert load_checkpoint(newest)["step"] == 4


def test_resume_without_any_readable_checkpoint_names_the_file(tmp_path) -> None:
    with num_threads(1):
        train.fit(tiny_config(steps=2), tiny_dataset(), _options(tmp_path))
        only = checkpoint_path(tmp_path / "checkpoints", 2)
        only.write_bytes(b"")
        with pytest.raises(ValueError, match=r"step-00000002.pt is damaged .* holds no older"):
            train.fit(tiny_config(steps=4), tiny_dataset(), _options(tmp_path, resume=True))
    assert only.read_bytes() == b""  # left for the user to inspect


def test_temporaries_of_killed_writes_are_removed_on_the_next_run(tmp_path, capsys) -> None:
    with num_threads(1):
        train.fit(tiny_config(steps=2), tiny_dataset(), _options(tmp_path))
    checkpoints = tmp_path / "checkpoints"
    # What SIGKILL during atomic writes leaves behind (a half-written, newer checkpoint too).
    orphans = [
        checkpoints / ".step-00000004.pt.k3_x9abq.tmp",
        tmp_path / ".metrics.jsonl.0a1b2c3d.tmp",
        tmp_path / ".config.json.zzzzzzzz.tmp",
    ]
    for path in orphans:
        path.write_bytes(b"partial")
    others = [tmp_path / ".notes.txt.abcdefgh.tmp", tmp_path / "step-00000009.pt.tmp"]
    for path in others:
        path.write_bytes(b"not ours")
    assert latest_checkpoint(checkpoints).name == "step-00000002.pt"  # never mistaken for one
    capsys.readouterr()
    with num_threads(1):
        train.fit(tiny_config(steps=4), tiny_dataset(), _options(tmp_path, resume=True))
    err = capsys.readouterr().err
    assert (
        f"warning: removed 3 temporary file(s) left by an interrupted write in {tmp_path}: " in err
    )
    assert "checkpoints/.step-00000004.pt.k3_x9abq.tmp" in err
    assert not any(path.exists() for path in orphans)
    assert all(path.read_bytes() == b"not ours" for path in others)  # other files: untouched
    assert load_checkpoint(latest_checkpoint(checkpoints))["step"] == 4


def test_temporaries_lists_only_what_atomic_path_leaves(tmp_path) -> None:
    from pyro_emorl.data.atomic import atomic_path, temporaries

    with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / "a.json") as tmp:
        assert temporaries(tmp_path) == [tmp]
        assert temporaries(tmp_path, r"b\.json") == []
        raise KeyboardInterrupt  # cleaned up by atomic_path itself
    assert temporaries(tmp_path) == []
