"""ClevrTex: the release layout read as the official loader does, conversion, CLI, preset."""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

import pyro_emorl as pe
from pyro_emorl.cli import main
from pyro_emorl.data import HDF5Dataset, convert_clevrtex
from pyro_emorl.data import clevrtex as ctx
from pyro_emorl.data.atomic import temporaries
from pyro_emorl.data.errors import DataFormatError

# The generator's palette (clevrtex-gen/img_utils.py of karazijal/clevrtex-generation).
CMAP = [
    [0, 0, 0], [255, 0, 0], [0, 128, 0], [0, 0, 255], [255, 255, 0], [141, 211, 199],
    [255, 255, 179], [190, 186, 218], [251, 128, 114], [128, 177, 211], [253, 180, 98],
    [179, 222, 105], [252, 205, 229], [217, 217, 217],
]  # fmt: skip
OBJECT_COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]


def _objects(index: int) -> list[tuple[int, int, int, int]]:
    """Object boxes (row0, row1, col0, col1) in full-image coordinates. The crop starts at row
    24, column 64 and is 192 wide (192 -> 128 divides by 1.5). Object 1 moves right by 3 pixels
    per scene (2 output pixels); object 3 (odd scenes) lies outside the crop (rows 0:20)."""
    shift = 3 * (index % 5)
    boxes = [
        (24 + 30, 24 + 60, 64 + shift, 64 + 45 + shift),
        (24 + 90, 24 + 150, 64 + 99, 64 + 150),
    ]
    if index % 2:
        boxes.append((0, 20, 0, 40))
    return boxes


def _expected_labels(index: int) -> np.ndarray:
    """The 128x128 label map, worked out by hand: a crop row/column c lands on output pixels
    x with c0 <= floor(1.5 x + 0.75) < c1, i.e. [c0 / 1.5, c1 / 1.5) for multiples of 3."""
    shift = 2 * (index % 5)
    labels = np.zeros((128, 128), dtype=np.uint8)
    labels[20:40, shift : 30 + shift] = 1
    labels[60:100, 66:100] = 2
    return labels


def _save_mask(labels: np.ndarray, path: Path) -> None:
    """Save the labels as the generator's collect_object_masks does (a palette PNG)."""
    palette = Image.new("P", (16, 16))
    palette.putpalette(np.array(CMAP).flatten().tolist() * 4)
    palette.load()  # newer Pillow attaches the palette to the core image only on load
    mask = Image.fromarray(labels).convert("L")
    mask.load()
    mask._new(mask.im.convert("P", 0, palette.im)).save(path)


def write_scene(folder: Path, variant: str, index: int, alpha: int = 255) -> None:
    """One scene of the release: RGBA 240x320 image, palette mask, metadata."""
    sub = folder / str(index // 4)  # the release has 1,000 scenes per folder; 4 is enough here
    sub.mkdir(parents=True, exist_ok=True)
    stem = sub / f"CLEVRTEX_{variant}_{index:06d}"
    rgba = np.zeros((240, 320, 4), dtype=np.uint8)
    rgba[..., :3] = (index, 100, 150)  # the background's red channel names the scene
    rgba[..., 3] = 255
    labels = np.zeros((240, 320), dtype=np.uint8)
    boxes = _objects(index)
    for k, (r0, r1, c0, c1) in enumerate(boxes, 1):
        labels[r0:r1, c0:c1] = k
        rgba[r0:r1, c0:c1, :3] = OBJECT_COLOURS[k - 1]
    rgba[150:170, 200:230, 3] = alpha
    Image.fromarray(rgba).save(f"{stem}.png")
    _save_mask(labels, Path(f"{stem}_flat.png"))
    objects = [{"shape": "cube", "size": "large", "material": "Marble", "rotation": 1.0}]
    meta = {"num_objects": len(boxes), "ground_material": "Rug", "objects": objects * len(boxes)}
    Path(f"{stem}.json").write_text(json.dumps(meta))


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """20 scenes of the full variant (test 0-1, val 2-3, train 4-19)."""
    root = tmp_path_factory.mktemp("release")
    for index in range(20):
        write_scene(root / "clevrtex_full", "full", index, alpha=128 if index == 5 else 255)
    return root


@pytest.fixture(scope="module")
def converted(release, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("h5") / "clevrtex.h5"
    summary = convert_clevrtex(release, out, progress=False)
    assert summary.counts == {"train": 16, "val": 2, "test": 2}
    assert summary.records_read == 20
    return out


def official_item(image_path: Path, mask_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """CLEVRTEX.__getitem__ of clevrtex_eval.py (crop=True, resize=(128, 128)), restated with
    torchvision's to_tensor spelled out (uint8 HWC -> float CHW / 255)."""
    img = Image.open(image_path)
    msk = Image.open(mask_path)
    crop_size = int(0.8 * float(min(img.width, img.height)))
    img = img.crop(
        (
            (img.width - crop_size) // 2,
            (img.height - crop_size) // 2,
            (img.width + crop_size) // 2,
            (img.height + crop_size) // 2,
        )
    )
    msk = msk.crop(
        (
            (msk.width - crop_size) // 2,
            (msk.height - crop_size) // 2,
            (msk.width + crop_size) // 2,
            (msk.height + crop_size) // 2,
        )
    )
    img = img.resize((128, 128), resample=Image.BILINEAR)
    msk = msk.resize((128, 128), resample=Image.NEAREST)
    pixels = np.array(img)[..., :3]
    img = torch.from_numpy(pixels.transpose((2, 0, 1))).contiguous().to(torch.float32).div(255)
    msk = torch.from_numpy(np.array(msk))[None]
    return img, msk


def test_split_ranges_are_the_official_fractions():
    # int(0.1 * N), int(0.2 * N): test, then val, then train.
    assert ctx.split_range(50_000, "test") == range(0, 5_000)
    assert ctx.split_range(50_000, "val") == range(5_000, 10_000)
    assert ctx.split_range(50_000, "train") == range(10_000, 50_000)
    assert [ctx.split_range(7, s) for s in ("test", "val", "train")] == [
        range(0, 0),
        range(0, 1),
        range(1, 7),
    ]
    with pytest.raises(ValueError, match="unknown ClevrTex split 'dev'"):
        ctx.split_range(10, "dev")


def test_conversion_crops_resizes_and_labels_by_hand(converted):
    with h5py.File(converted, "r") as f:
        assert f.attrs["dataset"] == "clevrtex" and f.attrs["variant"] == "full"
        assert f.attrs["preprocessing"] == "clevrtex-crop-resize-128"
        for split, scenes in (("test", [0, 1]), ("val", [2, 3]), ("train", list(range(4, 20)))):
            group = f[split]
            assert group["imgs"].shape == (len(scenes), 128, 128, 3)
            assert group["masks"].shape == (len(scenes), 11, 128, 128, 1)
            # The background's red channel is the scene index: splits are index ranges.
            np.testing.assert_array_equal(group["imgs"][:, 120, 120, 0], scenes)
            for row, index in enumerate(scenes):
                masks = group["masks"][row, :, :, :, 0]
                assert set(np.unique(masks)) <= {0, 255}
                np.testing.assert_array_equal(masks.argmax(0), _expected_labels(index))
                assert (masks.sum(0) == 255).all()  # a partition
                # Object 3 (odd scenes) is outside the crop: listed, visible 1, empty mask.
                listed = 3 if index % 2 else 2
                expected = [1.0] * (listed + 1) + [0.0] * (10 - listed)
                np.testing.assert_array_equal(group["factors/visibility"][row], expected)
                assert not masks[3].any()
            # Bilinear resizing keeps constant regions: object 1's colour inside its box.
            np.testing.assert_array_equal(group["imgs"][0, 30, 15], OBJECT_COLOURS[0])


def test_converted_items_equal_the_official_loader(release, converted):
    folder = release / "clevrtex_full"
    for split, first in (("test", 0), ("train", 4)):
        dataset = HDF5Dataset(converted, split=split, masks=True)
        for row in range(2):
            index = first + row
            stem = folder / str(index // 4) / f"CLEVRTEX_full_{index:06d}"
            img, msk = official_item(Path(f"{stem}.png"), Path(f"{stem}_flat.png"))
            item = dataset[row]
            torch.testing.assert_close(item["imgs"], img, rtol=0, atol=0)
            labels = item["masks"][:, 0].argmax(0)
            torch.testing.assert_close(labels, msk[0].long(), rtol=0, atol=0)
    # Scene 5 is half transparent in a patch: RGBA is resized as PIL does, then alpha dropped.
    stem = folder / "1" / "CLEVRTEX_full_000005"
    img, _ = official_item(Path(f"{stem}.png"), Path(f"{stem}_flat.png"))
    torch.testing.assert_close(HDF5Dataset(converted, split="train")[1]["imgs"], img)


def test_one_split_and_the_unsplit_outd_variant(release, tmp_path):
    out = tmp_path / "val.h5"
    assert convert_clevrtex(release, out, split="val", progress=False).counts == {"val": 2}
    with h5py.File(out, "r") as f:
        assert list(f) == ["val"]
    # The variant folder itself is accepted too.
    outd = tmp_path / "release" / "clevrtex_outd"
    for index in range(3):
        write_scene(outd, "outd", index)
    summary = convert_clevrtex(outd, tmp_path / "outd.h5", variant="outd", progress=False)
    assert summary.counts == {"test": 3}
    with pytest.raises(ValueError, match="outd variant has no splits"):
        convert_clevrtex(outd.parent, tmp_path / "x.h5", split="train", variant="outd")


def _broken_release(tmp_path: Path, n: int = 3) -> Path:
    folder = tmp_path / "clevrtex_full"
    for index in range(n):
        write_scene(folder, "full", index)
    return folder


def _stem(folder: Path, index: int) -> Path:
    return folder / str(index // 4) / f"CLEVRTEX_full_{index:06d}"


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (
            lambda f: Path(f"{_stem(f, 1)}_flat.png").unlink(),
            r"scene 1 has no CLEVRTEX_full_000001_flat\.png beside",
        ),
        (lambda f: Path(f"{_stem(f, 2)}.json").unlink(), r"scene 2 has no .*\.json"),
        (lambda f: Path(f"{_stem(f, 1)}.png").unlink(), r"lacks 1 of the scenes 0\.\.2 \(1\)"),
        (
            lambda f: write_scene(f / "extra", "full", 2),
            "scene 2 appears twice",
        ),
        (lambda f: Path(f"{_stem(f, 0)}.json").write_text("[1, 2]"), "not ClevrTex metadata"),
        (
            lambda f: Image.new("RGB", (320, 240)).save(f"{_stem(f, 0)}_flat.png"),
            "has PIL mode RGB; ClevrTex masks are palette images",
        ),
        (
            lambda f: Image.new("L", (100, 100)).save(f"{_stem(f, 0)}.png"),
            "has PIL mode L; ClevrTex images are RGBA",
        ),
        (
            lambda f: Image.new("P", (300, 200)).save(f"{_stem(f, 0)}_flat.png"),
            "is 200x300 but",
        ),
        (
            lambda f: Path(f"{_stem(f, 0)}.json").write_text(json.dumps({"objects": [{}]})),
            "holds entity 2 but CLEVRTEX_full_000000.json lists 1 objects",
        ),
        (lambda f: Path(f"{_stem(f, 0)}.png").write_bytes(b"not a png"), "cannot read"),
    ],
)
def test_damaged_releases_are_named(tmp_path, damage, match):
    folder = _broken_release(tmp_path)
    damage(folder)
    out = tmp_path / "out.h5"
    with pytest.raises(DataFormatError, match=match):
        convert_clevrtex(folder.parent, out, split="train", progress=False)
    assert not out.exists() and not temporaries(tmp_path)


def test_missing_and_wrong_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="ClevrTex folder not found"):
        convert_clevrtex(tmp_path / "nope", tmp_path / "x.h5")
    with pytest.raises(DataFormatError, match="has no clevrtex_full/ folder"):
        convert_clevrtex(tmp_path, tmp_path / "x.h5")
    (tmp_path / "clevrtex_full").mkdir()
    with pytest.raises(DataFormatError, match="no CLEVRTEX_full_NNNNNN.png scenes"):
        convert_clevrtex(tmp_path, tmp_path / "x.h5")
    with pytest.raises(ValueError, match="unknown ClevrTex variant 'textured'"):
        convert_clevrtex(tmp_path, tmp_path / "x.h5", variant="textured")
    _broken_release(tmp_path, n=3)  # 3 scenes: int(0.3) = 0 test scenes
    with pytest.raises(DataFormatError, match="3 scenes leave the test split empty"):
        convert_clevrtex(tmp_path, tmp_path / "x.h5", split="test")


def test_convert_command(release, tmp_path, capsys):
    out = tmp_path / "c.h5"
    assert main(["convert", "clevrtex", str(release), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "from 20 clevrtex/full scenes" in printed
    assert "test: imgs [2, 128, 128, 3], masks [2, 11, 128, 128, 1], factors visibility" in printed
    for argv, message in [
        ([str(release), "--out", str(out)], "exists: pass --overwrite"),
        ([str(release), "--out", str(release)], "is also an input"),
        ([str(release), "--out", str(tmp_path / "n.h5"), "--num-test", "3"], "--num-test: "),
        ([str(tmp_path / "none"), "--out", str(tmp_path / "n.h5")], "ClevrTex folder not found"),
        ([str(tmp_path), "--out", str(tmp_path / "n.h5")], "has no clevrtex_full/ folder"),
    ]:
        assert main(["convert", "clevrtex", *argv, "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("emorl convert: error:") and message in err, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    argv = ["convert", "tetrominoes", "x.tfrecords", "--out", str(tmp_path / "t.h5")]
    assert main([*argv, "--split", "test"]) == 2
    assert "--split applies to clevrtex only" in capsys.readouterr().err
    assert not (tmp_path / "n.h5").exists() and not (tmp_path / "t.h5").exists()
    argv = ["convert", "clevrtex", str(release), "--out", str(out), "--overwrite"]
    assert main([*argv, "--split", "test", "--no-progress"]) == 0
    with h5py.File(out, "r") as f:
        assert list(f) == ["test"]


# configs/train/clevrtex/EMORL.json of pemami4911/EfficientMORL (commit 67939f0); the test
# config configs/test/clevrtex/clevrtex/EMORL.json adds "refinement_iters": 2.
OFFICIAL_TRAIN_JSON = """
{"Net": {"K": 11, "input_size": [3, 128, 128], "image_likelihood": "GMM", "z_size": 64,
         "image_decoder": "iodine", "stochastic_layers": 3, "log_scale": -2.3025859,
         "bottom_up_prior": false, "reverse_prior_plusplus": true, "use_DualGRU": true},
 "training": {"batch_size": 32, "kl_beta_init": 1, "use_geco": true, "use_scheduler": true,
              "geco_beta_stepsize": 1e-06, "geco_ema_alpha": 0.99,
              "geco_reconstruction_target": -1.5, "geco_step_size_acceleration": 5,
              "iters": 300000, "refinement_curriculum": [[-1, 3], [100000, 2], [200000, 2]],
              "lr": 0.0004, "clip_grad_norm": true}}
"""


def test_clevrtex_preset_is_the_official_config():
    official = json.loads(OFFICIAL_TRAIN_JSON)
    train = official["training"]
    preset = pe.presets.get("clevrtex")
    geco = {"target_per_element": train["geco_reconstruction_target"]}
    from_json = pe.EMORLConfig.from_official(
        {**official["Net"], "refinement_iters": 2, "geco": geco}
    )
    for name in ("image_shape", "num_slots", "z_dim", "num_layers", "refinement_steps"):
        assert getattr(preset, name) == getattr(from_json, name), name
    for name in ("decoder", "likelihood", "prior", "dual_gru", "kl_beta"):
        assert getattr(preset, name) == getattr(from_json, name), name
    # The JSON writes ln 0.1 = -2.30258509 as -2.3025859 (4e-7 off); the presets use ln 0.1.
    assert preset.log_scale == math.log(0.1)
    assert math.isclose(preset.log_scale, official["Net"]["log_scale"], rel_tol=1e-6)
    assert preset.geco.target_per_element == -1.5 and preset.geco.convention == "official"
    assert preset.geco.speedup == train["geco_step_size_acceleration"]
    assert preset.geco.step_size == train["geco_beta_stepsize"]
    assert preset.geco.ema_decay == train["geco_ema_alpha"]
    assert preset.training.steps == train["iters"]
    assert preset.training.batch_size == train["batch_size"]
    assert preset.training.lr == train["lr"] and preset.training.clip_grad_norm == 5.0
    assert [list(p) for p in preset.training.curriculum] == train["refinement_curriculum"]
    # Identical to the CLEVR 128x128 recipe but for the GECO target.
    assert preset.replace(geco={"target_per_element": -2.1}) == pe.presets.clevr6_128(
        training={"curriculum": preset.training.curriculum}
    )
    assert "clevrtex" in pe.presets.names()


def _checkpoint(path: Path) -> Path:
    """A tiny model of 128x128 images in the layout ``emorl train`` writes."""
    config = pe.EMORLConfig(
        image_shape=(3, 128, 128), num_slots=4, z_dim=8, num_layers=1, refinement_steps=0,
        decoder="small",
    )  # fmt: skip
    torch.manual_seed(0)
    model, guide = pe.build(config)
    with torch.no_grad():
        for p in list(model.parameters()) + list(guide.parameters()):
            p.add_(0.05 * torch.randn_like(p))
    state = {"format": 1, "config": config.to_dict()}
    torch.save({**state, "model": model.state_dict(), "guide": guide.state_dict()}, path)
    return path


def test_evaluate_reports_the_clevrtex_metrics_for_clevrtex_files(converted, tmp_path, capsys):
    checkpoint = _checkpoint(tmp_path / "step-00000001.pt")
    out = tmp_path / "results.json"
    args = [str(checkpoint), "--data", str(converted), "--out", str(out), "--no-progress"]
    assert main(["evaluate", *args]) == 0
    table = capsys.readouterr().out
    results = json.loads(out.read_text())
    for name in ("fg_ari", "miou", "count_acc", "dice", "dice_fg"):
        assert len(results["per_image"][name]) == 2, name
        assert name in table
    assert set(results["per_image"]["count_acc"]) <= {0.0, 1.0}
    assert all(0 <= v <= 1 for v in results["per_image"]["dice"])
