"""A vectorised generator of Multi-dSprites scenes (the ``colored_on_grayscale`` variant).

What the public descriptions fix (Multi-Object Datasets README, IODINE paper, dSprites README):
64x64 RGB; 2-5 sprites, each a square, ellipse or heart; dSprites' factor grids (scale: 6 values
in [0.5, 1], orientation: 40 values in [0, 2 pi], x and y: 32 values in [0, 1]); a random colour
per sprite; a random grey background; sprites painted in order so later ones occlude earlier
ones; masks of the visible parts; 6 entities (background + up to 5 sprites); factors x, y,
shape, color, orientation, scale, visibility.

What they leave open is chosen here and written down in ``docs/datasets.md``: the sprite
geometry (sizes, the heart curve, the margin between the position grid and the border), the
colour distribution (hue uniform, saturation and value uniform in [0.5, 1]), the grey level
(uniform over 0..255), and that a scene in which a sprite ends up completely hidden is redrawn,
so every listed sprite is visible.

Conventions: ``x`` is horizontal (column), ``y`` vertical (row), both on the dSprites grid;
``shape`` is 1 = square, 2 = ellipse, 3 = heart (dSprites' values), 0 for the background and for
unused entities; ``color`` is the rendered RGB in [0, 1] (exactly the pixel value / 255); the
background entity has colour (g, g, g) and visibility 1; unused entities are all zero.
"""

from __future__ import annotations

import numpy as np
from matplotlib.colors import hsv_to_rgb

HEIGHT = WIDTH = 64
MAX_SPRITES = 5
MIN_SPRITES = 2
NUM_ENTITIES = MAX_SPRITES + 1

SCALES = np.linspace(0.5, 1.0, 6, dtype=np.float32)
ORIENTATIONS = np.linspace(0.0, 2 * np.pi, 40, dtype=np.float32)
POSITIONS = np.linspace(0.0, 1.0, 32, dtype=np.float32)
SHAPE_NAMES = {1: "square", 2: "ellipse", 3: "heart"}

# Geometry (a choice; see the module docstring). Sprite centres span [MARGIN, 1 - MARGIN] of the
# canvas and every shape lies in a disc of radius RADIUS * scale around its centre, whatever its
# orientation, so MARGIN > RADIUS keeps every sprite fully inside the canvas.
MARGIN = 0.17
RADIUS = 0.16
ELLIPSE_AXES = (1.0, 0.5)
# The heart (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0 spans about [-1.14, 1.14] x [-1, 1.24]; this maps
# it into the unit disc around the sprite centre.
HEART_SCALE = 1.3
HEART_SHIFT = 0.12
# Side of the square window evaluated around each sprite: its disc plus a pixel to spare.
_WINDOW = 2 * int(np.ceil(RADIUS * WIDTH)) + 2
SATURATION_RANGE = (0.5, 1.0)
VALUE_RANGE = (0.5, 1.0)

FACTOR_SHAPES: dict[str, tuple[int, ...]] = {
    "x": (NUM_ENTITIES,),
    "y": (NUM_ENTITIES,),
    "shape": (NUM_ENTITIES,),
    "color": (NUM_ENTITIES, 3),
    "orientation": (NUM_ENTITIES,),
    "scale": (NUM_ENTITIES,),
    "visibility": (NUM_ENTITIES,),
}


def _inside(
    shape: np.ndarray, x: np.ndarray, y: np.ndarray, scale: np.ndarray, theta: np.ndarray
) -> np.ndarray:
    """Which pixels each sprite covers.

    Args:
        shape: Sprite shape ids [n, S] (0 = no sprite).
        x: Horizontal grid positions in [0, 1], [n, S].
        y: Vertical grid positions in [0, 1], [n, S].
        scale: Scales [n, S] (any positive value where there is no sprite).
        theta: Orientations in radians [n, S].

    Returns:
        bool [n, S, 64, 64].
    """
    n, slots = shape.shape
    cx = (MARGIN + (1 - 2 * MARGIN) * x) * WIDTH  # sprite centres in pixel units
    cy = (MARGIN + (1 - 2 * MARGIN) * y) * HEIGHT
    radius = RADIUS * WIDTH * scale
    # Only a window around each sprite is evaluated (8x fewer pixels than the whole canvas).
    offs = np.arange(_WINDOW)
    rows = np.floor(cy).astype(np.int64)[..., None] - _WINDOW // 2 + offs  # [n, S, win]
    cols = np.floor(cx).astype(np.int64)[..., None] - _WINDOW // 2 + offs
    dy = ((rows + 0.5 - cy[..., None]) / radius[..., None])[..., :, None]
    dx = ((cols + 0.5 - cx[..., None]) / radius[..., None])[..., None, :]
    cos, sin = np.cos(theta)[..., None, None], np.sin(theta)[..., None, None]
    # Sprite-frame coordinates: rotate the offset by -theta.
    u = cos * dx + sin * dy
    v = -sin * dx + cos * dy
    square = np.maximum(np.abs(u), np.abs(v)) <= 1 / np.sqrt(2)
    ellipse = (u / ELLIPSE_AXES[0]) ** 2 + (v / ELLIPSE_AXES[1]) ** 2 <= 1
    hu, hv = u * HEART_SCALE, HEART_SHIFT - v * HEART_SCALE
    heart = (hu**2 + hv**2 - 1) ** 3 - hu**2 * hv**3 <= 0
    s = shape[..., None, None]
    local = np.where(s == 1, square, np.where(s == 2, ellipse, (s == 3) & heart))
    # Paste the windows into a padded canvas, then crop the padding away.
    canvas = np.zeros((n, slots, HEIGHT + 2 * _WINDOW, WIDTH + 2 * _WINDOW), dtype=bool)
    b = np.arange(n)[:, None, None, None]
    k = np.arange(slots)[None, :, None, None]
    canvas[b, k, rows[..., :, None] + _WINDOW, cols[..., None, :] + _WINDOW] = local
    return canvas[:, :, _WINDOW : _WINDOW + HEIGHT, _WINDOW : _WINDOW + WIDTH]


def _draw(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Sprite parameters for ``n`` scenes, slots beyond each scene's count zeroed. Shapes [n, 5]."""
    count = rng.integers(MIN_SPRITES, MAX_SPRITES + 1, size=n)
    present = np.arange(MAX_SPRITES)[None, :] < count[:, None]
    size = (n, MAX_SPRITES)
    hsv = np.stack(
        [
            rng.random(size),
            rng.uniform(*SATURATION_RANGE, size=size),
            rng.uniform(*VALUE_RANGE, size=size),
        ],
        axis=-1,
    )
    # Quantise to the bytes actually painted, so the colour factor equals pixel / 255 exactly.
    rgb = np.round(hsv_to_rgb(hsv) * 255) / 255
    return {
        "shape": np.where(present, rng.integers(1, 4, size=size), 0),
        "x": np.where(present, POSITIONS[rng.integers(0, len(POSITIONS), size=size)], 0),
        "y": np.where(present, POSITIONS[rng.integers(0, len(POSITIONS), size=size)], 0),
        "scale": np.where(present, SCALES[rng.integers(0, len(SCALES), size=size)], 0),
        "orientation": np.where(
            present, ORIENTATIONS[rng.integers(0, len(ORIENTATIONS), size=size)], 0
        ),
        "color": np.where(present[..., None], rgb, 0),
        "background": rng.integers(0, 256, size=n),
    }


def _visible(inside: np.ndarray) -> np.ndarray:
    """Visible part of each sprite under painting in slot order: [n, S, H, W] -> same shape."""
    # covered_after[:, k] = some later sprite (k+1 ..) covers the pixel.
    later = np.flip(np.logical_or.accumulate(np.flip(inside, axis=1), axis=1), axis=1)
    covered_after = np.concatenate([later[:, 1:], np.zeros_like(later[:, :1])], axis=1)
    return inside & ~covered_after


def sample(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Draw ``n`` Multi-dSprites (colored_on_grayscale) scenes.

    Args:
        rng: Source of randomness; the output is a deterministic function of its state.
        n: Number of scenes.

    Returns:
        ``imgs`` uint8 [n, 64, 64, 3]; ``masks`` uint8 [n, 6, 64, 64, 1] with values 0/255
        (entity 0 = background, entities 1..5 = sprites in paint order; the masks partition the
        image); factors ``x``, ``y``, ``shape``, ``orientation``, ``scale``, ``visibility``
        float32 [n, 6] and ``color`` float32 [n, 6, 3].
    """
    params: dict[str, np.ndarray] = {}
    visible = np.zeros((n, MAX_SPRITES, HEIGHT, WIDTH), dtype=bool)
    todo = np.arange(n)
    while todo.size:
        p = _draw(rng, todo.size)
        safe_scale = np.where(p["shape"] > 0, p["scale"], 1.0)  # no division by zero
        vis = _visible(_inside(p["shape"], p["x"], p["y"], safe_scale, p["orientation"]))
        # Redraw scenes where a listed sprite is completely hidden by later ones.
        hidden = ((p["shape"] > 0) & ~vis.any(axis=(2, 3))).any(axis=1)
        ok = ~hidden
        for key, value in p.items():
            params.setdefault(key, np.zeros((n, *value.shape[1:]), dtype=value.dtype))
            params[key][todo[ok]] = value[ok]
        visible[todo[ok]] = vis[ok]
        todo = todo[hidden]

    grey = params["background"].astype(np.float32) / 255
    color = params["color"].astype(np.float32)
    background = ~visible.any(axis=1)
    # Each pixel takes the colour of the entity that owns it; entities partition the image.
    entity_colors = np.concatenate([np.repeat(grey[:, None, None], 3, axis=2), color], axis=1)
    owners = np.concatenate([background[:, None], visible], axis=1)  # [n, 6, H, W]
    owner = owners.argmax(axis=1)  # [n, H, W]
    imgs = np.take_along_axis(entity_colors, owner.reshape(n, -1, 1), axis=1)
    imgs = np.round(imgs.reshape(n, HEIGHT, WIDTH, 3) * 255).astype(np.uint8)
    masks = (owners.astype(np.uint8) * 255)[..., None]

    def with_background(key: str, value: np.ndarray | float) -> np.ndarray:
        first = np.full((n, 1), value, dtype=np.float32)
        return np.concatenate([first, params[key].astype(np.float32)], axis=1)

    present = params["shape"] > 0
    return {
        "imgs": imgs,
        "masks": masks,
        "x": with_background("x", 0.0),
        "y": with_background("y", 0.0),
        "shape": with_background("shape", 0.0),
        "color": np.concatenate([entity_colors[:, :1], color], axis=1),
        "orientation": with_background("orientation", 0.0),
        "scale": with_background("scale", 0.0),
        "visibility": np.concatenate(
            [np.ones((n, 1), np.float32), present.astype(np.float32)], axis=1
        ),
    }
