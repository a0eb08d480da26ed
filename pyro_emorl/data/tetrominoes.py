"""A vectorised generator of Tetrominoes scenes matching DeepMind's released data.

Every detail below was read off the real records (``shared/fixtures/real``):

* 35x35 RGB, black background, exactly 3 pieces, 4 entities (background first).
* A piece is 4 blocks of 5x5 pixels. Each block carries the same bevel shading: the colour's
  channels take the values of `BLOCK_SHADING` (0..255) and the other channels are 0.
* Colours are the 6 fully saturated RGB colours of `COLORS`; repeats within a scene occur.
* The 19 fixed shapes have ids 1..19 (`SHAPES`, block patterns row by row).
* Pieces lie fully inside the canvas at integer positions, never overlap (they may touch), so
  every object mask covers exactly 100 pixels and the masks partition the image.
* Factors: ``x`` = top row and ``y`` = left column of the piece's bounding box (that is, x is
  the vertical coordinate), ``shape`` = id, ``color`` = RGB in {0, 1}, ``visibility`` = 1 for
  all 4 entities. The background entity has x = y = shape = 0 and colour (0, 0, 0).

Shape ids 1, 4 and 8 do not occur in the 10-record sample; their patterns are inferred from the
id order of the others (ids group by piece type and bounding box) and documented in
``docs/datasets.md``. Sampling choices the sample cannot show (uniform shape, colour and
position, whole-scene rejection of overlaps) are documented there too.
"""

from __future__ import annotations

import numpy as np

HEIGHT = WIDTH = 35
NUM_PIECES = 3
NUM_ENTITIES = NUM_PIECES + 1
BLOCK = 5

# Block patterns (rows of 5x5 blocks) by shape id.
SHAPES: dict[int, tuple[str, ...]] = {
    1: ("####",),  # inferred: not in the sample
    2: ("#", "#", "#", "#"),
    3: ("###", "#.."),
    4: ("#..", "###"),  # inferred: not in the sample
    5: ("..#", "###"),
    6: ("###", "..#"),
    7: ("##", ".#", ".#"),
    8: (".#", ".#", "##"),  # inferred: not in the sample
    9: ("##", "#.", "#."),
    10: ("#.", "#.", "##"),
    11: ("##.", ".##"),
    12: (".##", "##."),
    13: (".#", "##", "#."),
    14: ("#.", "##", ".#"),
    15: (".#.", "###"),
    16: ("###", ".#."),
    17: (".#", "##", ".#"),
    18: ("#.", "##", "#."),
    19: ("##", "##"),
}

# Intensity of a coloured channel inside one 5x5 block (light top/left edges, dark bottom).
BLOCK_SHADING = np.array(
    [
        [191, 255, 255, 255, 223],
        [127, 159, 159, 159, 191],
        [127, 159, 159, 159, 191],
        [127, 159, 159, 159, 191],
        [95, 63, 63, 63, 127],
    ],
    dtype=np.uint8,
)

COLORS = np.array(
    [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], dtype=np.float32
)

FACTOR_SHAPES: dict[str, tuple[int, ...]] = {
    "x": (NUM_ENTITIES,),
    "y": (NUM_ENTITIES,),
    "shape": (NUM_ENTITIES,),
    "color": (NUM_ENTITIES, 3),
    "visibility": (NUM_ENTITIES,),
}

_STAMP = 4 * BLOCK  # every piece fits a 20x20 stamp


def _stamps() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shaded intensity stamps [20, 20, 20] (index = shape id; 0 is empty) and piece sizes."""
    stamps = np.zeros((len(SHAPES) + 1, _STAMP, _STAMP), dtype=np.uint8)
    heights = np.zeros(len(SHAPES) + 1, dtype=np.int64)
    widths = np.zeros(len(SHAPES) + 1, dtype=np.int64)
    for shape_id, rows in SHAPES.items():
        pattern = np.array([[c == "#" for c in row] for row in rows])
        blocks = np.kron(pattern, np.ones((BLOCK, BLOCK), dtype=bool))
        shaded = np.where(blocks, np.tile(BLOCK_SHADING, pattern.shape), 0)
        stamps[shape_id, : blocks.shape[0], : blocks.shape[1]] = shaded
        heights[shape_id], widths[shape_id] = blocks.shape
    return stamps, heights, widths


def _draw_pieces(
    rng: np.random.Generator, n: int, heights: np.ndarray, widths: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shape ids, rows and columns [n, 3] of uniformly placed pieces (overlaps not yet removed)."""
    shape = rng.integers(1, len(SHAPES) + 1, size=(n, NUM_PIECES))
    # Uniform integer top-left corner with the whole piece inside the canvas.
    row = np.floor(rng.random((n, NUM_PIECES)) * (HEIGHT - heights[shape] + 1)).astype(np.int64)
    col = np.floor(rng.random((n, NUM_PIECES)) * (WIDTH - widths[shape] + 1)).astype(np.int64)
    return shape, row, col


def _render(stamps: np.ndarray, shape: np.ndarray, row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """Per-piece intensity canvases [n, 3, 35, 35] uint8 (0 outside the piece)."""
    n = shape.shape[0]
    # Pad so that a 20x20 stamp at any valid corner fits, then crop back.
    canvas = np.zeros((n, NUM_PIECES, HEIGHT + _STAMP, WIDTH + _STAMP), dtype=np.uint8)
    offs = np.arange(_STAMP)
    b = np.arange(n)[:, None, None, None]
    p = np.arange(NUM_PIECES)[None, :, None, None]
    rr = row[:, :, None, None] + offs[None, None, :, None]
    cc = col[:, :, None, None] + offs[None, None, None, :]
    canvas[b, p, rr, cc] = stamps[shape]
    return canvas[:, :, :HEIGHT, :WIDTH]


def sample(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Draw ``n`` Tetrominoes scenes.

    Scenes whose pieces overlap are redrawn as a whole, so placements are uniform over all
    non-overlapping configurations.

    Args:
        rng: Source of randomness; the output is a deterministic function of its state.
        n: Number of scenes.

    Returns:
        ``imgs`` uint8 [n, 35, 35, 3]; ``masks`` uint8 [n, 4, 35, 35, 1] with values 0/255
        (entity 0 = background); factors ``x``, ``y``, ``shape``, ``visibility`` float32 [n, 4]
        and ``color`` float32 [n, 4, 3].
    """
    stamps, heights, widths = _stamps()
    shape = np.zeros((n, NUM_PIECES), dtype=np.int64)
    row = np.zeros_like(shape)
    col = np.zeros_like(shape)
    todo = np.arange(n)
    while todo.size:
        s, r, c = _draw_pieces(rng, todo.size, heights, widths)
        overlap = ((_render(stamps, s, r, c) > 0).sum(axis=1) > 1).any(axis=(1, 2))
        ok = ~overlap
        shape[todo[ok]], row[todo[ok]], col[todo[ok]] = s[ok], r[ok], c[ok]
        todo = todo[overlap]
    color_idx = rng.integers(0, len(COLORS), size=(n, NUM_PIECES))
    pieces = _render(stamps, shape, row, col)  # [n, 3, H, W]
    color = COLORS[color_idx]  # [n, 3, 3]
    imgs = (pieces[..., None] * color[:, :, None, None, :].astype(np.uint8)).sum(
        axis=1, dtype=np.uint8
    )
    fg = pieces > 0
    masks = np.concatenate([~fg.any(axis=1, keepdims=True), fg], axis=1)
    masks = (masks.astype(np.uint8) * 255)[..., None]
    zeros = np.zeros((n, 1), dtype=np.float32)
    return {
        "imgs": imgs,
        "masks": masks,
        "x": np.concatenate([zeros, row.astype(np.float32)], axis=1),
        "y": np.concatenate([zeros, col.astype(np.float32)], axis=1),
        "shape": np.concatenate([zeros, shape.astype(np.float32)], axis=1),
        "color": np.concatenate([np.zeros((n, 1, 3), np.float32), color], axis=1),
        "visibility": np.ones((n, NUM_ENTITIES), dtype=np.float32),
    }
