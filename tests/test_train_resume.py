"""Exact resume: a run killed at any moment and resumed from its last checkpoint ends with the same
parameters, GECO state, optimizer state and logged losses as a run that was never interrupted."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import pyro_emorl as pe
from pyro_emorl import train

WORKER = Path(__file__).with_name("test_train_worker.py")
STEPS = 40
# The 20-kill run: a resumed child re-trains from its last checkpoint and must log something new
# before it is killed, so 20 kills took 54 steps in a trial; 120 leave room for all of them.
LONG_STEPS = 120
LOGGED = ("loss", "nll", "kl", "grad_norm", "geco_beta", "geco_C_ema", "lr", "refinement_steps")


def _command(out_dir: Path, *extra: str, steps: int = STEPS) -> list[str]:
    return [sys.executable, str(WORKER), str(out_dir), "--steps", str(steps), *extra]


def _environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}


def _wait_for_checkpoint(process: subprocess.Popen, out_dir: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while pe.io.latest_checkpoint(out_dir / "checkpoints") is None:
        assert process.poll() is None, "the run ended before writing a checkpoint"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)


def _final_checkpoint(out_dir: Path, steps: int = STEPS) -> dict:
    path = pe.io.latest_checkpoint(out_dir / "checkpoints")
    assert path is not None and path.name == f"step-{steps:08d}.pt"
    return pe.io.load_checkpoint(path)


def _logged(out_dir: Path) -> list[dict]:
    records = train.read_metrics(out_dir / "metrics.jsonl")
    return [{k: r[k] for k in ("step", *LOGGED)} for r in records]


def _assert_same_state(a: dict, b: dict) -> None:
    for part in ("model", "guide", "geco"):
        assert a[part].keys() == b[part].keys()
        for name in a[part]:
            assert torch.equal(a[part][name], b[part][name]), f"{part}.{name} differs"
    for index, state in a["optimizer"]["state"].items():
        for key, value in state.items():
            assert torch.equal(value, b["optimizer"]["state"][index][key]), f"Adam {key} differs"
    assert a["scheduler"] == b["scheduler"]


@pytest.fixture(scope="module")
def uninterrupted_run(tmp_path_factory: pytest.TempPathFactory) -> Callable[[int], Path]:
    """The directory of a run of so many steps that was never interrupted (made once each)."""
    runs: dict[int, Path] = {}

    def run(steps: int) -> Path:
        if steps not in runs:
            out_dir = tmp_path_factory.mktemp(f"uninterrupted-{steps}")
            command = _command(out_dir, steps=steps)
            subprocess.run(command, check=True, env=_environment(), timeout=600)
            runs[steps] = out_dir
        return runs[steps]

    return run


@pytest.fixture(scope="module")
def uninterrupted(uninterrupted_run: Callable[[int], Path]) -> Path:
    return uninterrupted_run(STEPS)


def test_resume_after_sigkill_matches_uninterrupted(uninterrupted: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "killed"
    process = subprocess.Popen(_command(out_dir), env=_environment())
    try:
        _wait_for_checkpoint(process, out_dir)
        time.sleep(random.Random(os.getpid()).uniform(0.0, 0.5))  # "any moment" after that
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=60) == -signal.SIGKILL, "the run finished before the kill"
    finally:
        process.kill()
    killed_at = int(pe.io.latest_checkpoint(out_dir / "checkpoints").stem.split("-")[1])
    assert 0 < killed_at < STEPS

    subprocess.run(_command(out_dir, "--resume"), check=True, env=_environment(), timeout=300)

    _assert_same_state(_final_checkpoint(uninterrupted), _final_checkpoint(out_dir))
    assert _logged(out_dir) == _logged(uninterrupted)


def test_sigterm_writes_a_checkpoint_and_resume_matches(
    uninterrupted: Path, tmp_path: Path
) -> None:
    out_dir = tmp_path / "terminated"
    # Checkpoints only at the end, so the one found afterwards comes from the signal.
    process = subprocess.Popen(_command(out_dir, "--checkpoint-every", "1000"), env=_environment())
    try:
        deadline = time.monotonic() + 120
        metrics = out_dir / "metrics.jsonl"
        while not (metrics.is_file() and len(train.read_metrics(metrics)) >= 2):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 130
    finally:
        process.kill()
    stopped = pe.io.latest_checkpoint(out_dir / "checkpoints")
    assert stopped is not None
    assert 4 <= pe.io.load_checkpoint(stopped)["step"] < STEPS

    resume = _command(out_dir, "--resume", "--checkpoint-every", "1000")
    subprocess.run(resume, check=True, env=_environment(), timeout=300)
    _assert_same_state(_final_checkpoint(uninterrupted), _final_checkpoint(out_dir))
    assert _logged(out_dir) == _logged(uninterrupted)


@pytest.mark.parametrize(
    ("moments", "steps", "least_kills"),
    [
        pytest.param(6, STEPS, 4, id="6 moments"),
        pytest.param(20, LONG_STEPS, 20, id="20 moments", marks=pytest.mark.slow),
    ],
)
def test_killed_at_random_moments_then_resumed_ends_like_one_run(
    uninterrupted_run: Callable[[int], Path],
    tmp_path: Path,
    moments: int,
    steps: int,
    least_kills: int,
) -> None:
    """SIGKILL at several random moments (in a step, a log write, a checkpoint write, a prune),
    resuming after each: every checkpoint file left is complete, the log never holds a step
    twice, no temporary file survives, and the end matches the uninterrupted run exactly.

    The worker forks a child per run and kills it (one start-up of Python for all of them) at
    moments drawn with a fixed seed, after the child has logged something new.
    """
    out_dir = tmp_path / "killed"
    kill = ["--kill-at-random-moments", str(moments), "--moments-seed", "20240607"]
    command = _command(out_dir, *kill, "--keep-checkpoints", "2", steps=steps)
    done = subprocess.run(
        command, check=True, env=_environment(), timeout=600, stdout=subprocess.PIPE, text=True
    )
    kills = json.loads(done.stdout.strip().splitlines()[-1])["kills"]
    assert kills >= least_kills, f"only {kills} kills landed before the run ended"

    logged = [record["step"] for record in train.read_metrics(out_dir / "metrics.jsonl")]
    assert logged == sorted(set(logged)), "a step is logged twice"
    assert sorted(p.name for p in out_dir.rglob("*.tmp")) == []
    assert len(pe.io.list_checkpoints(out_dir / "checkpoints")) == 2
    uninterrupted = uninterrupted_run(steps)
    _assert_same_state(_final_checkpoint(uninterrupted, steps), _final_checkpoint(out_dir, steps))
    assert _logged(out_dir) == _logged(uninterrupted)
