"""An output folder belongs to one run: files a run did not write are never replaced, a second
run aimed at a folder in use is refused, and a start that failed leaves a folder that both
``--resume`` and ``--overwrite`` accept (the two messages agree)."""

from __future__ import annotations

import os
import re
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


def test_a_full_disk_while_training_ends_in_one_line_and_resumes(data, tmp_path) -> None:
    out = tmp_path / "full"
    # RLIMIT_FSIZE makes every write past 1 MB fail with EFBIG, as ENOSPC would on a full disk;
    # the first checkpoint (about 2 MB) no longer fits. SIGXFSZ ignored: the write fails.
    script = (
        "import resource, signal, sys\n"
        "from pyro_emorl.cli import main\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))\n"
        f"sys.exit(main({_argv(data, out)!r}))\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path.cwd())}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"emorl train: error: cannot write {out}/checkpoints/step-00000002.pt: the disk is full "
        "(or a quota or file size limit is reached); free some space or write to another "
        "disk. Nothing was written"
    )
    assert not list((out / "checkpoints").iterdir())  # no partial checkpoint
    with num_threads(1):  # with space again, the failed start is continued
        assert main([*_argv(data, out), "--resume"]) == 0
    assert (out / "checkpoints/step-00000002.pt").is_file()


def test_resuming_a_run_of_one_start_with_starts_says_how(data, tmp_path, capsys) -> None:
    out = tmp_path / "plain"
    with num_threads(1):
        assert main(_argv(data, out)) == 0
        before = _snapshot(out)
        capsys.readouterr()
        assert main([*_argv(data, out, steps=4), "--resume", "--starts", "2"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"emorl train: error: --resume --starts 2: {out} holds a run of one start (its "
        "checkpoints are in checkpoints/): resume it without --starts"
    )
    assert _snapshot(out) == before


def test_a_diverging_run_ends_in_one_line_from_the_command_line(data, tmp_path, capsys) -> None:
    out = tmp_path / "diverging"
    argv = [*_argv(data, out, steps=40), "--set", "training.lr=1e10"]
    with num_threads(1):
        assert main([*argv, "--set", "training.warmup_steps=0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    # Checked when the step's record is logged: at least 20 (the default limit) in a row.
    assert re.fullmatch(
        r"emorl train: error: (\d+) consecutive steps up to step 40 had a non-finite loss or "
        r"gradient; stopping \(the last checkpoint is intact\)\. Lower the learning rate or "
        r"check the data",
        err,
    )
