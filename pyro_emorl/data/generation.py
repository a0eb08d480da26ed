"""Generate synthetic datasets into the HDF5 layout, and a cached default copy for the examples."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from tqdm.auto import tqdm

from pyro_emorl.data import multi_dsprites, tetrominoes
from pyro_emorl.data.atomic import atomic_path
from pyro_emorl.data.h5layout import SplitWriter, write_file_attrs

GENERATORS = ("tetrominoes", "multi_dsprites")
"""The datasets that can be generated locally."""
# Bump when a generator's output changes for the same seed: it is part of the cache file name.
GENERATOR_VERSION = 1
# Scenes drawn per random stream. Each chunk has its own stream seeded by (seed, split, chunk),
# so the output depends only on the seed and the split sizes, and the test split does not
# depend on the number of training images.
CHUNK = 1000
PAPER_SPLIT = (60_000, 320)
CACHE_ENV = "PYRO_EMORL_CACHE"


@dataclass(frozen=True)
class _Generator:
    sample: Callable[[np.random.Generator, int], dict[str, np.ndarray]]
    height: int
    width: int
    num_entities: int
    factors: dict[str, tuple[int, ...]]


def _generator(name: str) -> _Generator:
    if name == "tetrominoes":
        mod = tetrominoes
    elif name == "multi_dsprites":
        mod = multi_dsprites
    else:
        raise ValueError(f"unknown generator {name!r}; choose one of {', '.join(GENERATORS)}")
    return _Generator(mod.sample, mod.HEIGHT, mod.WIDTH, mod.NUM_ENTITIES, mod.FACTOR_SHAPES)


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def generate(
    name: str,
    path: str | os.PathLike[str],
    num_train: int,
    num_test: int,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Generate a dataset and write it atomically in the HDF5 layout.

    Args:
        name: ``"tetrominoes"`` or ``"multi_dsprites"`` (the colored_on_grayscale variant).
        path: Destination ``.h5`` file; replaced atomically if it exists.
        num_train: Images in the ``train`` group.
        num_test: Images in the ``test`` group.
        seed: Non-negative seed; the same seed and sizes give byte-identical images.
        progress: Show a progress bar.

    Returns:
        The destination path. Groups ``train`` and ``test`` each hold ``imgs`` uint8
        [N, H, W, 3], ``masks`` uint8 [N, E, H, W, 1] (0/255) and ``factors/<name>`` [N, E, ...].

    Raises:
        ValueError: For an unknown name, a negative size, or a negative seed.
    """
    gen = _generator(name)
    _check_count("num_train", num_train)
    _check_count("num_test", num_test)
    _check_count("seed", seed)
    factor_specs = {key: (shape, np.float32) for key, shape in gen.factors.items()}
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as file:
        write_file_attrs(
            file,
            dataset=name,
            source="generated",
            seed=int(seed),
            generator_version=GENERATOR_VERSION,
        )
        bar = tqdm(total=num_train + num_test, unit="img", desc=name, disable=not progress)
        with bar:
            for split_id, (split, size) in enumerate((("train", num_train), ("test", num_test))):
                writer = SplitWriter(
                    file, split, gen.height, gen.width, gen.num_entities, factor_specs, size
                )
                for chunk, start in enumerate(range(0, size, CHUNK)):
                    rng = np.random.default_rng([int(seed), split_id, chunk])
                    batch = gen.sample(rng, min(CHUNK, size - start))
                    writer.append(batch)
                    bar.update(len(batch["imgs"]))
                writer.finish()
    return Path(path)


def resolve_cache_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """The directory for cached datasets.

    Args:
        path: Explicit directory; if ``None``, ``$PYRO_EMORL_CACHE`` or else
            ``~/.cache/pyro_emorl``.

    Returns:
        The directory (not created).
    """
    if path is not None:
        return Path(path)
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "pyro_emorl"


def default_dataset(
    name: str,
    cache_dir: str | os.PathLike[str] | None = None,
    num_train: int = PAPER_SPLIT[0],
    num_test: int = PAPER_SPLIT[1],
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """A generated dataset in the cache directory, generated only if it is not there yet.

    The file name encodes the generator, its version, the split sizes and the seed, so
    different requests never share a file. Generation is atomic, so concurrent callers at worst
    generate the same file twice and never see a partial one.

    Args:
        name: ``"tetrominoes"`` or ``"multi_dsprites"``.
        cache_dir: Cache directory; default ``$PYRO_EMORL_CACHE`` or ``~/.cache/pyro_emorl``.
        num_train: Training images (default: the paper's 60,000).
        num_test: Test images (default: the paper's 320).
        seed: Generator seed.
        progress: Show a progress bar while generating.

    Returns:
        Path of the HDF5 file (see `generate` for its layout).
    """
    _generator(name)  # fail on an unknown name before touching the file system
    for label, value in (("num_train", num_train), ("num_test", num_test), ("seed", seed)):
        _check_count(label, value)
    directory = resolve_cache_dir(cache_dir)
    path = directory / f"{name}-v{GENERATOR_VERSION}-train{num_train}-test{num_test}-seed{seed}.h5"
    if not path.is_file():
        generate(name, path, num_train, num_test, seed=seed, progress=progress)
    return path
