"""Textured Multi-dSprites: the geometry of Multi-dSprites, patterned sprites and background."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from matplotlib.colors import rgb_to_hsv

from pyro_emorl.cli import main
from pyro_emorl.data import default_dataset, generate, generation
from pyro_emorl.data import multi_dsprites as md

N = 160
GEOMETRY = ("x", "y", "shape", "orientation", "scale", "visibility")


@pytest.fixture(scope="module")
def textured():
    return md.sample_textured(np.random.default_rng(11), N)


def _colours(pixels: np.ndarray) -> set[tuple[int, ...]]:
    return {tuple(c) for c in pixels.reshape(-1, 3).tolist()}


def _palette(batch, i: int, k: int) -> set[tuple[int, ...]]:
    count = int(batch["num_colors"][i, k])
    names = ("color", "color2", "color3")[:count]
    return {tuple(np.round(batch[name][i, k] * 255).astype(int).tolist()) for name in names}


def test_layout_and_factor_shapes(textured):
    assert set(textured) == {"imgs", "masks", *md.TEXTURED_FACTOR_SHAPES}
    assert textured["imgs"].shape == (N, 64, 64, 3) and textured["imgs"].dtype == np.uint8
    assert textured["masks"].shape == (N, 6, 64, 64, 1) and textured["masks"].dtype == np.uint8
    for name, shape in md.TEXTURED_FACTOR_SHAPES.items():
        assert textured[name].shape == (N, *shape), name
        assert textured[name].dtype == np.float32, name


def test_masks_partition_the_image_and_entity_0_is_the_background(textured):
    masks = textured["masks"][..., 0]
    assert set(np.unique(masks)) == {0, 255}
    assert ((masks > 0).sum(axis=1) == 1).all()
    np.testing.assert_array_equal(textured["visibility"][:, 0], 1)
    np.testing.assert_array_equal(textured["shape"][:, 0], 0)
    # The background owns the pixels no sprite covers: most of the canvas.
    assert (masks[:, 0] > 0).mean() > 0.5
    present = textured["shape"][:, 1:] > 0
    area = (masks[:, 1:] > 0).sum(axis=(2, 3))
    assert ((area > 0) == present).all()
    assert set(present.sum(axis=1).tolist()) == {2, 3, 4, 5}


def test_geometry_is_that_of_multi_dsprites():
    """The same random state gives the same masks and geometry factors as `md.sample`."""
    plain = md.sample(np.random.default_rng(5), 40)
    textured = md.sample_textured(np.random.default_rng(5), 40)
    np.testing.assert_array_equal(textured["masks"], plain["masks"])
    for name in GEOMETRY:
        np.testing.assert_array_equal(textured[name], plain[name], err_msg=name)
    # A sprite's first pattern colour is the colour Multi-dSprites paints it.
    np.testing.assert_array_equal(textured["color"][:, 1:], plain["color"][:, 1:])
    assert not np.array_equal(textured["imgs"], plain["imgs"])


def test_every_pixel_takes_a_colour_of_its_entitys_palette(textured):
    owner = textured["masks"][..., 0].argmax(axis=1)
    for i in range(N):
        for k in np.unique(owner[i]):
            assert _colours(textured["imgs"][i][owner[i] == k]) <= _palette(textured, i, k)


def test_sprite_pixels_never_share_a_colour_with_the_background(textured):
    masks = textured["masks"][..., 0] > 0
    for i in range(N):
        background = _colours(textured["imgs"][i][masks[i, 0]])
        sprites = _colours(textured["imgs"][i][masks[i, 1:].any(axis=0)])
        assert not background & sprites, i


def test_sprites_are_multi_coloured(textured):
    masks = textured["masks"][..., 0] > 0
    counts, areas = [], []
    for i in range(N):
        for k in range(1, 6):
            if masks[i, k].any():
                counts.append(len(_colours(textured["imgs"][i][masks[i, k]])))
                areas.append(int(masks[i, k].sum()))
    counts, areas = np.array(counts), np.array(areas)
    assert (counts > 1).mean() > 0.95
    assert (counts[areas >= 30] > 1).mean() > 0.98
    assert counts.mean() > 2.2  # 2 or 3 colours each, about 2.5 when the pattern shows them all


def test_background_is_never_a_single_colour(textured):
    masks = textured["masks"][..., 0] > 0
    counts = [len(_colours(textured["imgs"][i][masks[i, 0]])) for i in range(N)]
    assert min(counts) >= 2
    assert np.mean(counts) > 2.2
    # Background colours come from the sprites' distribution: saturated, hues all around.
    hsv = rgb_to_hsv(textured["color"][:, 0])
    assert hsv[:, 1].min() >= 0.5 - 1e-2 and hsv[:, 2].min() >= 0.5 - 1e-2
    assert hsv[:, 0].max() - hsv[:, 0].min() > 0.9


def test_pattern_factors(textured):
    used = np.concatenate([np.ones((N, 1), bool), textured["shape"][:, 1:] > 0], axis=1)
    count = textured["num_colors"]
    assert set(np.unique(count[used]).tolist()) == {2, 3}
    assert set(np.unique(textured["pattern"][used]).tolist()) == {md.STRIPES, md.CHECKS}
    angle = textured["pattern_angle"][used]
    assert angle.min() >= 0 and angle.max() < np.pi
    sprite_band, bg_band = textured["band_width"][:, 1:][used[:, 1:]], textured["band_width"][:, 0]
    assert md.SPRITE_BAND_WIDTH[0] <= sprite_band.min() <= sprite_band.max() <= 4.0
    assert md.BACKGROUND_BAND_WIDTH[0] <= bg_band.min() <= bg_band.max() <= 10.0
    # color3 is set exactly for 3-colour patterns; a palette's colours are distinct.
    np.testing.assert_array_equal(textured["color3"].any(axis=-1), used & (count == 3))
    for i, k in zip(*np.nonzero(used)):
        assert len(_palette(textured, i, k)) == count[i, k]
    # Unused entities are all zero.
    for name in md.TEXTURED_FACTOR_SHAPES:
        assert (textured[name][~used] == 0).all(), name


def test_generate_textured_is_deterministic_and_records_the_variant(tmp_path):
    p1 = generate(
        "multi_dsprites", tmp_path / "a.h5", 6, 4, seed=3, progress=False, variant="textured"
    )
    p2 = generate(
        "multi_dsprites", tmp_path / "b.h5", 2, 4, seed=3, progress=False, variant="textured"
    )
    p3 = generate("multi_dsprites", tmp_path / "c.h5", 0, 4, seed=3, progress=False)
    with h5py.File(p1, "r") as f1, h5py.File(p2, "r") as f2, h5py.File(p3, "r") as f3:
        for key in ("imgs", "masks", "factors/color2", "factors/pattern"):
            np.testing.assert_array_equal(f1[f"test/{key}"][:], f2[f"test/{key}"][:])
        assert f1.attrs["dataset"] == "multi_dsprites" and f1.attrs["variant"] == "textured"
        assert (
            f1.attrs["generator_version"]
            == generation.GENERATOR_VERSIONS[("multi_dsprites", "textured")]
        )
        assert sorted(f1["train/factors"]) == sorted(md.TEXTURED_FACTOR_SHAPES)
        assert f1["train/factors/color"].shape == (6, 6, 3)
        # The default variant is recorded too and has the geometry of the same seed.
        assert f3.attrs["variant"] == "colored_on_grayscale"
        np.testing.assert_array_equal(f3["test/masks"][:], f1["test/masks"][:])
        assert not np.array_equal(f3["test/imgs"][:], f1["test/imgs"][:])


def test_unknown_variants_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown multi_dsprites variant 'binarized'"):
        generate("multi_dsprites", tmp_path / "x.h5", 1, 1, variant="binarized")
    with pytest.raises(ValueError, match="tetrominoes has no variant"):
        generate("tetrominoes", tmp_path / "x.h5", 1, 1, variant="textured")
    with pytest.raises(ValueError, match="unknown multi_dsprites variant"):
        default_dataset("multi_dsprites", cache_dir=tmp_path, variant="stripes")
    assert list(tmp_path.iterdir()) == []


def test_default_dataset_names_the_variant(tmp_path):
    kwargs = {"cache_dir": tmp_path, "num_train": 2, "num_test": 1, "progress": False}
    plain = default_dataset("multi_dsprites", **kwargs)
    textured = default_dataset("multi_dsprites", variant="textured", **kwargs)
    same = default_dataset("multi_dsprites", variant="colored_on_grayscale", **kwargs)
    assert plain.name == "multi_dsprites-v1-train2-test1-seed0.h5" and same == plain
    assert textured.name == "multi_dsprites-textured-v1-train2-test1-seed0.h5"
    with h5py.File(textured, "r") as f:
        assert f.attrs["variant"] == "textured"


def test_generate_command_variant(tmp_path, capsys):
    out = tmp_path / "textured.h5"
    argv = ["generate", "multi_dsprites", "--variant", "textured", "--out", str(out)]
    assert main([*argv, "--num-train", "3", "--num-test", "2", "--no-progress"]) == 0
    assert "train: imgs [3, 64, 64, 3]" in capsys.readouterr().out
    with h5py.File(out, "r") as f:
        assert f.attrs["variant"] == "textured"
        assert "band_width" in f["test/factors"]
    argv = ["generate", "tetrominoes", "--variant", "textured", "--out", str(tmp_path / "t.h5")]
    assert main(argv) == 2
    assert "tetrominoes has no variant" in capsys.readouterr().err
    assert not (tmp_path / "t.h5").exists()
