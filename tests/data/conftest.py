"""Shared fixtures of the data tests: the real Tetrominoes sample and synthetic scenes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from pyro_emorl.data.records import decode_record
from pyro_emorl.data.schemas import Schema, get_schema
from pyro_emorl.data.tfrecord import iter_records

REAL_SAMPLE = "tetrominoes_mini.tfrecords"


def real_fixtures_dir() -> Path:
    """``$EMORL_REAL_FIXTURES``, or the copy in ``tests/fixtures/real``."""
    default = Path(__file__).resolve().parents[1] / "fixtures" / "real"
    return Path(os.environ.get("EMORL_REAL_FIXTURES", default))


@pytest.fixture(scope="session")
def real_sample_path() -> Path:
    path = real_fixtures_dir() / REAL_SAMPLE
    if not path.is_file():
        pytest.skip(
            f"real Tetrominoes sample not found at {path}; set EMORL_REAL_FIXTURES to the "
            "directory holding tetrominoes_mini.tfrecords"
        )
    return path


@pytest.fixture(scope="session")
def real_scenes(real_sample_path: Path) -> list[dict[str, np.ndarray]]:
    schema = get_schema("tetrominoes")
    return [decode_record(schema, data, i) for i, data in enumerate(iter_records(real_sample_path))]


def _random_scene(
    schema: Schema, rng: np.random.Generator, objects: int | None = None
) -> dict[str, np.ndarray]:
    """A random scene in ``schema``: random pixels, masks partitioning the image, random factors.

    ``objects`` sets how many foreground entities are visible (visibility 1), if the schema has
    a visibility factor.
    """
    e, h, w = schema.num_entities, schema.height, schema.width
    owner = rng.integers(0, e, size=(h, w))
    masks = (np.arange(e)[:, None, None] == owner[None]).astype(np.uint8)[..., None] * 255
    scene = {
        "image": rng.integers(0, 256, size=(h, w, schema.channels), dtype=np.uint8),
        "mask": masks,
    }
    for spec in schema.factors:
        if spec.kind == "bytes":
            scene[spec.name] = rng.integers(0, 256, size=spec.shape, dtype=np.uint8)
        else:
            scene[spec.name] = rng.standard_normal(spec.shape).astype(np.float32)
    if schema.has_visibility:
        n = rng.integers(1, e) if objects is None else objects
        scene["visibility"] = (np.arange(e) <= n).astype(np.float32)
    return scene


@pytest.fixture
def random_scene():
    """The scene factory ``_random_scene(schema, rng, objects=None)``."""
    return _random_scene
