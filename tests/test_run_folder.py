"""An output folder belongs to one run: files a run did not write are never replaced, a second
run aimed at a folder in use is refused, and a start that failed leaves a folder that both
``--resume`` and ``--overwrite`` accept (the two messages agree)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pyro_emorl.cli import main
from pyro_emorl.data import generate
from pyro_emorl.io.run_folder import RUN_MARKER
from tests.tiny import num_threads

SMALL = ["num_slots=2", "z_dim=8", "num_layers=1", "training.curriculum=[[-1,1]]"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate("tetrominoes", tmp_path_factory.mktemp("data") / "t.h5", 8, 2, progress=False)


def _argv(data: Path, out: Path, steps: int = 2) -> list[str]:
    argv = ["train", "--preset", "tetrominoes", "--data", str(data), "--batch-size", "2"]
    argv += ["--out", str(out), "--device", "cpu", "--steps", str(steps), "--no-progress"]
    argv += ["--no-tensorboard", "--figure-every", "0"]
    for override in SMALL:
        argv += ["--set", override]
    return argv


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_users_config_json_is_never_replaced(data, tmp_path, capsys) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.json").write_text('{"my": "settings"}\n')
    (out / "notes.txt").write_text("keep me\n")
    before = _snapshot(out)
    with num_threads(1):
        assert main(_argv(data, out)) == 2
        assert main([*_argv(data, out), "--overwrite"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2
    assert "holds files that no training run wrote (notes.txt)" in lines[0]
    assert "config.json, which a run would replace, but no run.json" in lines[1]
    assert _snapshot(out) == before


def test_overwrite_writes_beside_foreign_files(data, tmp_path, capsys) -> None:
    out = tmp_path / "beside"
    out.mkdir()
    (out / "notes.txt").write_text("keep me\n")
    with num_threads(1):
        assert main(_argv(data, out)) == 2
        assert "pass --overwrite" in capsys.readouterr().err
        assert main([*_argv(data, out), "--overwrite"]) == 0
    assert (out / "notes.txt").read_text() == "keep me\n"
    assert (out / RUN_MARKER).is_file() and (out / "checkpoints/step-00000002.pt").is_file()


def test_a_start_that_failed_is_resumed_or_overwritten(data, tmp_path, capsys) -> None:
    out = tmp_path / "failed"
    bad_eval = tmp_path / "bad_eval.h5"
    generate("multi_dsprites", bad_eval, 2, 2, progress=False)  # 64x64: the wrong size
    with num_threads(1):
        # Fails at the first held-out evaluation, before any checkpoint.
        assert main([*_argv(data, out), "--eval-data", str(bad_eval)]) == 2
        assert (out / RUN_MARKER).is_file() and not (out / "checkpoints").exists()
        capsys.readouterr()
        assert main(_argv(data, out)) == 2
        message = capsys.readouterr().err
        assert "stopped before its first checkpoint" in message and "--resume" in message
        assert main([*_argv(data, out), "--resume"]) == 0
    assert (out / "checkpoints/step-00000002.pt").is_file()

    again = tmp_path / "again"
    with num_threads(1):
        assert main([*_argv(data, again), "--eval-data", str(bad_eval)]) == 2
        assert main([*_argv(data, again), "--overwrite"]) == 0
    assert (again / "checkpoints/step-00000002.pt").is_file()


def test_two_runs_aimed_at_one_folder_one_is_refused(data, tmp_path) -> None:
    out = tmp_path / "shared"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path.cwd())}
    command = [sys.executable, "-m", "pyro_emorl.cli", *_argv(data, out, steps=400)]
    log = tmp_path / "first.log"
    with log.open("w") as stderr:
        first = subprocess.Popen(command, env=env, stderr=stderr)
    try:
        deadline = time.monotonic() + 120
        while not (out / RUN_MARKER).is_file():  # the first holds the folder
            assert first.poll() is None, log.read_text()
            assert time.monotonic() < deadline
            time.sleep(0.2)
        second = subprocess.run(
            [sys.executable, "-m", "pyro_emorl.cli", *_argv(data, out, steps=2)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        first.terminate()  # SIGTERM: the first writes a checkpoint and stops
        first.wait(timeout=120)
    assert second.returncode == 2
    assert len(second.stderr.strip().splitlines()) == 1, second.stderr
    assert "is being written by process" in second.stderr
    assert first.returncode == 130
    steps = [int(p.stem.split("-")[1]) for p in (out / "checkpoints").glob("step-*.pt")]
    assert steps and all(0 < s < 400 for s in steps)  # only the first run's checkpoints


def test_visualize_never_replaces_a_figure(tmp_path, capsys) -> None:
    data = generate("tetrominoes", tmp_path / "t.h5", 2, 2, progress=False)
    out = tmp_path / "figures"
    out.mkdir()
    (out / "decomposition_0.png").write_bytes(b"my figure")
    argv = ["visualize", "tetrominoes", "--data", str(data), "--out", str(out)]
    argv += ["--num-images", "1", "--num-dims", "1", "--num-samples", "1"]
    with num_threads(1):
        assert main(argv) == 2
        assert "already holds decomposition_0.png: pass --overwrite" in capsys.readouterr().err
        assert (out / "decomposition_0.png").read_bytes() == b"my figure"
        assert sorted(p.name for p in out.iterdir()) == ["decomposition_0.png"]
        assert main([*argv, "--overwrite"]) == 0
    assert (out / "decomposition_0.png").read_bytes()[:4] == b"\x89PNG"
