"""The program that the kill tests of `emorl generate` and `emorl convert` run. Holds no tests.

    python tests/data/data_kill_worker.py DIR generate --kills 12 --moments-seed 1

It runs the command once to the end (the reference), once more to time it, then again and
again in forked children (one start-up of Python for all of them), each SIGKILLed at a random
moment of its run, and checks after every kill that the output is as it was or complete:

* with no output file beforehand (every other run), the output does not exist or holds exactly
  what the reference holds;
* over an existing output file (every other run, ``--overwrite``), that file is byte for byte
  the one that was there, or the output holds exactly what the reference holds.

Temporary files of killed writes may stay until the next run of the command, which removes
them; after a last run to the end none is left. Prints the outcomes as JSON: how many runs were
killed or finished, after how many a temporary file was there, and how many left no output,
the old file or the new one.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import re
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pyro_emorl.cli import main as emorl
from pyro_emorl.data import (
    DataFormatError,
    HDF5Dataset,
    encode_record,
    generate,
    get_schema,
    write_records,
)
from pyro_emorl.data.atomic import temporaries

# Images per split: the command then takes about a quarter of a second on 2 shared cores.
SIZES = {"generate": (900, 100), "convert": (400, 100)}


def _records(directory: Path, count: int) -> Path:
    """A TFRecord file of ``count`` Tetrominoes scenes (generated, then encoded)."""
    scenes = generate("tetrominoes", directory / "scenes.h5", count, 0, seed=7, progress=False)
    schema = get_schema("tetrominoes")
    with h5py.File(scenes, "r") as f:
        group = f["train"]
        arrays = {"image": group["imgs"][:], "mask": group["masks"][:]}
        arrays |= {name: group["factors"][name][:] for name in group["factors"]}
    records = [encode_record(schema, {k: v[i] for k, v in arrays.items()}) for i in range(count)]
    scenes.unlink()
    return write_records(directory / "in.tfrecords", records)


def _command(name: str, directory: Path) -> list[str]:
    """The command line, without ``--out``."""
    num_train, num_test = SIZES[name]
    sizes = ["--num-train", str(num_train), "--num-test", str(num_test), "--no-progress"]
    if name == "generate":
        return ["generate", "tetrominoes", "--seed", "3", *sizes]
    return ["convert", "tetrominoes", str(_records(directory, num_train + num_test)), *sizes]


def _run(argv: list[str], kill_after: float | None = None) -> tuple[bool, float]:
    """Run ``emorl argv`` in a forked child, SIGKILLed ``kill_after`` seconds after the fork
    unless it ends first; returns (whether it was killed, seconds it ran)."""
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the summary lines; errors still show on stderr
        try:
            code = emorl(argv)
        except BaseException:
            traceback.print_exc()
            code = 1
        os._exit(code)
    done, status = 0, 0
    if kill_after is not None:
        while not done and time.monotonic() < start + kill_after:
            done, status = os.waitpid(pid, os.WNOHANG)
            time.sleep(0.002)
        if not done:  # never signal a reaped child: its id may be another process's by now
            os.kill(pid, signal.SIGKILL)
    if not done:
        status = os.waitpid(pid, 0)[1]
    seconds = time.monotonic() - start
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
        return True, seconds
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"{argv}: status {status}"
    return False, seconds


def _contents(path: Path) -> dict[str, Any]:
    """Every array and attribute of an HDF5 file (checking on the way that it opens as a
    dataset of both splits)."""
    for split in ("train", "test"):
        HDF5Dataset(path, split, masks=True, factors=True)
    found: dict[str, Any] = {}
    with h5py.File(path, "r") as f:

        def visit(name: str, node: h5py.Group | h5py.Dataset) -> None:
            found[f"{name} attrs"] = dict(node.attrs)
            if isinstance(node, h5py.Dataset):
                found[name] = node[()]

        visit("/", f)
        f.visititems(visit)
    return found


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def equal(x: Any, y: Any) -> bool:
        if isinstance(x, dict) and isinstance(y, dict):
            return x.keys() == y.keys() and all(equal(x[k], y[k]) for k in x)
        return np.array_equal(np.asarray(x), np.asarray(y))

    return equal(a, b)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("directory", type=Path)
    parser.add_argument("command", choices=sorted(SIZES))
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--moments-seed", type=int, default=0)
    args = parser.parse_args()
    directory = args.directory
    directory.mkdir(parents=True, exist_ok=True)
    command = _command(args.command, directory)
    reference, out, old = (directory / name for name in ("reference.h5", "out.h5", "old.h5"))
    # Here first: the command's first run in a process imports what it needs, and every child
    # would pay for that again (its moments spent on imports rather than writes).
    with contextlib.redirect_stdout(io.StringIO()):
        assert emorl([*command, "--out", str(reference)]) == 0
    expected = _contents(reference)
    _, seconds = _run([*command, "--out", str(out)])
    generate("tetrominoes", old, 5, 2, seed=11, progress=False)  # an existing, valid file
    old_bytes = old.read_bytes()
    leftovers = re.escape(out.name)

    moments = random.Random(args.moments_seed)
    outcomes = dict.fromkeys(("kills", "finished", "temporary_left", "absent", "old", "new"), 0)
    for attempt in range(args.kills):
        existing = attempt % 2 == 1
        if existing:
            shutil.copyfile(old, out)
        else:
            out.unlink(missing_ok=True)
        # Up to 1.2 run times: some runs end, or are killed after the rename.
        killed, _ = _run(
            [*command, "--out", str(out), "--overwrite"], moments.uniform(0, 1.2 * seconds)
        )
        outcomes["kills" if killed else "finished"] += 1
        outcomes["temporary_left"] += bool(temporaries(directory, leftovers))
        if not out.exists():
            assert not existing, f"attempt {attempt}: the existing {out} was destroyed"
            outcome = "absent"
        elif existing and out.read_bytes() == old_bytes:
            outcome = "old"
        else:
            try:
                found = _contents(out)
            except (OSError, DataFormatError) as error:
                raise AssertionError(f"attempt {attempt}: {out} is damaged ({error})") from None
            assert _same(found, expected), f"attempt {attempt}: {out} is incomplete"
            outcome = "new"
        assert killed or outcome == "new", f"attempt {attempt} ended without writing {out}"
        outcomes[outcome] += 1

    _run([*command, "--out", str(out), "--overwrite"])
    assert _same(_contents(out), expected)
    assert temporaries(directory) == [], temporaries(directory)
    print(json.dumps(outcomes), flush=True)


if __name__ == "__main__":
    main()
