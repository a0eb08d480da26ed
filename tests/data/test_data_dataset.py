"""HDF5Dataset: item layout, official-style files, CLEVR preprocessing, workers, errors."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, DistributedSampler

from pyro_emorl.data import DataFormatError, HDF5Dataset, generate


@pytest.fixture(scope="module")
def tetro_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("h5") / "tetrominoes.h5"
    return generate("tetrominoes", path, num_train=40, num_test=8, seed=1, progress=False)


def test_item_layout(tetro_file):
    ds = HDF5Dataset(tetro_file, "train", masks=True, factors=True)
    assert len(ds) == 40
    item = ds[3]
    with h5py.File(tetro_file, "r") as f:
        img = f["train/imgs"][3]
        masks = f["train/masks"][3]
        color = f["train/factors/color"][3]
    assert item["imgs"].dtype == torch.float32 and item["imgs"].shape == (3, 35, 35)
    np.testing.assert_allclose(item["imgs"].numpy(), img.transpose(2, 0, 1) / 255.0, rtol=1e-6)
    assert item["masks"].dtype == torch.float32 and item["masks"].shape == (4, 1, 35, 35)
    np.testing.assert_array_equal(item["masks"].numpy(), masks.transpose(0, 3, 1, 2) // 255)
    assert set(item["factors"]) == {"x", "y", "shape", "color", "visibility"}
    np.testing.assert_array_equal(item["factors"]["color"].numpy(), color)
    # Negative indices like a sequence; out of range is an IndexError.
    torch.testing.assert_close(ds[-40]["imgs"], ds[0]["imgs"])
    with pytest.raises(IndexError):
        ds[40]


def test_images_only_by_default_and_max_images(tetro_file):
    ds = HDF5Dataset(tetro_file, "test", max_images=5)
    assert len(ds) == 5 and set(ds[0]) == {"imgs"}
    assert len(HDF5Dataset(tetro_file, "test", max_images=1000)) == 8


def test_official_layout_with_a_factor_array(tmp_path):
    """Zenodo-style: float images, masks, and factors as one [N, E, F] array."""
    path = tmp_path / "official.h5"
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(4, 64, 64, 3)).astype(np.float32)
    masks = (rng.random((4, 6, 64, 64, 1)) > 0.5).astype(np.uint8) * 255
    factors = rng.random((4, 6, 9)).astype(np.float32)
    with h5py.File(path, "w") as f:
        f["test/imgs"], f["test/masks"], f["test/factors"] = imgs, masks, factors
    item = HDF5Dataset(path, "test", masks=True, factors=True)[2]
    np.testing.assert_allclose(item["imgs"].numpy(), imgs[2].transpose(2, 0, 1) / 255, rtol=1e-6)
    np.testing.assert_array_equal(item["masks"].numpy(), masks[2].transpose(0, 3, 1, 2) / 255)
    np.testing.assert_array_equal(item["factors"].numpy(), factors[2])


@pytest.fixture(scope="module")
def clevr_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("clevr") / "clevr.h5"
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(2, 240, 320, 3), dtype=np.uint8)
    owner = rng.integers(0, 11, size=(2, 240, 320))
    masks = (np.arange(11)[None, :, None, None] == owner[:, None]).astype(np.uint8) * 255
    with h5py.File(path, "w") as f:
        f["train/imgs"], f["train/masks"] = imgs, masks[..., None]
    return path, imgs, masks


@pytest.mark.parametrize(("style", "size"), [("clevr-small", 96), ("clevr-large", 128)])
def test_clevr_preprocessing_matches_the_official_pil_pipeline(clevr_file, style, size):
    path, imgs, masks = clevr_file
    box = (64, 29, 256, 221)
    item = HDF5Dataset(path, masks=True, clevr_preprocess=style)[1]
    expected = np.asarray(Image.fromarray(imgs[1]).crop(box).resize((size, size), Image.BICUBIC))
    np.testing.assert_allclose(item["imgs"].numpy(), expected.transpose(2, 0, 1) / 255, rtol=1e-6)
    # Official: masks are only cropped.
    assert item["masks"].shape == (11, 1, 192, 192)
    np.testing.assert_array_equal(item["masks"][:, 0].numpy(), masks[1, :, 29:221, 64:256] / 255)
    resized = HDF5Dataset(path, masks=True, clevr_preprocess=style, resize_masks=True)[1]
    for e in range(11):
        ref = Image.fromarray(masks[1, e]).crop(box).resize((size, size), Image.NEAREST)
        np.testing.assert_array_equal(resized["masks"][e, 0].numpy(), np.asarray(ref) / 255)


def test_pickles_and_reopens_per_process(tetro_file):
    ds = HDF5Dataset(tetro_file, "train", masks=True)
    first = ds[0]  # opens the file in this process
    clone = pickle.loads(pickle.dumps(ds))
    torch.testing.assert_close(clone[0]["imgs"], first["imgs"])
    ds.close()
    torch.testing.assert_close(ds[0]["masks"], first["masks"])


# Python >= 3.12 warns about fork() in a multi-threaded process; torch's pool may be running.
@pytest.mark.filterwarnings("ignore:This process .* fork:DeprecationWarning")
@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_dataloader_workers_give_the_same_batches(tetro_file, start_method):
    """fork copies an open handle into the workers; spawn pickles the dataset."""
    ds = HDF5Dataset(tetro_file, "train", masks=True, factors=True)
    ds[0]  # a handle open in the parent must not be used by the workers
    serial = list(DataLoader(ds, batch_size=8))
    parallel = list(
        DataLoader(ds, batch_size=8, num_workers=2, multiprocessing_context=start_method)
    )
    assert len(serial) == len(parallel) == 5
    for a, b in zip(serial, parallel):
        torch.testing.assert_close(a["imgs"], b["imgs"])
        torch.testing.assert_close(a["masks"], b["masks"])
        torch.testing.assert_close(a["factors"]["x"], b["factors"]["x"])
    assert serial[0]["factors"]["color"].shape == (8, 4, 3)


def test_distributed_sampler_shards_the_dataset(tetro_file):
    ds = HDF5Dataset(tetro_file, "train")
    seen = []
    for rank in range(2):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=0)
        sampler.set_epoch(1)
        indices = list(sampler)
        batch = next(iter(DataLoader(ds, batch_size=len(indices), sampler=sampler)))
        expected = torch.stack([ds[i]["imgs"] for i in indices])
        torch.testing.assert_close(batch["imgs"], expected)
        seen += indices
    assert sorted(seen) == list(range(40))


def test_errors_name_the_problem(tmp_path, tetro_file):
    with pytest.raises(FileNotFoundError, match="not found"):
        HDF5Dataset(tmp_path / "missing.h5")
    text = tmp_path / "data.tfrecords"
    text.write_bytes(b"\x1f\x8b not an hdf5 file")
    with pytest.raises(DataFormatError, match="not an HDF5 file.*emorl convert"):
        HDF5Dataset(text)
    with pytest.raises(DataFormatError, match=r"no group 'val'; available: \['test', 'train'\]"):
        HDF5Dataset(tetro_file, "val")
    with pytest.raises(DataFormatError, match="240x320"):
        HDF5Dataset(tetro_file, clevr_preprocess="clevr-small")
    with pytest.raises(ValueError, match="clevr_preprocess must be"):
        HDF5Dataset(tetro_file, clevr_preprocess="small")
    with pytest.raises(ValueError, match="max_images"):
        HDF5Dataset(tetro_file, max_images=0)
    with pytest.raises(ValueError, match="resize_masks"):
        HDF5Dataset(tetro_file, resize_masks=True)

    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f["train/imgs"] = np.zeros((3, 8, 8), np.uint8)
        f["test/imgs"] = np.zeros((3, 8, 8, 3), np.uint8)
        f["test/masks"] = np.zeros((3, 2, 8, 9, 1), np.uint8)
        f["val/imgs"] = np.zeros((3, 8, 8, 3), np.uint8)
        f["val/factors/x"] = np.zeros((2, 2), np.float32)
    with pytest.raises(DataFormatError, match=r"imgs has shape \[3, 8, 8\]; expected \[N, H, W"):
        HDF5Dataset(bad, "train")
    with pytest.raises(DataFormatError, match=r"masks has shape .*expected \[3, E, 8, 8, 1\]"):
        HDF5Dataset(bad, "test", masks=True)
    with pytest.raises(DataFormatError, match="no ground-truth masks.*masks=False"):
        HDF5Dataset(bad, "val", masks=True)
    with pytest.raises(DataFormatError, match="no ground-truth factors.*factors=False"):
        HDF5Dataset(bad, "test", factors=True)
    with pytest.raises(DataFormatError, match="factors/x must be an array with 3 rows"):
        HDF5Dataset(bad, "val", factors=True)
