"""The reader and converter against the 10 real Tetrominoes records of DeepMind's release."""

from __future__ import annotations

import gzip

import h5py
import numpy as np

from pyro_emorl.data import HDF5Dataset, convert
from pyro_emorl.data.example import decode_example
from pyro_emorl.data.records import decode_record, encode_record
from pyro_emorl.data.schemas import get_schema
from pyro_emorl.data.tfrecord import frame_record, iter_records

SATURATED = {(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1)}


def _object_masks(scene):
    return scene["mask"][1:, :, :, 0] > 0


def test_sample_has_ten_records_of_the_documented_schema(real_scenes):
    assert len(real_scenes) == 10
    for scene in real_scenes:
        assert scene["image"].shape == (35, 35, 3) and scene["image"].dtype == np.uint8
        assert scene["mask"].shape == (4, 35, 35, 1)
        assert set(np.unique(scene["mask"])) == {0, 255}
        assert scene["color"].shape == (4, 3)
        for name in ("x", "y", "shape", "visibility"):
            assert scene[name].shape == (4,) and scene[name].dtype == np.float32


def test_masks_partition_the_image_and_objects_cover_100_pixels(real_scenes):
    for scene in real_scenes:
        masks = scene["mask"][..., 0] > 0
        assert (masks.sum(axis=0) == 1).all()
        assert masks[1:].sum(axis=(1, 2)).tolist() == [100, 100, 100]
        np.testing.assert_array_equal(scene["visibility"], [1, 1, 1, 1])


def test_factors_describe_the_pixels(real_scenes):
    for scene in real_scenes:
        img = scene["image"].astype(int)
        # Background: black, factor zeros.
        assert (img[scene["mask"][0, ..., 0] > 0] == 0).all()
        assert scene["shape"][0] == 0 and (scene["color"][0] == 0).all()
        for k, mask in enumerate(_object_masks(scene), start=1):
            color = tuple(int(c) for c in scene["color"][k])
            assert color in SATURATED
            pixels = img[mask]
            on = np.array(color, dtype=bool)
            assert (pixels[:, ~on] == 0).all()
            # Every coloured channel of a piece carries the same shading.
            assert (pixels[:, on] == pixels[:, on][:, :1]).all()
            # x is the top row and y the left column of the piece.
            rows, cols = np.nonzero(mask)
            assert (rows.min(), cols.min()) == (scene["x"][k], scene["y"][k])
            assert 1 <= scene["shape"][k] <= 19


def test_blocks_share_one_bevel_shading(real_scenes):
    blocks = []
    for scene in real_scenes:
        for k, mask in enumerate(_object_masks(scene), start=1):
            channel = int(np.argmax(scene["color"][k]))
            r0, c0 = int(scene["x"][k]), int(scene["y"][k])
            for r in range(r0, 35, 5):
                for c in range(c0, 35, 5):
                    if mask[r : r + 5, c : c + 5].all():
                        blocks.append(scene["image"][r : r + 5, c : c + 5, channel])
    assert len(blocks) == 120  # 10 scenes x 3 pieces x 4 blocks
    for block in blocks:
        np.testing.assert_array_equal(block, blocks[0])
    # A bevel: a bright top edge, a dark bottom edge, a flat interior.
    assert blocks[0][0, 1:4].min() > blocks[0][2, 2] > blocks[0][4, 1:4].max()


def test_image_bytes_follow_from_masks_factors_and_one_block(real_scenes):
    """Every pixel = colour x the first block's shading, tiled from the piece's corner."""
    first = real_scenes[0]
    k = 1
    channel = int(np.argmax(first["color"][k]))
    r0, c0 = int(first["x"][k]), int(first["y"][k])
    rows, cols = np.nonzero(first["mask"][k, ..., 0][r0 : r0 + 5, c0 : c0 + 5])
    assert len(rows) == 25  # the piece's top-left block is a full block
    shading = first["image"][r0 : r0 + 5, c0 : c0 + 5, channel].astype(int)
    rr, cc = np.mgrid[0:35, 0:35]
    for scene in real_scenes:
        rebuilt = np.zeros((35, 35, 3), dtype=int)
        for k, mask in enumerate(_object_masks(scene), start=1):
            tile = shading[(rr - int(scene["x"][k])) % 5, (cc - int(scene["y"][k])) % 5]
            rebuilt += mask[..., None] * tile[..., None] * scene["color"][k].astype(int)
        np.testing.assert_array_equal(rebuilt, scene["image"])


def test_re_encoding_reproduces_the_file_byte_for_byte(real_sample_path):
    """Decoding then encoding every record (in its own feature order) gives the same stream."""
    schema = get_schema("tetrominoes")
    rebuilt = b""
    for data in iter_records(real_sample_path):
        order = list(decode_example(data))
        scene = decode_record(schema, data)
        rebuilt += frame_record(encode_record(schema, {k: scene[k] for k in order}))
    assert rebuilt == gzip.decompress(real_sample_path.read_bytes())


def test_converted_file_reads_back_equal(real_sample_path, real_scenes, tmp_path):
    out = tmp_path / "tetrominoes.h5"
    summary = convert("tetrominoes", real_sample_path, out, num_train=7, num_test=3, progress=False)
    assert summary.counts == {"train": 7, "test": 3}
    assert summary.records_read == 10
    with h5py.File(out, "r") as f:
        for split, scenes in (("train", real_scenes[:7]), ("test", real_scenes[7:])):
            np.testing.assert_array_equal(f[split]["imgs"][:], [s["image"] for s in scenes])
            np.testing.assert_array_equal(f[split]["masks"][:], [s["mask"] for s in scenes])
            for name in ("x", "y", "shape", "color", "visibility"):
                np.testing.assert_array_equal(
                    f[split]["factors"][name][:], [s[name] for s in scenes]
                )
    ds = HDF5Dataset(out, "test", masks=True, factors=True)
    assert len(ds) == 3
    item = ds[1]
    scene = real_scenes[8]
    np.testing.assert_allclose(item["imgs"].numpy(), scene["image"].transpose(2, 0, 1) / 255)
    np.testing.assert_array_equal(item["masks"].numpy(), scene["mask"].transpose(0, 3, 1, 2) / 255)
    np.testing.assert_array_equal(item["factors"]["color"].numpy(), scene["color"])
