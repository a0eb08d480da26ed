"""Bad input: one clear line naming the problem and the fix, before any work, and no file harmed.

A table of inputs to the ``emorl`` command line (exit status 2, one ``emorl <command>: error:``
line on stderr, no traceback, a message fragment, every input file unchanged) and to the
configuration API.
"""

from __future__ import annotations

import hashlib
import math
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import pyro_emorl as pe
from pyro_emorl import train
from pyro_emorl.cli import main
from pyro_emorl.data import DataFormatError, HDF5Dataset, generate
from pyro_emorl.devices import check_device
from tests.reference import REAL_RECORDS
from tests.test_train_worker import tiny_config, tiny_dataset
from tests.tiny import num_threads


@pytest.fixture(autouse=True)
def _one_thread():
    with num_threads(1):
        yield


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A dataset, a checkpoint written by ``fit``, a damaged checkpoint and a TFRecord copy."""
    root = tmp_path_factory.mktemp("inputs")
    data = generate("tetrominoes", root / "d.h5", 4, 4, progress=False)
    config = pe.presets.tetrominoes(num_layers=1, training={"steps": 1, "batch_size": 2})
    options = train.RunOptions(
        out_dir=root / "run", device="cpu", progress=False, tensorboard=False, figure_every=0
    )
    with num_threads(1):
        result = train.fit(config, train.training_dataset("tetrominoes", config, data), options)
    truncated = root / "truncated.pt"
    truncated.write_bytes(result.checkpoint.read_bytes()[:5000])
    records = shutil.copy(REAL_RECORDS, root / "x.tfrecords")
    stripped = {}
    for key in ("masks", "factors"):  # the same file without one kind of ground truth
        stripped[key] = Path(shutil.copy(data, root / f"no_{key}.h5"))
        with h5py.File(stripped[key], "a") as f:
            del f[f"test/{key}"]
    return {
        "data": data,
        "ck": result.checkpoint,
        "truncated": truncated,
        "records": Path(records),
        "no_masks": stripped["masks"],
        "no_factors": stripped["factors"],
    }


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "absent"


TRAIN_NEW = ["train", "--preset", "tetrominoes", "--out", "{root}/new"]
VISUALIZE = ["visualize", "{ck}", "--data", "{data}", "--out", "{root}/fig"]
CASES = [
    # (argv with {name} placeholders, message fragment)
    (
        ["train", "--preset", "tetrominoes", "--out", "{root}/new", "--resume"],
        "holds no checkpoint",
    ),
    (
        ["train", "--preset", "tetrominoes", "--out", "{root}/new", "--minutes", "0"],
        "--minutes must",
    ),
    (["evaluate", "{ck}", "--data", "{data}", "--out", "{data}"], "also an input"),
    (["evaluate", "{ck}", "--data", "{data}", "--out", "{ck}"], "also an input"),
    (["evaluate", "{ck}", "--data", "{data}", "--out", "{root}"], "is a directory"),
    (["convert", "tetrominoes", "{records}", "--out", "{records}"], "also an input"),
    (["generate", "tetrominoes", "--out", "{data}"], "pass --overwrite"),
    (["evaluate", "{truncated}", "--data", "{data}"], "is not a readable checkpoint"),
    (["evaluate", "{root}/nope.pt", "--data", "{data}"], "checkpoint not found"),
    (
        ["train", "--preset", "tetrominoes", "--data", "{data}", "--set", 'kl_beta="abc"'],
        "kl_beta must be a number",
    ),  # fmt: skip
    (
        ["train", "--preset", "tetrominoes", "--data", "{data}", "--set", 'dual_gru="no"'],
        "dual_gru must be true or false",
    ),  # fmt: skip
    (
        ["train", "--preset", "tetrominoes", "--data", "{data}", "--set", 'training.lr="fast"'],
        "training.lr must be a number",
    ),  # fmt: skip
    (
        ["train", "--preset", "tetrominoes", "--data", "{data}", "--set", "training.batch_size=0"],
        "training.batch_size must be >= 1",
    ),  # fmt: skip
    (
        ["train", "--preset", "tetrominoes", "--data", "{data}", "--set", "training.curriculum=5"],
        "training.curriculum must be a list",
    ),  # fmt: skip
    (
        ["train", "--preset", "tetrominoes", "--data", "{data}", "--set", 'geco.convention="x"'],
        "geco.convention must be one of",
    ),  # fmt: skip
    # --device: one check, before any data is generated or read (see also test_unavailable_...)
    (TRAIN_NEW + ["--device", "gpu"], "--device gpu: not a device; use cpu, cuda, cuda:N or mps"),
    (TRAIN_NEW + ["--init-from", "{root}/nope.pt"], "init_from: no checkpoint"),
    (TRAIN_NEW + ["--init-from", "{ck}", "--starts", "2"], "drop --starts"),
    (["evaluate", "{ck}", "--data", "{data}", "--device", "gpu"], "--device gpu: not a device"),
    (VISUALIZE + ["--device", "meta"], "--device meta: not a device to run on"),
    # visualize and evaluate: every count and index, with the valid range
    (
        VISUALIZE + ["--slot", "9"],
        "--slot 9: the model decomposes scenes into K=4 slots; choose a slot in 0..3",
    ),
    (VISUALIZE + ["--num-slots", "2", "--slot", "2"], "K=2 slots; choose a slot in 0..1"),
    (VISUALIZE + ["--slot", "-1"], "--slot must be >= 0, got -1"),
    (VISUALIZE + ["--num-images", "9"], "--num-images 9: the test split of "),
    (VISUALIZE + ["--num-images", "0"], "--num-images must be >= 1, got 0"),
    (
        VISUALIZE + ["--num-dims", "33"],
        "--num-dims 33: each slot has 32 latent dimensions; choose 1..32",
    ),
    (VISUALIZE + ["--num-dims", "0"], "--num-dims must be >= 1"),
    (VISUALIZE + ["--num-samples", "0"], "--num-samples must be >= 1"),
    (VISUALIZE + ["--refine-steps", "-2"], "--refine-steps must be >= 0, got -2"),
    (VISUALIZE + ["--num-slots", "0"], "--num-slots must be >= 1, got 0"),
    (["visualize", "{ck}", "--data", "{data}", "--out", "{data}"], "is a file: give a directory"),
    (["evaluate", "{ck}", "--data", "{data}", "--batch-size", "0"], "--batch-size must be >= 1"),
    (["evaluate", "{ck}", "--data", "{data}", "--num-images", "-5"], "--num-images must be >= 1"),
    (["evaluate", "{ck}", "--data", "{data}", "--refine-steps", "-1"], "--refine-steps must be"),
    # ground truth a command needs, named in the command's terms (not the Python API's)
    (
        ["evaluate", "{ck}", "--data", "{no_masks}"],
        "its test split has no masks and the scores compare segmentations with its ground-truth "
        "masks; give a file written by `emorl generate` or `emorl convert`",
    ),
    (
        ["evaluate", "{ck}", "--data", "{no_factors}", "--dci"],
        "its test split has no factors and --dci predicts its ground-truth factors; give a file "
        "written by `emorl generate` or `emorl convert`, or drop --dci",
    ),
    (
        [*TRAIN_NEW, "--data", "{data}", "--eval-data", "{no_masks}", "--steps", "1"],
        "its test split has no ground-truth masks, which the held-out scores need",
    ),
]


@pytest.mark.parametrize(("argv", "fragment"), CASES, ids=[c[1] for c in CASES])
def test_cli_user_errors_are_one_line(files, argv, fragment, capsys) -> None:
    names = {k: str(v) for k, v in files.items()} | {"root": str(files["data"].parent)}
    argv = [a.format(**names) for a in argv]
    before = {k: _digest(v) for k, v in files.items()}
    listing = sorted(files["data"].parent.iterdir())
    assert main([*argv, "--no-progress"] if argv[0] != "train" else argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"emorl {argv[0]}: error: "), err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert fragment in err
    assert {k: _digest(v) for k, v in files.items()} == before
    assert sorted(files["data"].parent.iterdir()) == listing  # nothing written either


@pytest.mark.parametrize("command", ["train", "evaluate", "visualize"])
@pytest.mark.parametrize(
    ("device", "fragment"),
    [
        ("cuda", "--device cuda: CUDA is not available on this machine; use --device cpu"),
        ("cuda:0", "--device cuda:0: CUDA is not available on this machine; use --device cpu"),
        ("mps", "--device mps: MPS (Apple GPU) is not available on this machine; use --device cpu"),
    ],
)
def test_unavailable_devices_are_refused_before_any_work(
    files, command, device, fragment, monkeypatch, capsys
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    root = files["data"].parent
    argv = {
        # Without --data this would generate the preset's 60,000 images first.
        "train": ["train", "--preset", "tetrominoes", "--out", f"{root}/new"],
        "evaluate": ["evaluate", str(files["ck"]), "--data", str(files["data"]), "--no-progress"],
        "visualize": ["visualize", str(files["ck"]), "--data", str(files["data"])],
    }[command]
    if command == "visualize":
        argv += ["--out", f"{root}/fig"]
    listing = sorted(root.iterdir())
    assert main([*argv, "--device", device]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"emorl {command}: error: {fragment}"
    assert sorted(root.iterdir()) == listing


def test_a_cuda_index_beyond_the_machine_is_refused(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert check_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match=r"--device cuda:2: this machine has 2 CUDA devices "):
        check_device("cuda:2")


@pytest.mark.parametrize("device", ["gpu", "cuda:x", 0, "meta"])
def test_the_python_api_checks_devices_too(device) -> None:
    with pytest.raises(ValueError, match=r"^device='.*': not a device"):
        train.RunOptions(device=device)
    with pytest.raises(ValueError, match=r"^map_location='.*': not a device"):
        pe.load_pretrained("tetrominoes", map_location=device)


def test_evaluate_warns_of_too_few_slots_and_of_an_ignored_preset(files, capsys) -> None:
    """K below the objects in the masks bounds FG-ARI: a warning naming a K, not an error; and
    --preset means nothing for our own checkpoints, which carry their configuration."""
    argv = ["evaluate", str(files["ck"]), "--data", str(files["data"]), "--no-progress"]
    argv += ["--num-images", "2", "--refine-steps", "0"]
    assert main([*argv, "--num-slots", "2", "--preset", "tetrominoes"]) == 0
    captured = capsys.readouterr()
    warnings = captured.err.strip().splitlines()
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("emorl evaluate: warning: --preset tetrominoes is ignored: ")
    assert "carries its own configuration" in warnings[0]
    assert warnings[1].startswith("emorl evaluate: warning: FG-ARI is bounded: K=2 slots, but ")
    assert "2 of 2 images hold more objects (up to 3)" in warnings[1]
    assert "use --num-slots 4" in warnings[1]
    assert "fg_ari" in captured.out
    # Enough slots (the checkpoint's K=4 for 3 tetrominoes) and no --preset: no warning at all.
    assert main([*argv, "--num-images", "9"]) == 0
    warnings = capsys.readouterr().err.strip().splitlines()
    assert warnings == [
        f"emorl evaluate: warning: --num-images 9: the test split of {files['data']} holds 4 "
        "images; scoring those 4"
    ]


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"kl_beta": "abc"}, "kl_beta must be a number"),
        ({"dual_gru": "no"}, "dual_gru must be true or false"),
        ({"num_slots": True}, "num_slots must be an integer"),
        ({"log_scale": math.nan}, r"log_scale \(ln sigma\) must be finite"),
        ({"training": {"lr": math.nan}}, "training.lr must be finite"),
        ({"training": {"steps": 0}}, "training.steps must be >= 1"),
        ({"training": {"curriculum": ((5, 1),)}}, "must cover step 0"),
        ({"geco": {"convention": "weird"}}, "geco.convention must be one of"),
        ({"geco": {"ema_decay": 1.0}}, r"geco.ema_decay must be in \[0, 1\)"),
    ],
)
def test_config_fields_are_checked(changes, fragment) -> None:
    with pytest.raises(ValueError, match=fragment):
        pe.presets.tetrominoes(**changes)


def test_refinement_steps_must_be_a_count() -> None:
    model, guide = pe.build(tiny_config())
    with pytest.raises(ValueError, match="refinement steps must be an integer"):
        pe.decompose(model, guide, torch.rand(1, 3, 12, 12), num_steps=True)


def test_resuming_past_the_requested_steps_is_refused(tmp_path) -> None:
    options = train.RunOptions(
        out_dir=tmp_path, device="cpu", progress=False, tensorboard=False, figure_every=0
    )
    train.fit(tiny_config(steps=3), tiny_dataset(), options)
    resume = train.RunOptions(
        out_dir=tmp_path,
        device="cpu",
        progress=False,
        tensorboard=False,
        figure_every=0,
        resume=True,
    )
    with pytest.raises(ValueError, match="past the 2 steps asked for"):
        train.fit(tiny_config(steps=2), tiny_dataset(), resume)


def test_a_new_run_never_mixes_with_the_files_of_another(tmp_path) -> None:
    """A log without a run marker (an older version's, or the user's own file named so) is
    never replaced, not even with overwrite."""
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n')
    for overwrite in (False, True):
        options = train.RunOptions(
            out_dir=tmp_path, device="cpu", progress=False, tensorboard=False, overwrite=overwrite
        )
        with pytest.raises(FileExistsError, match="no run.json says a run wrote them"):
            train.fit(tiny_config(steps=1), tiny_dataset(), options)
    assert (tmp_path / "metrics.jsonl").read_text() == '{"step": 1}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl"]


@pytest.mark.parametrize(
    ("images", "fragment"),
    [
        (np.random.default_rng(0).random((3, 4, 4, 3)), r"floats in \[0, 1\]"),
        (np.concatenate([np.full((2, 4, 4, 3), 9.0), np.full((1, 4, 4, 3), np.nan)]), "image 2"),
        (np.full((3, 4, 4, 3), 300.0), "image 0 holds 300.0"),
        (np.zeros((0, 4, 4, 3), np.uint8), "holds no images"),
        (np.zeros((3, 4, 4, 3), np.complex64), "expected uint8 pixels"),
    ],
)
def test_hdf5_pixels_are_checked_over_the_whole_array(tmp_path, images, fragment) -> None:
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("train/imgs", data=images)
    with pytest.raises(DataFormatError, match=fragment):
        HDF5Dataset(path)


def test_a_damaged_chunk_names_the_file_split_and_image(tmp_path) -> None:
    path = tmp_path / "big.h5"
    with h5py.File(path, "w") as f:
        images = np.random.default_rng(0).integers(0, 256, (64, 8, 8, 3), dtype=np.uint8)
        f.create_dataset("train/imgs", data=images, chunks=(1, 8, 8, 3), compression="gzip")
        chunk = f["train/imgs"].id.get_chunk_info(40)
    dataset = HDF5Dataset(path)
    with open(path, "r+b") as f:  # overwrite image 40's compressed chunk with garbage
        f.seek(chunk.byte_offset)
        f.write(b"\xff" * chunk.size)
    with pytest.raises(DataFormatError, match=r"big.h5:train: cannot read image 40 "):
        for index in range(64):
            dataset[index]


def test_a_command_removes_what_a_killed_write_of_its_output_left(tmp_path, capsys) -> None:
    out = tmp_path / "d.h5"
    stale = tmp_path / ".d.h5.q8x_2kfz.tmp"  # emorl generate killed mid-write
    other = tmp_path / ".e.h5.q8x_2kfz.tmp"  # another file's: not this command's business
    for path in (stale, other):
        path.write_bytes(b"partial")
    argv = ["generate", "tetrominoes", "--out", str(out), "--num-train", "2", "--num-test", "1"]
    assert main([*argv, "--no-progress"]) == 0
    err = capsys.readouterr().err.strip()
    assert err == (
        f"emorl generate: warning: removed 1 temporary file(s) left by an interrupted write: "
        f"{stale}"
    )
    assert not stale.exists() and other.read_bytes() == b"partial"
    assert len(HDF5Dataset(out)) == 2
