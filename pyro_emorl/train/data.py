"""The training images of a preset: a given HDF5 file, or a generated and cached one."""

from __future__ import annotations

import os

from pyro_emorl import presets
from pyro_emorl.config import ModelConfig
from pyro_emorl.data import GENERATORS, HDF5Dataset, default_dataset
from pyro_emorl.data.clevr import FULL_SIZE, STYLES


def training_dataset(
    preset: str,
    config: ModelConfig,
    path: str | os.PathLike[str] | None = None,
    *,
    split: str = "train",
    num_train: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    progress: bool = True,
) -> HDF5Dataset:
    """The training split for ``preset``.

    With ``path`` (one of the official HDF5 files or one written by ``emorl convert`` or
    ``emorl generate``) the images are read from it; full-size 240x320 CLEVR images are cropped
    and resized to the configured 96x96 or 128x128 as the official loader does. Without ``path``
    the preset's synthetic dataset is generated into the cache (or reused from it).

    Args:
        preset: a registered preset (its registration names the generator of its data).
        config: the configuration (its ``image_shape`` must match the data).
        path: HDF5 file, or ``None`` to generate.
        split: group of the file to read.
        num_train: images to generate when ``path`` is ``None`` (default: the paper's 60,000).
        cache_dir: cache for generated data (default ``$PYRO_EMORL_CACHE`` or
            ``~/.cache/pyro_emorl``).
        seed: generator seed.
        progress: show a progress bar while generating.

    Returns:
        A dataset of dicts with ``"imgs"`` float32 ``[C, H, W]`` in ``[0, 1]``.

    Raises:
        ValueError: if the preset has no generator and no ``path`` is given, or the images do not
            have the configured size.
    """
    if path is None:
        generator = presets.data_of(preset)
        if generator is None:
            raise ValueError(
                f"there is no generator for {preset!r} (only for {', '.join(GENERATORS)}); pass "
                "the HDF5 file of the official release or one made with `emorl convert`"
            )
        if num_train is None:
            path = default_dataset(generator, cache_dir, seed=seed, progress=progress)
        else:
            path = default_dataset(
                generator, cache_dir, num_train=num_train, seed=seed, progress=progress
            )
    dataset = HDF5Dataset(path, split=split)
    stored = tuple(dataset[0]["imgs"].shape)
    dataset.close()
    wanted = tuple(config.image_shape)
    if stored == wanted:
        return dataset
    if stored[1:] == FULL_SIZE and wanted[1] == wanted[2]:
        for style, size in STYLES.items():
            if size == wanted[1]:
                return HDF5Dataset(path, split=split, clevr_preprocess=style)
    raise ValueError(
        f"{path} holds {stored[1]}x{stored[2]} images but the configuration expects "
        f"{wanted[1]}x{wanted[2]}: choose the preset that fits the data"
    )
