"""Generator fidelity: Tetrominoes against the real sample, Multi-dSprites against invariants."""

from __future__ import annotations

import itertools

import h5py
import numpy as np
import pytest
from matplotlib.colors import rgb_to_hsv

from pyro_emorl.data import generate
from pyro_emorl.data import multi_dsprites as md
from pyro_emorl.data import tetrominoes as tet


@pytest.fixture(scope="module")
def tetro():
    return tet.sample(np.random.default_rng(123), 1500)


@pytest.fixture(scope="module")
def sprites():
    return md.sample(np.random.default_rng(7), 600)


def _pieces(masks, x, y, shape, color):
    """(object mask [H, W], top, left, shape id, colour) for every piece of every scene."""
    for m, xs, ys, ss, cs in zip(masks, x, y, shape, color):
        for k in range(1, m.shape[0]):
            yield m[k, ..., 0] > 0, int(xs[k]), int(ys[k]), int(ss[k]), tuple(cs[k].astype(int))


def _block_pattern(mask, top, left):
    """The 5x5-block occupancy of a piece, cropped to its bounding box."""
    rows, cols = np.nonzero(mask)
    box = mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    assert (rows.min(), cols.min()) == (top, left)
    return tuple(map(tuple, box[::5, ::5].astype(int)))


def _sample_pieces(real_scenes):
    return list(
        _pieces(
            np.stack([s["mask"] for s in real_scenes]),
            *(np.stack([s[k] for s in real_scenes]) for k in ("x", "y", "shape", "color")),
        )
    )


def _generated_pieces(batch):
    return list(_pieces(batch["masks"], batch["x"], batch["y"], batch["shape"], batch["color"]))


def test_tetrominoes_layout_matches_the_sample(tetro, real_scenes):
    real = real_scenes[0]
    assert tetro["imgs"].shape[1:] == real["image"].shape
    assert tetro["masks"].shape[1:] == real["mask"].shape
    for name in ("x", "y", "shape", "color", "visibility"):
        assert tetro[name].shape[1:] == real[name].shape
        assert tetro[name].dtype == real[name].dtype
    # Background entity factors as in the sample.
    for name in ("x", "y", "shape", "color"):
        assert (tetro[name][:, 0] == real[name][0]).all()
    np.testing.assert_array_equal(tetro["visibility"], 1)


def test_tetrominoes_colour_set_equals_the_sample(tetro, real_scenes):
    real = {c for *_, c in _sample_pieces(real_scenes)}
    generated = {c for *_, c in _generated_pieces(tetro)}
    assert len(real) == 6
    assert generated == real


def test_tetrominoes_pieces_cover_100_pixels_and_partition_the_image(tetro):
    masks = tetro["masks"][..., 0] > 0
    assert (masks.sum(axis=1) == 1).all()
    assert (masks[:, 1:].sum(axis=(2, 3)) == 100).all()
    assert set(np.unique(tetro["masks"])) == {0, 255}
    # Black background.
    assert (tetro["imgs"][masks[:, 0]] == 0).all()


def test_tetrominoes_block_shading_equals_the_sample(tetro, real_scenes):
    def blocks(images, pieces):
        for img, (mask, top, left, _, color) in zip(images, pieces):
            on = np.array(color, dtype=bool)
            for r, c in itertools.product(range(top, 35, 5), range(left, 35, 5)):
                if mask[r : r + 5, c : c + 5].all():
                    px = img[r : r + 5, c : c + 5]
                    assert (px[..., ~on] == 0).all()
                    yield px[..., np.argmax(on)]

    real_imgs = [s["image"] for s in real_scenes for _ in range(3)]
    real_blocks = list(blocks(real_imgs, _sample_pieces(real_scenes)))
    gen_imgs = [img for img in tetro["imgs"][:300] for _ in range(3)]
    gen_blocks = list(blocks(gen_imgs, _generated_pieces({k: v[:300] for k, v in tetro.items()})))
    assert len(gen_blocks) == 300 * 3 * 4
    for block in gen_blocks:
        np.testing.assert_array_equal(block, real_blocks[0])


def test_tetrominoes_shape_ids_have_the_sample_patterns(tetro, real_scenes):
    real = {}
    for mask, top, left, sid, _ in _sample_pieces(real_scenes):
        real.setdefault(sid, set()).add(_block_pattern(mask, top, left))
    generated = {}
    for mask, top, left, sid, _ in _generated_pieces(tetro):
        generated.setdefault(sid, set()).add(_block_pattern(mask, top, left))
    assert set(generated) == set(range(1, 20))
    for sid, patterns in generated.items():
        assert len(patterns) == 1, f"shape id {sid} has several patterns"
        if sid in real:
            assert patterns == real[sid], f"shape id {sid} differs from the real data"


def test_tetrominoes_shapes_are_the_19_fixed_tetrominoes(tetro):
    """Independent of the sample: all rotations of the 7 tetrominoes, each exactly once."""
    base = [
        ["####"],
        ["##", "##"],
        ["###", ".#."],
        [".##", "##."],
        ["##.", ".##"],
        ["###", "#.."],
        ["###", "..#"],
    ]
    fixed = set()
    for rows in base:
        grid = np.array([[c == "#" for c in row] for row in rows])
        for k in range(4):
            fixed.add(tuple(map(tuple, np.rot90(grid, k).astype(int))))
    assert len(fixed) == 19
    generated = {
        _block_pattern(mask, top, left) for mask, top, left, *_ in _generated_pieces(tetro)
    }
    assert generated == fixed


def test_tetrominoes_positions_cover_the_valid_range(tetro, real_scenes):
    """Integer corners, every piece inside the canvas, and every valid corner reachable."""

    def extents(pieces):
        out = []
        for mask, top, left, *_ in pieces:
            rows, cols = np.nonzero(mask)
            out.append((top, left, rows.max() - top + 1, cols.max() - left + 1))
        return np.array(out)

    real = extents(_sample_pieces(real_scenes))
    assert (real[:, 0] + real[:, 2] <= 35).all() and (real[:, 1] + real[:, 3] <= 35).all()
    gen = extents(_generated_pieces(tetro))
    np.testing.assert_array_equal(tetro["x"][:, 1:].ravel(), gen[:, 0])
    for pos, size in ((0, 2), (1, 3)):
        for extent in (5, 10, 15, 20):
            sel = gen[gen[:, size] == extent, pos]
            assert sel.min() == 0 and sel.max() == 35 - extent


def test_generators_are_deterministic(tmp_path):
    a = tet.sample(np.random.default_rng(5), 50)
    b = tet.sample(np.random.default_rng(5), 50)
    c = tet.sample(np.random.default_rng(6), 50)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["imgs"], c["imgs"])
    p1 = generate("multi_dsprites", tmp_path / "a.h5", 30, 10, seed=3, progress=False)
    p2 = generate("multi_dsprites", tmp_path / "b.h5", 12, 10, seed=3, progress=False)
    with h5py.File(p1, "r") as f1, h5py.File(p2, "r") as f2:
        # The test split does not depend on the number of training images.
        np.testing.assert_array_equal(f1["test/imgs"][:], f2["test/imgs"][:])
        np.testing.assert_array_equal(f1["test/masks"][:], f2["test/masks"][:])


def test_multi_dsprites_masks_partition_the_image(sprites):
    masks = sprites["masks"][..., 0]
    assert sprites["masks"].shape[1:] == (6, 64, 64, 1)
    assert set(np.unique(masks)) == {0, 255}
    assert ((masks > 0).sum(axis=1) == 1).all()


def test_multi_dsprites_two_to_five_visible_sprites(sprites):
    present = sprites["shape"][:, 1:] > 0
    count = present.sum(axis=1)
    assert count.min() == 2 and count.max() == 5
    assert set(np.unique(count)) == {2, 3, 4, 5}
    # Every listed sprite is visible, unused slots are empty, and visibility says so.
    area = (sprites["masks"][:, 1:, ..., 0] > 0).sum(axis=(2, 3))
    assert ((area > 0) == present).all()
    np.testing.assert_array_equal(sprites["visibility"][:, 1:], present)
    np.testing.assert_array_equal(sprites["visibility"][:, 0], 1)


def test_multi_dsprites_factors_on_the_dsprites_grids(sprites):
    present = sprites["shape"][:, 1:] > 0
    grids = {
        "scale": np.linspace(0.5, 1, 6),
        "orientation": np.linspace(0, 2 * np.pi, 40),
        "x": np.linspace(0, 1, 32),
        "y": np.linspace(0, 1, 32),
    }
    for name, grid in grids.items():
        values = sprites[name][:, 1:][present]
        dist = np.abs(values[:, None] - grid[None, :]).min(axis=1)
        assert dist.max() < 1e-6, name
        assert (sprites[name][:, 1:][~present] == 0).all()
        assert (sprites[name][:, 0] == 0).all()
    assert set(np.unique(sprites["shape"][:, 1:][present])) == {1, 2, 3}


def test_multi_dsprites_colours(sprites):
    imgs = sprites["imgs"].astype(int)
    owner = sprites["masks"][..., 0].argmax(axis=1)
    for i in range(len(imgs)):
        for k in np.unique(owner[i]):
            pixels = imgs[i][owner[i] == k]
            expected = np.round(sprites["color"][i, k] * 255).astype(int)
            assert (pixels == expected).all()
        bg = sprites["color"][i, 0]
        assert bg[0] == bg[1] == bg[2]
    hsv = rgb_to_hsv(sprites["color"][:, 1:][sprites["shape"][:, 1:] > 0])
    assert hsv[:, 1].min() >= 0.5 - 1e-2 and hsv[:, 2].min() >= 0.5 - 1e-2
    assert hsv[:, 0].max() - hsv[:, 0].min() > 0.9  # hues all around the circle


def test_multi_dsprites_occlusion_in_paint_order(sprites):
    """A later sprite is never occluded by an earlier one (its mask is its full shape)."""
    safe = np.where(sprites["shape"][:, 1:] > 0, sprites["scale"][:, 1:], 1.0)
    full = md._inside(
        sprites["shape"][:, 1:].astype(int),
        sprites["x"][:, 1:],
        sprites["y"][:, 1:],
        safe,
        sprites["orientation"][:, 1:],
    )
    visible = sprites["masks"][:, 1:, ..., 0] > 0
    last = (sprites["shape"][:, 1:] > 0).sum(axis=1) - 1
    rows = np.arange(len(last))
    np.testing.assert_array_equal(visible[rows, last], full[rows, last])
    assert (visible <= full).all()
    # Somewhere an earlier sprite really is occluded.
    assert (visible < full).any()


def test_generate_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown generator"):
        generate("clevr", tmp_path / "x.h5", 1, 1)
    with pytest.raises(ValueError, match="num_train must be a non-negative integer"):
        generate("tetrominoes", tmp_path / "x.h5", -1, 1)
    with pytest.raises(ValueError, match="seed"):
        generate("tetrominoes", tmp_path / "x.h5", 1, 1, seed=-2)
    assert list(tmp_path.iterdir()) == []
