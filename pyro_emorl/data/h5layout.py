"""Writing the HDF5 layout that the official EfficientMORL code reads (its `lib/datasets.py`).

One group per split (``train``, ``test``) holding

* ``imgs``: uint8 [N, H, W, 3],
* ``masks``: uint8 [N, E, H, W, 1] with values 0/255, entity 0 = background,
* ``factors`` (when the dataset has them): a group with one dataset per factor, named as in the
  Multi-Object Datasets, each [N, E, ...].

Every dataset is gzip-compressed and chunked one image per chunk, so reading one image
decompresses only that image.
"""

from __future__ import annotations

from collections.abc import Mapping

import h5py
import numpy as np

FORMAT_NAME = "pyro_emorl-emorl-h5"
FORMAT_VERSION = 1
_COMPRESSION = {"compression": "gzip", "compression_opts": 4}
# Factors are tiny; many rows per chunk keeps the chunk index small.
_FACTOR_CHUNK_ROWS = 1024


class SplitWriter:
    """Appends batches of scenes to one split group of an HDF5 file open for writing.

    Args:
        file: The open file (or a parent group).
        split: Group name, e.g. ``"train"``.
        height: Image height H.
        width: Image width W.
        num_entities: Masks per image E.
        factors: Factor name -> (per-image shape, dtype), e.g. ``{"x": ((E,), np.float32)}``.
        capacity: Expected number of images; datasets grow beyond it if needed and
            `finish` trims them to what was written.
    """

    def __init__(
        self,
        file: h5py.Group,
        split: str,
        height: int,
        width: int,
        num_entities: int,
        factors: Mapping[str, tuple[tuple[int, ...], np.dtype | type]],
        capacity: int,
    ) -> None:
        self.group = file.create_group(split)
        self.count = 0
        self._arrays: dict[str, h5py.Dataset] = {}
        shapes: dict[str, tuple[tuple[int, ...], np.dtype | type, int]] = {
            "imgs": ((height, width, 3), np.uint8, 1),
            "masks": ((num_entities, height, width, 1), np.uint8, 1),
        }
        for name, (shape, dtype) in factors.items():
            shapes[f"factors/{name}"] = (tuple(shape), dtype, _FACTOR_CHUNK_ROWS)
        for key, (shape, dtype, rows) in shapes.items():
            self._arrays[key] = self.group.create_dataset(
                key,
                shape=(capacity, *shape),
                maxshape=(None, *shape),
                dtype=dtype,
                chunks=(rows, *shape),
                **_COMPRESSION,
            )

    def append(self, batch: Mapping[str, np.ndarray]) -> None:
        """Write a batch after the images already written.

        Args:
            batch: ``imgs`` [B, H, W, 3], ``masks`` [B, E, H, W, 1], and every factor [B, E, ...]
                (keys without the ``factors/`` prefix). Extra keys are an error.

        Raises:
            ValueError: If a key is missing or unknown, or an array has the wrong shape.
        """
        expected = {key.removeprefix("factors/") for key in self._arrays}
        if set(batch) != expected:
            raise ValueError(
                f"batch keys {sorted(batch)} do not match the split layout {sorted(expected)}"
            )
        size = len(batch["imgs"])
        end = self.count + size
        for key, dset in self._arrays.items():
            value = np.asarray(batch[key.removeprefix("factors/")])
            if value.shape != (size, *dset.shape[1:]):
                raise ValueError(
                    f"{key}: got shape {list(value.shape)}, expected {[size, *dset.shape[1:]]}"
                )
            if end > dset.shape[0]:
                dset.resize(end, axis=0)
            dset[self.count : end] = value
        self.count = end

    def finish(self) -> int:
        """Trim every dataset to the number of images written and return that number."""
        for dset in self._arrays.values():
            dset.resize(self.count, axis=0)
        self.group.attrs["num_images"] = self.count
        return self.count


def write_file_attrs(file: h5py.File, **attrs: str | int) -> None:
    """Tag a file with this package's layout name and version plus provenance attributes.

    Args:
        file: The open file.
        **attrs: Provenance, e.g. ``dataset="tetrominoes", seed=0``.
    """
    file.attrs["format"] = FORMAT_NAME
    file.attrs["format_version"] = FORMAT_VERSION
    for key, value in attrs.items():
        file.attrs[key] = value
