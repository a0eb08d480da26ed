"""Generate synthetic datasets into the HDF5 layout, and a cached default copy for the examples."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from pyro_emorl.data import multi_dsprites, tetrominoes
from pyro_emorl.data.atomic import (
    atomic_path,
    check_parent,
    output_lock,
    remove_stale_temporaries,
    warn_removed,
)
from pyro_emorl.data.h5layout import SplitWriter, open_for_writing, write_file_attrs
from pyro_emorl.data.interrupts import check_interrupted

GENERATORS = ("tetrominoes", "multi_dsprites")
"""The datasets that can be generated locally."""
GENERATOR_VARIANTS: dict[str, tuple[str, ...]] = {
    "tetrominoes": (),
    "multi_dsprites": multi_dsprites.VARIANTS,
}
"""Variants each generator draws; the first is the default (``None`` = the default)."""
# Bump a generator's version when its output changes for the same seed: it is written into the
# files and is part of the cache file name. GENERATOR_VERSION is that of the default variants.
GENERATOR_VERSION = 1
GENERATOR_VERSIONS: dict[tuple[str, str | None], int] = {
    ("tetrominoes", None): GENERATOR_VERSION,
    ("multi_dsprites", "colored_on_grayscale"): GENERATOR_VERSION,
    ("multi_dsprites", "textured"): 1,
}
# Scenes drawn per random stream. Each chunk has its own stream seeded by (seed, split, chunk),
# so the output depends only on the seed and the split sizes, and the test split does not
# depend on the number of training images.
CHUNK = 1000
PAPER_SPLIT = (60_000, 320)
CACHE_ENV = "PYRO_EMORL_CACHE"
# A floor under the compressed size of one generated image with its masks and factors (the
# smallest generator, Tetrominoes, averages about 460 bytes): a request that cannot fit on the
# disk even at this size is refused before it runs for hours.
_MIN_BYTES_PER_IMAGE = 100


@dataclass(frozen=True)
class _Generator:
    variant: str | None
    version: int
    sample: Callable[[np.random.Generator, int], dict[str, np.ndarray]]
    height: int
    width: int
    num_entities: int
    factors: dict[str, tuple[int, ...]]


def _generator(name: str, variant: str | None = None) -> _Generator:
    """The generator of ``name``/``variant``, after checking both (before any file is touched)."""
    if name not in GENERATORS:
        raise ValueError(f"unknown generator {name!r}; choose one of {', '.join(GENERATORS)}")
    known = GENERATOR_VARIANTS[name]
    if variant is not None and variant not in known:
        choices = f"choose one of {', '.join(known)}" if known else f"{name} has no variants"
        raise ValueError(f"unknown {name} variant {variant!r}; {choices}")
    if variant is None and known:
        variant = known[0]
    version = GENERATOR_VERSIONS[(name, variant)]
    if name == "tetrominoes":
        mod = tetrominoes
        return _Generator(
            None, version, mod.sample, mod.HEIGHT, mod.WIDTH, mod.NUM_ENTITIES, mod.FACTOR_SHAPES
        )
    md = multi_dsprites
    if variant == "textured":
        sample, factors = md.sample_textured, md.TEXTURED_FACTOR_SHAPES
    else:
        sample, factors = md.sample, md.FACTOR_SHAPES
    return _Generator(variant, version, sample, md.HEIGHT, md.WIDTH, md.NUM_ENTITIES, factors)


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def _check_space(path: Path, images: int) -> None:
    """Refuse ``images`` images that cannot fit on the disk holding ``path``."""
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return  # unknown: the write itself will tell
    needed = images * _MIN_BYTES_PER_IMAGE
    if needed > free:
        raise ValueError(
            f"{path}: {images:,} images need at least {needed / 1e9:,.1f} GB but the disk "
            f"holding it has {free / 1e9:,.1f} GB free; generate fewer images"
        )


def generate(
    name: str,
    path: str | os.PathLike[str],
    num_train: int,
    num_test: int,
    seed: int = 0,
    progress: bool = True,
    variant: str | None = None,
) -> Path:
    """Generate a dataset and write it atomically in the HDF5 layout.

    The write holds `pyro_emorl.data.atomic.output_lock` on ``path``: another generation or
    conversion aimed at the same file at the same time is refused. Temporary files that killed
    writes of ``path`` left are removed first (with a
    `pyro_emorl.data.atomic.LeftoversRemovedWarning`).

    Args:
        name: ``"tetrominoes"`` or ``"multi_dsprites"``.
        path: Destination ``.h5`` file; replaced atomically if it exists.
        num_train: Images in the ``train`` group.
        num_test: Images in the ``test`` group.
        seed: Non-negative seed; the same seed and sizes give byte-identical images.
        progress: Show a progress bar.
        variant: For ``multi_dsprites``: ``"colored_on_grayscale"`` (default, the paper's main
            dataset; `pyro_emorl.data.multi_dsprites.sample`) or ``"textured"`` (patterned
            sprites on a patterned background, the paper's appendix B.1;
            `pyro_emorl.data.multi_dsprites.sample_textured`). Tetrominoes has no variants.

    Returns:
        The destination path. Groups ``train`` and ``test`` each hold ``imgs`` uint8
        [N, H, W, 3], ``masks`` uint8 [N, E, H, W, 1] (0/255) and ``factors/<name>`` [N, E, ...].
        File attributes: ``dataset``, ``variant`` (``""`` for Tetrominoes), ``source``
        (``"generated"``), ``seed`` and ``generator_version``.

    Raises:
        ValueError: For an unknown name or variant, a negative size or seed, no image at all,
            or more images than the disk can hold.
        IsADirectoryError, NotADirectoryError: If ``path`` is a directory or lies under a file.
        pyro_emorl.data.atomic.OutputBusyError: If another process is writing ``path``.
        OSError: If the disk fills up (one line naming ``path``; nothing is written).
    """
    gen = _generator(name, variant)
    _check_count("num_train", num_train)
    _check_count("num_test", num_test)
    _check_count("seed", seed)
    if num_train + num_test == 0:
        raise ValueError("num_train and num_test are both 0: nothing to generate")
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory: give a file name")
    check_parent(path)
    with output_lock(path):
        warn_removed(remove_stale_temporaries(path))
        _check_space(path, num_train + num_test)
        _write(gen, name, path, num_train, num_test, seed, progress)
    return path


def _write(
    gen: _Generator,
    name: str,
    path: Path,
    num_train: int,
    num_test: int,
    seed: int,
    progress: bool,
) -> None:
    factor_specs = {key: (shape, np.float32) for key, shape in gen.factors.items()}
    with atomic_path(path) as tmp, open_for_writing(tmp, path) as file:
        write_file_attrs(
            file,
            dataset=name,
            variant=gen.variant or "",
            source="generated",
            seed=int(seed),
            generator_version=gen.version,
        )
        desc = name + (f"/{gen.variant}" if gen.variant else "")
        bar = tqdm(total=num_train + num_test, unit="img", desc=desc, disable=not progress)
        with bar:
            for split_id, (split, size) in enumerate((("train", num_train), ("test", num_test))):
                writer = SplitWriter(
                    file, split, gen.height, gen.width, gen.num_entities, factor_specs, size
                )
                for chunk, start in enumerate(range(0, size, CHUNK)):
                    check_interrupted()
                    rng = np.random.default_rng([int(seed), split_id, chunk])
                    batch = gen.sample(rng, min(CHUNK, size - start))
                    writer.append(batch)
                    bar.update(len(batch["imgs"]))
                writer.finish()


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
    variant: str | None = None,
) -> Path:
    """A generated dataset in the cache directory, generated only if it is not there yet.

    The file name encodes the generator, its variant (unless it is the default), its version,
    the split sizes and the seed, so different requests never share a file. Generation is
    atomic and holds the file's lock: concurrent callers wait for the first to finish and then
    use its file; none ever sees a partial one.

    Args:
        name: ``"tetrominoes"`` or ``"multi_dsprites"``.
        cache_dir: Cache directory; default ``$PYRO_EMORL_CACHE`` or ``~/.cache/pyro_emorl``.
        num_train: Training images (default: the paper's 60,000).
        num_test: Test images (default: the paper's 320).
        seed: Generator seed.
        progress: Show a progress bar while generating.
        variant: Generator variant, e.g. ``"textured"`` for Multi-dSprites (see `generate`).

    Returns:
        Path of the HDF5 file (see `generate` for its layout), e.g.
        ``multi_dsprites-v1-train60000-test320-seed0.h5`` or
        ``multi_dsprites-textured-v1-train60000-test320-seed0.h5``.
    """
    gen = _generator(name, variant)  # fail on an unknown name before touching the file system
    for label, value in (("num_train", num_train), ("num_test", num_test), ("seed", seed)):
        _check_count(label, value)
    directory = resolve_cache_dir(cache_dir)
    default = gen.variant is None or gen.variant == GENERATOR_VARIANTS[name][0]
    stem = name if default else f"{name}-{gen.variant}"
    path = directory / f"{stem}-v{gen.version}-train{num_train}-test{num_test}-seed{seed}.h5"
    if path.is_file():
        return path
    with output_lock(path, wait=True, option="cache file"):
        if not path.is_file():  # another caller may have generated it while this one waited
            generate(name, path, num_train, num_test, seed=seed, progress=progress, variant=variant)
    return path
