"""A vectorised generator of Multi-dSprites scenes: ``colored_on_grayscale`` and ``textured``.

`sample` draws the paper's ``colored_on_grayscale`` variant, `sample_textured` the textured
variant of the paper's appendix B.1 (same geometry, patterned sprites on a patterned
background; its choices are listed in its docstring).

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
from matplotlib.colors import hsv_to_rgb, rgb_to_hsv

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


def _scenes(rng: np.random.Generator, n: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Sprite parameters (see `_draw`) and visible sprite masks bool [n, 5, 64, 64] of ``n``
    scenes in which every listed sprite is visible (scenes with a hidden sprite are redrawn)."""
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
    return params, visible


def _owners(visible: np.ndarray) -> np.ndarray:
    """Entity masks bool [n, 6, H, W] (background first) from visible sprite masks [n, 5, H, W]."""
    background = ~np.asarray(visible.any(axis=1))
    return np.concatenate([background[:, None], visible], axis=1)


def _geometry_factors(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Factors ``x``, ``y``, ``shape``, ``orientation``, ``scale``, ``visibility`` [n, 6]."""
    n = len(params["shape"])

    def with_background(key: str) -> np.ndarray:
        first = np.zeros((n, 1), dtype=np.float32)
        return np.concatenate([first, params[key].astype(np.float32)], axis=1)

    present = params["shape"] > 0
    out = {key: with_background(key) for key in ("x", "y", "shape", "orientation", "scale")}
    out["visibility"] = np.concatenate(
        [np.ones((n, 1), np.float32), present.astype(np.float32)], axis=1
    )
    return out


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
    params, visible = _scenes(rng, n)
    grey = params["background"].astype(np.float32) / 255
    color = params["color"].astype(np.float32)
    # Each pixel takes the colour of the entity that owns it; entities partition the image.
    entity_colors = np.concatenate([np.repeat(grey[:, None, None], 3, axis=2), color], axis=1)
    owners = _owners(visible)  # [n, 6, H, W]
    owner = owners.argmax(axis=1)  # [n, H, W]
    imgs = np.take_along_axis(entity_colors, owner.reshape(n, -1, 1), axis=1)
    imgs = np.round(imgs.reshape(n, HEIGHT, WIDTH, 3) * 255).astype(np.uint8)
    masks = (owners.astype(np.uint8) * 255)[..., None]
    return {"imgs": imgs, "masks": masks, **_geometry_factors(params), "color": entity_colors}


# --- Textured Multi-dSprites ------------------------------------------------------------------

VARIANTS = ("colored_on_grayscale", "textured")
"""Generator variants: the paper's main dataset, and the textured one of its appendix B.1."""

STRIPES, CHECKS = 1, 2
"""Values of the ``pattern`` factor."""
# Band widths of the patterns in pixels (a choice; see `sample_textured`).
SPRITE_BAND_WIDTH = (1.5, 4.0)
BACKGROUND_BAND_WIDTH = (4.0, 10.0)
# Hue step between successive colours of one palette, so a palette's colours are distinct.
HUE_STEP = (0.2, 0.4)
MAX_PATTERN_COLORS = 3

TEXTURED_FACTOR_SHAPES: dict[str, tuple[int, ...]] = {
    **FACTOR_SHAPES,
    "color2": (NUM_ENTITIES, 3),
    "color3": (NUM_ENTITIES, 3),
    "num_colors": (NUM_ENTITIES,),
    "pattern": (NUM_ENTITIES,),
    "pattern_angle": (NUM_ENTITIES,),
    "band_width": (NUM_ENTITIES,),
}


def _palettes(rng: np.random.Generator, first_hue: np.ndarray) -> np.ndarray:
    """Palettes of `MAX_PATTERN_COLORS` colours whose hues step by `HUE_STEP` from
    ``first_hue`` [...]; saturation and value uniform in [0.5, 1]. RGB quantised to bytes / 255,
    [..., 3, 3] (colour index, channel)."""
    size = first_hue.shape
    step = rng.uniform(*HUE_STEP, size=size)
    hue = (first_hue[..., None] + step[..., None] * np.arange(MAX_PATTERN_COLORS)) % 1.0
    hsv = np.stack(
        [
            hue,
            rng.uniform(*SATURATION_RANGE, size=hue.shape),
            rng.uniform(*VALUE_RANGE, size=hue.shape),
        ],
        axis=-1,
    )
    return np.round(hsv_to_rgb(hsv) * 255) / 255


def _patterns(
    rng: np.random.Generator, shape: tuple[int, ...], band: tuple[float, float]
) -> dict[str, np.ndarray]:
    """Pattern parameters, each an array of ``shape``."""
    return {
        "num_colors": rng.integers(2, MAX_PATTERN_COLORS + 1, size=shape),
        "pattern": rng.integers(STRIPES, CHECKS + 1, size=shape),
        "pattern_angle": rng.uniform(0.0, np.pi, size=shape),
        "band_width": rng.uniform(*band, size=shape),
        "phase": rng.random((*shape, 2)),
    }


def _collides(
    background: np.ndarray, bg_count: np.ndarray, sprites: np.ndarray, sprite_count: np.ndarray
) -> np.ndarray:
    """Scenes where a used background colour equals a used sprite colour: bool [n].

    Args:
        background: Background palettes [n, 3, 3].
        bg_count: Colours the background uses [n].
        sprites: Sprite palettes [n, 5, 3, 3].
        sprite_count: Colours each sprite uses [n, 5] (0 for absent sprites).
    """
    used_bg = np.arange(MAX_PATTERN_COLORS) < bg_count[:, None]  # [n, 3]
    used_sp = np.arange(MAX_PATTERN_COLORS) < sprite_count[..., None]  # [n, 5, 3]
    same = (background[:, None, None, :, :] == sprites[:, :, :, None, :]).all(axis=-1)
    same &= used_sp[..., None] & used_bg[:, None, None, :]  # [n, 5, 3 sprite, 3 background]
    return same.any(axis=(1, 2, 3))


def _pattern_index(pattern: dict[str, np.ndarray], cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
    """Palette index of every pixel under per-pixel pattern parameters.

    Args:
        pattern: `_patterns` output gathered per pixel: each [n, H, W] (``phase`` [n, H, W, 2]).
        cx: Pattern origin, horizontal pixel coordinate [n, H, W].
        cy: Pattern origin, vertical pixel coordinate [n, H, W].

    Returns:
        int64 [n, H, W] in 0 .. num_colors - 1.
    """
    dy = np.arange(HEIGHT, dtype=np.float32)[:, None] + 0.5 - cy
    dx = np.arange(WIDTH, dtype=np.float32)[None, :] + 0.5 - cx
    cos, sin = np.cos(pattern["pattern_angle"]), np.sin(pattern["pattern_angle"])
    width = pattern["band_width"]
    along = np.floor((cos * dx + sin * dy) / width + pattern["phase"][..., 0])
    across = np.floor((-sin * dx + cos * dy) / width + pattern["phase"][..., 1])
    index = np.where(pattern["pattern"] == STRIPES, along, along + across)
    return np.mod(index, pattern["num_colors"]).astype(np.int64)


def sample_textured(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Draw ``n`` Textured Multi-dSprites scenes (the variant of the paper's appendix B.1).

    Geometry is that of `sample` (same shapes, positions, scales, orientations, occlusion and
    masks; the same random state gives the same masks), but nothing is a single colour: every
    entity is filled with a pattern of its own 2 or 3 colours, so colour alone cannot separate
    the objects from each other or from the background.

    * Pattern: stripes (``pattern`` 1) or checks (2) at a uniform angle in [0, pi), with bands
      of uniform width in [1.5, 4] pixels for sprites and [4, 10] for the background, a random
      phase, and colours cycling through the palette. A sprite's pattern is anchored at its
      centre, the background's at the canvas centre; it covers the whole canvas.
    * Palette: 2 or 3 colours (uniform); hue steps by a uniform amount in [0.2, 0.4], so a
      palette's colours are distinct; saturation and value uniform in [0.5, 1]. A sprite's
      first colour is the colour `sample` would give it; the background's first hue is
      uniform. The background palette is redrawn until it shares no colour with a sprite of
      its scene, so every sprite pixel differs in colour from every background pixel.

    Args:
        rng: Source of randomness; the output is a deterministic function of its state.
        n: Number of scenes.

    Returns:
        ``imgs`` uint8 [n, 64, 64, 3]; ``masks`` uint8 [n, 6, 64, 64, 1] (0/255, as in
        `sample`); float32 factors ``x``, ``y``, ``shape``, ``orientation``, ``scale``,
        ``visibility`` [n, 6] as in `sample`; ``color``, ``color2``, ``color3`` [n, 6, 3] (the
        palette, RGB in [0, 1]; ``color3`` is 0 for 2-colour patterns); ``num_colors``,
        ``pattern``, ``pattern_angle`` (radians) and ``band_width`` (pixels) [n, 6]. Entity 0
        is the background; unused entities are all zero.
    """
    params, visible = _scenes(rng, n)
    present = params["shape"] > 0  # [n, 5]
    first_hue = rgb_to_hsv(params["color"])[..., 0]
    sprite_palette = _palettes(rng, first_hue)
    sprite_palette[..., 0, :] = params["color"]  # exactly the colour `sample` paints
    sprite = _patterns(rng, (n, MAX_SPRITES), SPRITE_BAND_WIDTH)
    sprite_count = np.where(present, sprite["num_colors"], 0)
    bg = _patterns(rng, (n,), BACKGROUND_BAND_WIDTH)
    bg_palette = np.zeros((n, MAX_PATTERN_COLORS, 3))
    todo = np.arange(n)
    while todo.size:
        drawn = _palettes(rng, rng.random(todo.size))
        bg_palette[todo] = drawn
        bad = _collides(drawn, bg["num_colors"][todo], sprite_palette[todo], sprite_count[todo])
        todo = todo[bad]

    # Per-entity pattern parameters [n, 6, ...], background first.
    entity = {key: np.concatenate([bg[key][:, None], sprite[key]], axis=1) for key in sprite}
    palette = np.concatenate([bg_palette[:, None], sprite_palette], axis=1)  # [n, 6, 3, 3]
    cx = (MARGIN + (1 - 2 * MARGIN) * params["x"]) * WIDTH
    cy = (MARGIN + (1 - 2 * MARGIN) * params["y"]) * HEIGHT
    centre_x = np.concatenate([np.full((n, 1), WIDTH / 2), cx], axis=1)
    centre_y = np.concatenate([np.full((n, 1), HEIGHT / 2), cy], axis=1)

    owners = _owners(visible)
    owner = owners.argmax(axis=1)  # [n, H, W]
    scene = np.arange(n)[:, None, None]

    def per_pixel(value: np.ndarray) -> np.ndarray:
        """Per-entity values [n, 6, ...] -> those of each pixel's owner [n, H, W, ...]."""
        return value[scene, owner].astype(np.float32)

    index = _pattern_index(
        {key: per_pixel(value) for key, value in entity.items()},
        per_pixel(centre_x),
        per_pixel(centre_y),
    )
    palette_bytes = np.round(palette * 255).astype(np.uint8)  # [n, 6, 3, 3]
    imgs = palette_bytes[scene, owner, index]  # [n, H, W, 3]
    masks = (owners.astype(np.uint8) * 255)[..., None]

    used = np.concatenate([np.ones((n, 1), bool), present], axis=1)  # [n, 6]
    count = np.where(used, entity["num_colors"], 0)
    palette = np.where((np.arange(MAX_PATTERN_COLORS) < count[..., None])[..., None], palette, 0)
    out = {"imgs": imgs, "masks": masks, **_geometry_factors(params)}
    for k, name in enumerate(("color", "color2", "color3")):
        out[name] = palette[:, :, k].astype(np.float32)
    out["num_colors"] = count.astype(np.float32)
    for key in ("pattern", "pattern_angle", "band_width"):
        out[key] = np.where(used, entity[key], 0).astype(np.float32)
    return out
