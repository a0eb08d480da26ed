"""`emorl generate` / `emorl convert` under misuse and accidents: a second writer of the same
output, signals, a full disk, huge counts, corrupt inputs and bad output paths.

Every probe asserts the exact one-line message (no traceback), the exit status, and that every
file that existed before is byte for byte as it was, with no temporary or lock file left. The
probes that can crash, hang or need signals run the command in a child process.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from pyro_emorl.cli import main
from pyro_emorl.data import (
    DataFormatError,
    HDF5Dataset,
    encode_record,
    generate,
    get_schema,
    write_records,
)
from pyro_emorl.data.atomic import (
    OutputBusyError,
    lock_path,
    output_lock,
    remove_stale_temporaries,
    temporaries,
)
from pyro_emorl.data.interrupts import EXIT_INTERRUPTED
from pyro_emorl.metrics import ari

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
EMORL = [sys.executable, "-m", "pyro_emorl.cli"]
# Long enough to be caught mid-write (several seconds on a loaded core), short enough to be
# waited for.
LONG = ["--num-train", "20000", "--num-test", "10", "--no-progress"]


def _files(directory: Path) -> dict[str, bytes]:
    """Every file in ``directory`` (not recursive), by name."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def _one_line(err: str) -> str:
    """The single line of ``err``; fails on more (a traceback, a second message)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def _records(path: Path, count: int, repeat: int = 1) -> Path:
    """A GZIP TFRecord file of ``count`` Tetrominoes scenes (generated, then encoded), written
    ``repeat`` times over."""
    scenes = generate("tetrominoes", path.with_suffix(".h5"), count, 0, seed=7, progress=False)
    schema = get_schema("tetrominoes")
    with h5py.File(scenes, "r") as f:
        group = f["train"]
        arrays = {"image": group["imgs"][:], "mask": group["masks"][:]}
        arrays |= {name: group["factors"][name][:] for name in group["factors"]}
    scenes.unlink()
    rows = [encode_record(schema, {k: v[i] for k, v in arrays.items()}) for i in range(count)]
    return write_records(path, rows * repeat)


def _wait_for_temporary(process: subprocess.Popen, out: Path, timeout: float = 120) -> Path:
    """The temporary file of ``process``'s write of ``out``, once it exists."""
    deadline = time.monotonic() + timeout
    while True:
        found = temporaries(out.parent, re.escape(out.name))
        if found:
            return found[0]
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the write never started"
        time.sleep(0.005)


# --- two writers of one output -------------------------------------------------------------


def test_a_second_generate_of_an_output_being_written_is_refused_and_the_first_completes(
    tmp_path: Path,
) -> None:
    out = tmp_path / "g.h5"
    first = subprocess.Popen(
        [*EMORL, "generate", "tetrominoes", "--out", str(out), "--seed", "1", *LONG],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        live = _wait_for_temporary(first, out)
        # Frozen mid-write, so that the second command surely meets a write under way (the
        # old code deleted `live` as "left by an interrupted write" here).
        first.send_signal(signal.SIGSTOP)
        second = subprocess.run(
            [*EMORL, "generate", "tetrominoes", "--out", str(out), "--overwrite", *LONG],
            env=ENV,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 2
        assert _one_line(second.stderr) == (
            f"emorl generate: error: --out {out} is being written by process {first.pid} "
            f"(lock .g.h5.lock): wait for it to finish, or choose another file"
        )
        assert live.exists()
        first.send_signal(signal.SIGCONT)
        _, err = first.communicate(timeout=300)
    finally:
        first.kill()
    assert first.returncode == 0, err
    with h5py.File(out, "r") as f:  # the first command's file, complete
        assert f.attrs["seed"] == 1 and f["train/imgs"].shape[0] == 20000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.h5"]


def test_two_generates_started_at_once_one_writes_the_other_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "g.h5"
    processes = [
        subprocess.Popen(
            [*EMORL, "generate", "tetrominoes", "--out", str(out), "--seed", str(seed), *LONG],
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    results = [p.communicate(timeout=300) for p in processes]
    codes = [p.returncode for p in processes]
    assert sorted(codes) == [0, 2], results
    winner, loser = codes.index(0), codes.index(2)
    line = _one_line(results[loser][1])
    # Refused by the lock while the winner writes, or, had it started after the winner's end,
    # by the existing file; never a second write.
    busy = f"emorl generate: error: --out {out} is being written by process {processes[winner].pid}"
    exists = f"emorl generate: error: --out {out} exists: pass --overwrite"
    assert line.startswith((busy, exists)), line
    with h5py.File(out, "r") as f:
        assert f.attrs["seed"] == winner + 1 and f["train/imgs"].shape[0] == 20000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.h5"]


def test_the_lock_refuses_another_holder_and_is_gone_after_release(tmp_path: Path) -> None:
    out = tmp_path / "o.h5"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom pyro_emorl.data.atomic import output_lock\n"
            f"with output_lock({str(out)!r}):\n    print('held', flush=True)\n    time.sleep(60)",
        ],
        env=ENV,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputBusyError, match=f"by process {holder.pid} "), output_lock(out):
            pass
    finally:
        holder.kill()
        holder.communicate()
    # A killed holder releases the lock (the kernel drops it), and a release removes the file.
    with output_lock(out):
        with output_lock(out):  # re-entrant within one thread
            assert lock_path(out).is_file()
    assert not lock_path(out).exists()


def test_only_temporaries_of_dead_owners_are_removed(tmp_path: Path) -> None:
    out = tmp_path / "g.h5"
    alive = subprocess.Popen(["sleep", "60"])
    dead = subprocess.Popen(["true"])
    dead.wait()
    try:
        names = {
            "live": f".g.h5.pid{alive.pid}.abcdefgh.tmp",
            "dead": f".g.h5.pid{dead.pid}.abcdefgh.tmp",
            "legacy": ".g.h5.abcdefgh.tmp",  # written before owners were recorded
            "other": f".h.h5.pid{dead.pid}.abcdefgh.tmp",  # another output's
        }
        for name in names.values():
            (tmp_path / name).write_bytes(b"partial")
        removed = remove_stale_temporaries(out)
    finally:
        alive.kill()
        alive.wait()
    assert sorted(p.name for p in removed) == sorted([names["dead"], names["legacy"]])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([names["live"], names["other"]])


# --- signals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "signals"),
    [
        ("generate", [signal.SIGINT]),
        ("generate", [signal.SIGTERM]),
        ("generate", [signal.SIGINT, signal.SIGINT]),
        ("convert", [signal.SIGINT]),
        ("convert", [signal.SIGTERM]),
        ("convert", [signal.SIGINT, signal.SIGINT]),
    ],
    ids=lambda x: "+".join(s.name for s in x) if isinstance(x, list) else x,
)
def test_a_signal_stops_the_command_at_once_and_leaves_everything_as_it_was(
    command: str, signals: list[signal.Signals], tmp_path: Path, big_records: Path
) -> None:
    out = tmp_path / "out.h5"
    generate("tetrominoes", out, 3, 1, seed=5, progress=False)  # replaced only by a finished run
    if command == "generate":
        argv = ["generate", "tetrominoes", *LONG]
    else:
        argv = ["convert", "tetrominoes", str(big_records), "--num-train", "5000", "--no-progress"]
    before = _files(tmp_path)
    process = subprocess.Popen(
        [*EMORL, *argv, "--out", str(out), "--overwrite"],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_temporary(process, out)
        for signum in signals:  # a double Ctrl-C: the second lands during the clean-up
            process.send_signal(signum)
        start = time.monotonic()
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert time.monotonic() - start < 30
    assert process.returncode == EXIT_INTERRUPTED
    assert _one_line(err) == (
        f"emorl {command}: interrupted by {signals[0].name}: stopped before finishing; no "
        f"partial file is left ({out} is as it was before)"
    )
    assert _files(tmp_path) == before


def test_a_sigint_during_a_finalizer_still_stops_generate(tmp_path: Path) -> None:
    # Python only reports ("Exception ignored") a KeyboardInterrupt raised in a __del__ and
    # goes on: the command used to finish and exit 0 when the SIGINT arrived in a finalizer.
    out = tmp_path / "g.h5"
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        from pyro_emorl.cli import main
        from pyro_emorl.data import tetrominoes

        real = tetrominoes.sample
        calls = []

        class Finalizer:
            def __del__(self):
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(10**5):  # the signal's handler runs here, inside __del__
                    pass

        def sample(rng, n):
            calls.append(n)
            if len(calls) == 1:
                Finalizer()
            return real(rng, n)

        tetrominoes.sample = sample
        sys.exit(main(["generate", "tetrominoes", "--out", {str(out)!r}, "--num-train", "3000",
                       "--no-progress"]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=ENV, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == EXIT_INTERRUPTED, done.stderr
    assert _one_line(done.stderr) == (
        f"emorl generate: interrupted by SIGINT: stopped before finishing; no partial file is "
        f"left ({out} is as it was before)"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def big_records(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6000 Tetrominoes records (600 scenes ten times): some seconds of conversion, and more
    than the disk-full limit below once converted."""
    return _records(tmp_path_factory.mktemp("records") / "big.tfrecords", 600, repeat=10)


@pytest.fixture(scope="module")
def records12(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _records(tmp_path_factory.mktemp("records") / "r12.tfrecords", 12)


# --- a full disk -----------------------------------------------------------------------------

# RLIMIT_FSIZE makes every write past LIMIT bytes fail with EFBIG, as ENOSPC would on a full
# disk; SIGXFSZ is ignored so that the write fails instead of killing the process.
LIMIT = 200_000


def test_a_full_disk_ends_in_one_line_and_never_a_crash(tmp_path: Path, big_records: Path) -> None:
    old = tmp_path / "old.h5"
    generate("tetrominoes", old, 5, 2, seed=11, progress=False)
    records = tmp_path / "in.tfrecords"
    shutil.copyfile(big_records, records)
    # Sizes around the limit: some fail while writing images, some only when the file is
    # closed (its last metadata), some fit; the old code crashed (exit -11) after the first.
    script = textwrap.dedent(
        f"""
        import contextlib, io, json, resource, shutil, signal, sys
        from pyro_emorl.cli import main

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, ({LIMIT}, {LIMIT}))
        results = []
        runs = [("generate", n) for n in [*range(300, 340, 2), 3000]] + [("convert", 500)]
        for command, n in runs:
            out = "{tmp_path}/out-%s-%d.h5" % (command, n)
            shutil.copyfile("{old}", out)
            if command == "generate":
                argv = ["generate", "tetrominoes", "--num-train", str(n), "--num-test", "10"]
            else:
                argv = ["convert", "tetrominoes", "{records}", "--num-train", str(n),
                        "--num-test", "50"]
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = main([*argv, "--out", out, "--overwrite", "--no-progress"])
            results.append([command, n, out, code, err.getvalue()])
        print(json.dumps(results))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=ENV, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]  # no segmentation fault at exit
    results = json.loads(done.stdout)
    old_bytes = old.read_bytes()
    outcomes = set()
    for command, n, out, code, err in results:
        if code == 0:
            assert len(HDF5Dataset(out)) == n and err == ""
            outcomes.add("written")
            continue
        assert code == 2
        assert _one_line(err) == (
            f"emorl {command}: error: cannot write {out}: the disk is full (or a quota or file "
            "size limit is reached); free some space or write to another disk. Nothing was "
            "written"
        )
        assert Path(out).read_bytes() == old_bytes, out
        outcomes.add(f"{command} full")
    assert outcomes == {"written", "generate full", "convert full"}
    assert temporaries(tmp_path) == [] and not list(tmp_path.glob(".*.lock"))
    assert records.read_bytes() == big_records.read_bytes()


# --- counts ----------------------------------------------------------------------------------


def test_a_huge_count_for_a_small_input_fails_in_seconds(tmp_path: Path, records12: Path) -> None:
    # Used to hang, deaf to Ctrl-C, shrinking a dataset created with 10**12 rows.
    out = tmp_path / "x.h5"
    argv = ["convert", "tetrominoes", str(records12), "--num-train", str(10**12)]
    start = time.monotonic()
    done = subprocess.run(
        [*EMORL, *argv, "--out", str(out), "--no-progress"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert time.monotonic() - start < 60
    assert done.returncode == 2
    assert _one_line(done.stderr) == (
        f"emorl convert: error: {records12} ran out after 12 records: found {{'train': 12, "
        f"'test': 0}} matching images but {{'train': {10**12}, 'test': 320}} were requested; "
        "pass a smaller --num-train/--num-test (or relax the object filter)"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_huge_generate_is_refused_before_it_starts(tmp_path: Path, capsys) -> None:
    out = tmp_path / "g.h5"
    argv = ["generate", "tetrominoes", "--out", str(out), "--num-train", str(10**12)]
    assert main([*argv, "--no-progress"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert re.fullmatch(
        rf"emorl generate: error: {re.escape(str(out))}: 1,000,000,000,320 images need at least "
        r"100,000\.0 GB but the disk holding it has [\d,]+\.\d GB free; generate fewer images",
        line,
    ), line
    assert list(tmp_path.iterdir()) == []


def test_no_images_at_all_is_refused_by_the_command_and_the_api(tmp_path: Path, capsys) -> None:
    out = tmp_path / "g.h5"
    argv = ["generate", "tetrominoes", "--out", str(out), "--num-train", "0", "--num-test", "0"]
    assert main(argv) == 2
    assert _one_line(capsys.readouterr().err) == (
        "emorl generate: error: num_train and num_test are both 0: nothing to generate"
    )
    with pytest.raises(ValueError, match="both 0: nothing to generate"):
        generate("tetrominoes", out, 0, 0)
    assert list(tmp_path.iterdir()) == []


# --- corrupt inputs and bad output paths ---------------------------------------------------


def _bad_inputs(directory: Path, records12: Path) -> dict[str, Path]:
    png = directory / "image.png"
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(png)
    text = directory / "notes.txt"
    text.write_text("not a TFRecord file\n" * 10)
    hdf5 = generate("tetrominoes", directory / "data.h5", 3, 1, progress=False)
    raw = bytearray(
        write_records(directory / "raw.tfrecords", [b"payload"] * 3, "none").read_bytes()
    )
    raw[3] ^= 0x10  # one bit of the first record's length
    flipped = directory / "flipped.tfrecords"
    flipped.write_bytes(bytes(raw))
    gz = bytearray(records12.read_bytes())
    gz[len(gz) // 2] ^= 0x01  # one bit in the middle of the compressed stream
    flipped_gz = directory / "flipped.gz.tfrecords"
    flipped_gz.write_bytes(bytes(gz))
    return {
        "png": png,
        "text": text,
        "hdf5": hdf5,
        "flipped": flipped,
        "flipped_gz": flipped_gz,
    }


EXPECTED_INPUT_ERRORS = {
    "png": "{path} is not a TFRecord file (it looks like a PNG image): the header of its first "
    "record is invalid. Give the .tfrecords file of the dataset",
    "text": "{path} is not a TFRecord file (it looks like a text file): the header of its first "
    "record is invalid. Give the .tfrecords file of the dataset",
    "hdf5": "{path} is not a TFRecord file (it looks like an HDF5 file (HDF5 files need no "
    "conversion: pass them as they are)): the header of its first record is invalid. Give the "
    ".tfrecords file of the dataset",
    "flipped": "{path} is not a TFRecord file (or it is damaged at its start): the header of its "
    "first record is invalid. Give the .tfrecords file of the dataset",
}


@pytest.mark.parametrize("kind", ["png", "text", "hdf5", "flipped", "flipped_gz"])
def test_a_corrupt_or_foreign_input_of_convert_gives_one_line_naming_it(
    kind: str, tmp_path: Path, records12: Path, capsys
) -> None:
    inputs = _bad_inputs(tmp_path, records12)
    out = tmp_path / "out.h5"
    shutil.copyfile(inputs["hdf5"], out)  # an existing output, to be left alone
    before = _files(tmp_path)
    path = inputs[kind]
    argv = ["convert", "tetrominoes", str(path), "--out", str(out), "--overwrite", "--no-progress"]
    assert main(argv) == 2
    line = _one_line(capsys.readouterr().err)
    if kind in EXPECTED_INPUT_ERRORS:
        assert line == "emorl convert: error: " + EXPECTED_INPUT_ERRORS[kind].format(path=path)
    else:  # where the flipped bit lands decides which check catches it; the file is named
        assert line.startswith(f"emorl convert: error: {path}"), line
    assert "--compression" not in line
    assert _files(tmp_path) == before


def test_a_truncated_hdf5_file_is_named_with_the_cause(tmp_path: Path, capsys) -> None:
    whole = generate("tetrominoes", tmp_path / "whole.h5", 50, 5, progress=False)
    cut = tmp_path / "cut.h5"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(DataFormatError) as caught:
        HDF5Dataset(cut)
    assert str(caught.value) == (
        f"{cut} cannot be opened as HDF5: the file is truncated (shorter than HDF5 says it is); "
        "the file is damaged or was not written to the end: generate or convert it again"
    )
    # As the input of convert it is not mistaken for a TFRecord file either.
    before = _files(tmp_path)
    argv = ["convert", "tetrominoes", str(cut), "--out", str(tmp_path / "o.h5"), "--no-progress"]
    assert main(argv) == 2
    assert "looks like an HDF5 file" in _one_line(capsys.readouterr().err)
    assert _files(tmp_path) == before


@pytest.mark.parametrize("where", ["under a file", "a directory", "a trailing slash"])
def test_an_output_path_that_cannot_be_a_file_gives_one_line(
    where: str, tmp_path: Path, capsys
) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("keep me\n")
    (tmp_path / "folder").mkdir()
    out, expected = {
        "under a file": (
            f"{blocker}/g.h5",
            f"--out {blocker}/g.h5: {blocker} is a file, not a folder; choose a path in a folder",
        ),
        "a directory": (
            f"{tmp_path}/folder",
            f"--out {tmp_path}/folder is a directory: give a file name",
        ),
        "a trailing slash": (
            f"{tmp_path}/new/",
            f"--out {tmp_path}/new/ is a directory: give a file name",
        ),
    }[where]
    before = _files(tmp_path)
    assert main(["generate", "tetrominoes", "--out", out, "--num-train", "2"]) == 2
    assert _one_line(capsys.readouterr().err) == f"emorl generate: error: {expected}"
    assert _files(tmp_path) == before and sorted(p.name for p in tmp_path.iterdir()) == [
        "folder",
        "notes.txt",
    ]
    if where == "under a file":  # the API checks it as well
        with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
            generate("tetrominoes", out, 2, 1, progress=False)


# --- masks stored as 0/1 floats ------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "bool", "uint8"])
def test_masks_stored_as_zero_one_are_read_as_masks(dtype: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    owner = rng.integers(0, 3, size=(4, 6, 6))
    masks01 = (np.arange(3)[None, :, None, None] == owner[:, None])[..., None]  # [N, E, H, W, 1]
    path = tmp_path / "d.h5"
    with h5py.File(path, "w") as f:
        f["train/imgs"] = rng.integers(0, 256, size=(4, 6, 6, 3), dtype=np.uint8)
        f["train/masks"] = masks01.astype(dtype)
    data = HDF5Dataset(path, masks=True)
    got = torch.stack([data[i]["masks"] for i in range(4)])  # [N, E, 1, H, W]
    np.testing.assert_array_equal(got.numpy(), masks01.transpose(0, 1, 4, 2, 3).astype(np.float32))
    # The metrics read them as the partition they are (they used to reject "max 0.0039").
    np.testing.assert_array_equal(ari(got, torch.from_numpy(owner)), [1.0] * 4)


def test_default_dataset_waits_for_a_writer_of_its_file_and_then_reuses_it(
    tmp_path: Path, monkeypatch
) -> None:
    from pyro_emorl.data import default_dataset, generation

    real_generate = generation.generate
    path = tmp_path / f"tetrominoes-v{generation.GENERATOR_VERSION}-train10-test2-seed0.h5"
    locked = threading.Event()

    def writer() -> None:  # another caller, which got the lock first
        with output_lock(path):
            locked.set()
            time.sleep(0.5)
            real_generate("tetrominoes", path, 10, 2, seed=0, progress=False)

    thread = threading.Thread(target=writer)
    thread.start()
    locked.wait()

    def fail(*args, **kwargs):
        raise AssertionError("the file the other caller wrote should have been reused")

    monkeypatch.setattr(generation, "generate", fail)
    assert default_dataset("tetrominoes", tmp_path, num_train=10, num_test=2) == path
    thread.join()
    assert len(HDF5Dataset(path)) == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
