"""The full scan of float pixels runs once per version of a file (`pyro_emorl.data.scans`)."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from pyro_emorl.data import DataFormatError, HDF5Dataset, dataset
from pyro_emorl.data.scans import TIMESTAMP_SLACK_NS

HOUR_NS = 3600 * 10**9


def _write(path: Path, imgs: np.ndarray) -> None:
    with h5py.File(path, "w") as f:
        f["train/imgs"], f["test/imgs"] = imgs, imgs[:2]


def _float_images(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (5, 6, 6, 3)).astype(np.float32)


def _age(path: Path, ns: int = HOUR_NS) -> int:
    """Set the file's times ``ns`` into the past (a file written a while ago); returns them."""
    then = path.stat().st_mtime_ns - ns
    os.utime(path, ns=(then, then))
    return then


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's cache of this test: the records go to its ``scans/`` folder."""
    monkeypatch.setenv("PYRO_EMORL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "scans"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """Where the test's data files live (apart from the cache)."""
    (tmp_path / "data").mkdir()
    return tmp_path / "data"


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch, cache: Path) -> list[str]:
    """The arrays scanned from now on, in order (the scan itself still runs)."""
    seen: list[str] = []
    scan = dataset._scan_pixel_values

    def counting(imgs: h5py.Dataset, where: str) -> None:
        seen.append(imgs.name)
        scan(imgs, where)

    monkeypatch.setattr(dataset, "_scan_pixel_values", counting)
    return seen


def test_a_second_open_of_an_unchanged_file_does_not_rescan(data_dir, cache, scans) -> None:
    path = data_dir / "official.h5"
    _write(path, _float_images())
    _age(path)
    HDF5Dataset(path, "train")
    HDF5Dataset(path, "train")
    assert scans == ["/train/imgs"]
    HDF5Dataset(path, "test")  # each split's images are scanned once
    HDF5Dataset(path, "test")
    HDF5Dataset(path, "train")
    assert scans == ["/train/imgs", "/test/imgs"]
    # Nothing beside the data; one record in the cache.
    assert [p.name for p in data_dir.iterdir()] == ["official.h5"]
    (record,) = cache.iterdir()

    # A record that is not ours (or damaged) is no record: scan, then write a good one.
    record.write_text("{not json")
    HDF5Dataset(path, "train")
    HDF5Dataset(path, "train")
    assert scans == ["/train/imgs", "/test/imgs", "/train/imgs"]


def test_a_modified_file_is_rescanned_and_its_new_damage_caught(data_dir, cache, scans) -> None:
    path = data_dir / "official.h5"
    _write(path, _float_images())
    _age(path)
    HDF5Dataset(path, "train")
    before = path.stat()
    with h5py.File(path, "r+") as f:
        f["train/imgs"][3, 1, 2, 0] = np.nan
    after = path.stat()
    # In place: only the modification time tells the two versions apart.
    assert (after.st_size, after.st_ino) == (before.st_size, before.st_ino)
    with pytest.raises(DataFormatError, match="image 3 holds nan"):
        HDF5Dataset(path, "train")
    assert scans == ["/train/imgs", "/train/imgs"]


def test_a_replaced_file_is_rescanned_even_with_its_size_and_time(data_dir, cache, scans) -> None:
    path, other = data_dir / "official.h5", data_dir / "other.h5"
    _write(path, _float_images())
    then = _age(path)
    HDF5Dataset(path, "train")
    damaged = _float_images(seed=1)
    damaged[4, 0, 0, 1] = 300.0
    _write(other, damaged)
    os.utime(other, ns=(then, then))
    before = path.stat()
    os.replace(other, path)
    after = path.stat()
    # Only the inode tells the two files apart.
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert after.st_ino != before.st_ino
    with pytest.raises(DataFormatError, match="image 4 holds 300.0"):
        HDF5Dataset(path, "train")
    assert scans == ["/train/imgs", "/train/imgs"]


def test_a_record_written_just_after_a_change_is_not_trusted(data_dir, cache, scans) -> None:
    """Within the slack, a second change could keep the recorded modification time."""
    path = data_dir / "official.h5"
    _write(path, _float_images())  # modified now: as recent as the record will be
    HDF5Dataset(path, "train")
    HDF5Dataset(path, "train")
    assert scans == ["/train/imgs", "/train/imgs"]
    _age(path, TIMESTAMP_SLACK_NS + 10**9)  # the same file, a while later
    HDF5Dataset(path, "train")
    HDF5Dataset(path, "train")
    assert scans == ["/train/imgs"] * 3


def test_a_record_that_cannot_be_written_never_stops_an_open(data_dir, cache, scans) -> None:
    path = data_dir / "official.h5"
    _write(path, _float_images())
    _age(path)
    cache.parent.mkdir()
    cache.write_text("")  # a file where the records' folder should be: nothing can be written
    assert len(HDF5Dataset(path, "train")) == len(HDF5Dataset(path, "train")) == 5
    assert scans == ["/train/imgs", "/train/imgs"]
    assert [p.name for p in data_dir.iterdir()] == ["official.h5"] and cache.is_file()


def test_integer_pixels_are_never_scanned_nor_recorded(data_dir, cache, scans) -> None:
    path = data_dir / "generated.h5"
    _write(path, _float_images().astype(np.uint8))
    HDF5Dataset(path, "train")
    assert scans == [] and not cache.exists()
