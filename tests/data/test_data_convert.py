"""Round trips through the TFRecord converter for every dataset schema, splits and CLEVR options."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from PIL import Image

from pyro_emorl.cli import main
from pyro_emorl.data import HDF5Dataset, RecordError, convert, encode_record, get_schema
from pyro_emorl.data.example import decode_example, one_byte_values
from pyro_emorl.data.tfrecord import write_records

SCHEMAS = [
    ("tetrominoes", None),
    ("multi_dsprites", "colored_on_grayscale"),
    ("multi_dsprites", "colored_on_colored"),
    ("multi_dsprites", "binarized"),
    ("clevr_with_masks", None),
    ("objects_room", "train"),
    ("objects_room", "six_objects"),
    ("objects_room", "empty_room"),
    ("objects_room", "identical_color"),
]


def _write(tmp_path, schema, scenes):
    return write_records(tmp_path / "in.tfrecords", [encode_record(schema, s) for s in scenes])


@pytest.mark.parametrize(("dataset", "variant"), SCHEMAS)
def test_round_trip_every_schema(tmp_path, random_scene, dataset, variant):
    schema = get_schema(dataset, variant)
    rng = np.random.default_rng(0)
    n = 3 if dataset == "clevr_with_masks" else 5
    # CLEVR's default filter keeps <= 6 objects; stay within it.
    objects = 3 if schema.has_visibility else None
    scenes = [random_scene(schema, rng, objects=objects) for _ in range(n)]
    src = _write(tmp_path, schema, scenes)
    out = tmp_path / "out.h5"
    summary = convert(
        dataset, src, out, variant=variant, num_train=n - 1, num_test=1, progress=False
    )
    assert summary.counts == {"train": n - 1, "test": 1}
    with h5py.File(out, "r") as f:
        imgs = np.concatenate([f["train/imgs"][:], f["test/imgs"][:]])
        masks = np.concatenate([f["train/masks"][:], f["test/masks"][:]])
        for i, scene in enumerate(scenes):
            expected_img = np.broadcast_to(scene["image"], (*scene["image"].shape[:2], 3))
            np.testing.assert_array_equal(imgs[i], expected_img)
            np.testing.assert_array_equal(masks[i], scene["mask"])
        for spec in schema.factors:
            stored = np.concatenate([f[f"{s}/factors/{spec.name}"][:] for s in ("train", "test")])
            np.testing.assert_array_equal(stored, [s[spec.name] for s in scenes])
        assert ("factors" in f["train"]) == bool(schema.factors)
    ds = HDF5Dataset(out, "train", masks=True, factors=bool(schema.factors))
    assert ds[0]["imgs"].shape == (3, schema.height, schema.width)
    assert ds[0]["masks"].shape == (schema.num_entities, 1, schema.height, schema.width)


def test_multi_dsprites_records_store_masks_height_width_entity(tmp_path, random_scene):
    """The written record really is [H, W, E, 1], checked on the raw bytes."""
    schema = get_schema("multi_dsprites", "colored_on_grayscale")
    scene = random_scene(schema, np.random.default_rng(1))
    raw = decode_example(encode_record(schema, scene))
    stored = one_byte_values(raw["mask"].payload).reshape(64, 64, 6, 1)
    np.testing.assert_array_equal(stored, scene["mask"].transpose(1, 2, 0, 3))


def _clevr_file(tmp_path, random_scene, objects):
    schema = get_schema("clevr_with_masks")
    rng = np.random.default_rng(2)
    scenes = [random_scene(schema, rng, objects=k) for k in objects]
    return schema, scenes, _write(tmp_path, schema, scenes)


def test_clevr6_keeps_images_with_at_most_six_objects(tmp_path, random_scene):
    objects = [3, 6, 7, 5, 10, 6, 2, 9]
    _, scenes, src = _clevr_file(tmp_path, random_scene, objects)
    out = tmp_path / "clevr6.h5"
    summary = convert("clevr_with_masks", src, out, num_train=3, num_test=2, progress=False)
    assert summary.records_read == 7  # stops once both splits are full
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["train/imgs"][:], [scenes[i]["image"] for i in (0, 1, 3)])
        np.testing.assert_array_equal(f["test/imgs"][:], [scenes[i]["image"] for i in (5, 6)])
        # visibility summed over all entities (background included) is at most 7
        assert f["train/factors/visibility"][:].sum(axis=1).max() == 7


def test_clevr10_test_split(tmp_path, random_scene):
    objects = [3, 6, 7, 5, 10, 6, 2, 9]
    _, scenes, src = _clevr_file(tmp_path, random_scene, objects)
    out = tmp_path / "clevr10.h5"
    convert(
        "clevr_with_masks",
        src,
        out,
        num_train=0,
        num_test=3,
        min_objects=7,
        max_objects=10,
        progress=False,
    )
    with h5py.File(out, "r") as f:
        assert f["train/imgs"].shape[0] == 0
        np.testing.assert_array_equal(f["test/imgs"][:], [scenes[i]["image"] for i in (2, 4, 7)])
        np.testing.assert_array_equal(f["test/masks"][:], [scenes[i]["mask"] for i in (2, 4, 7)])
        # 7, 10 and 9 objects: visible entities (background included) 8, 11 and 10.
        np.testing.assert_array_equal(f["test/factors/visibility"][:].sum(axis=1), [8, 11, 10])
        assert (f.attrs["min_objects"], f.attrs["max_objects"]) == (7, 10)


def test_clevr10_from_the_command_line_with_eleven_entities(tmp_path, random_scene):
    """`emorl convert clevr_with_masks --min-objects 7 --max-objects 10`: CLEVR10 for K = 11."""
    objects = [7, 3, 10, 6, 8, 9, 7]
    _, scenes, src = _clevr_file(tmp_path, random_scene, objects)
    out = tmp_path / "clevr10.h5"
    argv = ["convert", "clevr_with_masks", str(src), "--out", str(out), "--num-train", "0"]
    argv += ["--num-test", "5", "--min-objects", "7", "--max-objects", "10", "--no-progress"]
    assert main(argv) == 0
    kept = [i for i, k in enumerate(objects) if 7 <= k <= 10]
    assert kept == [0, 2, 4, 5, 6]
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["test/imgs"][:], [scenes[i]["image"] for i in kept])
    ds = HDF5Dataset(out, "test", masks=True, factors=True)
    assert len(ds) == 5
    for j, i in enumerate(kept):
        item = ds[j]
        assert item["masks"].shape == (11, 1, 240, 320)  # K = 11 slots match 11 entities
        assert int(item["factors"]["visibility"].sum()) == objects[i] + 1


def test_clevr_minimum_above_six_lifts_the_clevr6_maximum(tmp_path, random_scene):
    objects = [3, 7, 10, 6, 9]
    _, scenes, src = _clevr_file(tmp_path, random_scene, objects)
    out = tmp_path / "clevr7plus.h5"
    convert("clevr_with_masks", src, out, num_train=0, num_test=3, min_objects=7, progress=False)
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["test/imgs"][:], [scenes[i]["image"] for i in (1, 2, 4)])
        assert (f.attrs["min_objects"], f.attrs["max_objects"]) == (7, -1)
    # A minimum of at most 6 keeps the CLEVR6 maximum.
    convert("clevr_with_masks", src, out, num_train=0, num_test=1, min_objects=5, progress=False)
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["test/imgs"][:], [scenes[3]["image"]])
        assert f.attrs["max_objects"] == 6


def test_clevr_resize_at_conversion_matches_pil(tmp_path, random_scene):
    _, scenes, src = _clevr_file(tmp_path, random_scene, [4, 5])
    out = tmp_path / "clevr96.h5"
    summary = convert(
        "clevr_with_masks", src, out, num_train=1, num_test=1, resize=96, progress=False
    )
    assert summary.preprocessing == "clevr-crop-resize-96"
    with h5py.File(out, "r") as f:
        img, masks = f["train/imgs"][0], f["train/masks"][0]
    box = (64, 29, 256, 221)  # PIL (left, top, right, bottom), the official crop
    expected = Image.fromarray(scenes[0]["image"]).crop(box).resize((96, 96), Image.BICUBIC)
    np.testing.assert_array_equal(img, np.asarray(expected))
    for e, mask in enumerate(scenes[0]["mask"][..., 0]):
        ref = Image.fromarray(mask).crop(box).resize((96, 96), Image.NEAREST)
        np.testing.assert_array_equal(masks[e, ..., 0], np.asarray(ref))
    with pytest.raises(Exception, match="240x320"):
        HDF5Dataset(out, clevr_preprocess="clevr-small")


def test_too_few_records_is_an_error_and_writes_nothing(tmp_path, real_sample_path):
    out = tmp_path / "t.h5"
    with pytest.raises(ValueError, match="ran out after 10 records"):
        convert("tetrominoes", real_sample_path, out, num_train=9, num_test=5, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_wrong_dataset_names_the_record_and_the_fix(tmp_path, real_sample_path):
    with pytest.raises(RecordError, match=r"record 0: feature 'image' has 3675 values.*--variant"):
        convert("objects_room", real_sample_path, tmp_path / "o.h5", progress=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dataset": "mnist"}, "unknown dataset"),
        ({"variant": "binarized"}, "has no variants"),
        ({"num_train": -1}, "num_train must be >= 0"),
        ({"num_train": 0, "num_test": 0}, "nothing to convert"),
        ({"resize": 96}, "clevr_with_masks only"),
        ({"dataset": "objects_room", "max_objects": 3}, "no visibility factor"),
        ({"min_objects": 3, "max_objects": 2}, "larger than max_objects"),
        ({"max_objects": 4}, r"must be in 0\.\.3"),
    ],
)
def test_bad_arguments_fail_before_reading(tmp_path, kwargs, message):
    args = {"dataset": "tetrominoes", "input_path": tmp_path / "missing.tfrecords"}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        convert(out_path=tmp_path / "o.h5", progress=False, **args)


def test_missing_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        convert("tetrominoes", tmp_path / "nope.tfrecords", tmp_path / "o.h5", progress=False)
