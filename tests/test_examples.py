"""Smoke runs of the training examples: one or two steps each, on tiny data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

import pyro_emorl as pe
from pyro_emorl import train
from pyro_emorl.data import generate

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(script: str, *args: str, cache: Path | None = None) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    if cache is not None:
        env["PYRO_EMORL_CACHE"] = str(cache)
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--device", "cpu", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _check_run(out: Path, steps: int) -> None:
    checkpoint = pe.io.latest_checkpoint(out / "checkpoints")
    assert checkpoint is not None and pe.io.load_checkpoint(checkpoint)["step"] == steps
    assert train.read_metrics(out / "metrics.jsonl")[-1]["step"] == steps
    assert (out / "figures" / f"step-{steps:08d}.png").is_file()


def test_tetrominoes_quick_generates_its_data(tmp_path) -> None:
    out = tmp_path / "run"
    stdout = _run("train_tetrominoes.py", "--quick", "--steps", "2", "--batch-size", "2",
                  "--out", str(out), cache=tmp_path / "cache")  # fmt: skip
    # Two starts of one step each; the one with the lower recorded score goes on to step 2.
    assert "negative ELBO per training image at step 1: start 0: " in stdout
    record = json.loads((out / "starts.json").read_text())
    assert f"continued start {record['best']}" in stdout
    assert record["best"] == min(record["seeds"], key=lambda s: record["scores"][str(s)])
    assert "2 steps done" in stdout
    run = out / f"start-{record['best']}"
    _check_run(run, 2)
    assert list((tmp_path / "cache").glob("tetrominoes-*.h5"))
    config = pe.io.load_checkpoint(pe.io.latest_checkpoint(run / "checkpoints"))["config"]
    assert config["init_gain"] == 1.0 and config["training"]["warmup_steps"] == 20  # fast recipe
    assert "held-out FG-ARI at step 2" in stdout


def test_multidsprites_on_a_given_file(tmp_path) -> None:
    data = generate("multi_dsprites", tmp_path / "m.h5", 2, 1, progress=False)
    out = tmp_path / "run"
    _run("train_multidsprites.py", "--data", str(data), "--steps", "1", "--batch-size", "1",
         "--out", str(out))  # fmt: skip
    _check_run(out, 1)
    config = pe.io.load_checkpoint(pe.io.latest_checkpoint(out / "checkpoints"))["config"]
    assert config["training"]["warmup_steps"] == 10_000  # the paper's recipe otherwise


def test_clevr6_crops_full_size_clevr(tmp_path) -> None:
    data = tmp_path / "clevr.h5"
    rng = np.random.default_rng(0)
    with h5py.File(data, "w") as f:  # the official file layout: full 240x320 CLEVR frames
        f.create_dataset("train/imgs", data=rng.integers(0, 256, (2, 240, 320, 3), np.uint8))
    out = tmp_path / "run"
    _run("train_clevr6.py", "--data", str(data), "--steps", "1", "--batch-size", "1",
         "--out", str(out))  # fmt: skip
    _check_run(out, 1)


def test_clevr6_needs_data() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "train_clevr6.py")], capture_output=True, text=True
    )
    assert done.returncode == 2 and "--data" in done.stderr
