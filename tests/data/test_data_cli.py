"""`emorl generate` / `emorl convert`, the cached default dataset, and atomic writes."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from pyro_emorl.cli import main
from pyro_emorl.data import default_dataset, generate, generation
from pyro_emorl.data import tetrominoes as tet


def test_generate_command(tmp_path, capsys):
    out = tmp_path / "tetro.h5"
    argv = ["generate", "tetrominoes", "--out", str(out), "--num-train", "12"]
    assert main([*argv, "--num-test", "3", "--seed", "4", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "train: imgs [12, 35, 35, 3]" in printed
    with h5py.File(out, "r") as f:
        assert f["train/imgs"].shape == (12, 35, 35, 3)
        assert f["test/masks"].shape == (3, 4, 35, 35, 1)
        assert f.attrs["seed"] == 4 and f.attrs["dataset"] == "tetrominoes"
        # Compressed, one image per chunk.
        assert f["train/imgs"].compression == "gzip"
        assert f["train/imgs"].chunks == (1, 35, 35, 3)


def test_convert_command(tmp_path, capsys, real_sample_path, real_scenes):
    out = tmp_path / "real.h5"
    argv = ["convert", "tetrominoes", str(real_sample_path), "--out", str(out)]
    assert main([*argv, "--num-train", "6", "--num-test", "4", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "from 10 tetrominoes records" in printed and "test: imgs [4, 35, 35, 3]" in printed
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["test/imgs"][:], [s["image"] for s in real_scenes[6:]])


def test_convert_command_reports_bad_input(tmp_path, capsys, real_sample_path):
    out = tmp_path / "x.h5"
    argv = ["convert", "multi_dsprites", str(real_sample_path), "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "emorl convert: error:" in err and "record 0" in err and "--variant" in err
    assert "Traceback" not in err
    assert main(["convert", "tetrominoes", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "not found" in capsys.readouterr().err
    assert not out.exists()


def test_argument_errors_exit_with_usage(tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["generate", "tetrominoes", "--out", str(tmp_path / "a.h5"), "--num-train", "-3"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        main(["generate", "clevr", "--out", str(tmp_path / "a.h5")])


def test_default_dataset_generates_once(tmp_path, monkeypatch):
    monkeypatch.setenv("PYRO_EMORL_CACHE", str(tmp_path / "cache"))
    path = default_dataset("tetrominoes", num_train=10, num_test=2, progress=False)
    assert path.parent == tmp_path / "cache" and path.is_file()

    def fail(*args, **kwargs):
        raise AssertionError("the cached file should have been reused")

    monkeypatch.setattr(generation, "generate", fail)
    assert default_dataset("tetrominoes", num_train=10, num_test=2) == path
    # Another directory, seed or size is another file.
    with pytest.raises(AssertionError, match="reused"):
        default_dataset("tetrominoes", cache_dir=tmp_path / "other", num_train=10, num_test=2)
    with pytest.raises(AssertionError, match="reused"):
        default_dataset("tetrominoes", num_train=10, num_test=2, seed=1)
    with pytest.raises(ValueError, match="unknown generator"):
        default_dataset("mnist")


def test_failed_generation_leaves_no_file(tmp_path, monkeypatch):
    target = tmp_path / "t.h5"
    generate("tetrominoes", target, 3, 1, progress=False)
    before = target.read_bytes()

    def broken(rng, n):
        raise RuntimeError("disk full")

    monkeypatch.setattr(tet, "sample", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        generate("tetrominoes", target, 3, 1, progress=False)
    assert target.read_bytes() == before  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.h5"]  # no temporary left over
