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

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from pyro_emorl.data.atomic import disk_full_message, is_disk_full
from pyro_emorl.data.interrupts import check_interrupted

FORMAT_NAME = "pyro_emorl-emorl-h5"
FORMAT_VERSION = 1
_COMPRESSION = {"compression": "gzip", "compression_opts": 4}
# Factors are tiny; many rows per chunk keeps the chunk index small.
_FACTOR_CHUNK_ROWS = 1024
# Rows allocated up front at most. A dataset is created with min(capacity, this) rows and grows
# as batches arrive: shrinking one created with, say, 10**12 rows (a huge --num-train over a
# small input) makes HDF5 walk its chunk index for hours in C code, deaf to Ctrl-C.
_MAX_INITIAL_ROWS = 4096


class SplitWriter:
    """Appends batches of scenes to one split group of an HDF5 file open for writing.

    Args:
        file: The open file (or a parent group).
        split: Group name, e.g. ``"train"``.
        height: Image height H.
        width: Image width W.
        num_entities: Masks per image E.
        factors: Factor name -> (per-image shape, dtype), e.g. ``{"x": ((E,), np.float32)}``.
        capacity: Expected number of images; datasets start with this many rows (at most
            4096), grow beyond it if needed, and `finish` trims them to what was written.
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
                shape=(min(capacity, _MAX_INITIAL_ROWS), *shape),
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
            pyro_emorl.data.interrupts.Interrupted: If SIGINT or SIGTERM arrived (under
                `pyro_emorl.data.interrupts.stop_on_signals`) and was not raised yet.
        """
        check_interrupted()
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
        """Trim every dataset to the number of images written, flush the file, and return
        that number.

        The flush makes a write error (a full disk) surface here, as an exception. Without it
        the chunks still cached would be written when the datasets are closed, and h5py
        swallows an error raised there ("Exception ignored"), leaving HDF5 in a state that
        crashes the interpreter at exit.
        """
        for dset in self._arrays.values():
            dset.resize(self.count, axis=0)
        self.group.attrs["num_images"] = self.count
        self.group.file.flush()
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


@contextmanager
def open_for_writing(
    tmp: str | os.PathLike[str], target: str | os.PathLike[str]
) -> Iterator[h5py.File]:
    """Open the temporary file ``tmp`` of ``target`` as a new HDF5 file, and close it safely.

    On any error in the block, and on an error when flushing or closing, the file's descriptor
    is pointed at ``/dev/null`` before HDF5 closes it: the content is to be discarded anyway,
    and HDF5 can then flush and close it. Otherwise a full disk leaves the file open inside
    HDF5 with writes that keep failing, and HDF5 crashes the interpreter at exit (segmentation
    fault).

    Args:
        tmp: The temporary file (from `pyro_emorl.data.atomic.atomic_path`).
        target: The file it becomes; error messages name it.

    Yields:
        The open `h5py.File`.

    Raises:
        OSError: One line naming ``target`` for a full disk (or quota, or file size limit),
            and for any error when flushing or closing the file (HDF5's message, on one line).
    """
    file = h5py.File(tmp, "w")
    handle = _Handle(file)
    try:
        yield file
    except BaseException as error:
        handle.discard(file)
        if is_disk_full(error) and not isinstance(error, _WriteError):
            raise _write_error(target, error) from error
        raise  # other errors (bad input, a bug, an interrupt) speak for themselves
    try:
        # Flush first: a failure then leaves every HDF5 object valid, ready for `discard`.
        file.flush()
        file.close()
    except (OSError, RuntimeError) as error:  # writing the last data or metadata failed
        handle.discard(file)
        raise _write_error(target, error) from error


class _WriteError(OSError):
    """An OSError whose message is already one line naming the output."""


class _Handle:
    """The operating-system file behind an HDF5 file open with the default (``sec2``) driver:
    its descriptor and the identity of the file it must still refer to."""

    def __init__(self, file: h5py.File) -> None:
        self.fd: int | None = None
        self.identity: tuple[int, int] | None = None
        if os.name == "posix" and file.driver == "sec2":
            self.fd = file.id.get_vfd_handle()
            self.identity = self._identity(self.fd)

    @staticmethod
    def _identity(fd: int) -> tuple[int, int] | None:
        try:
            info = os.fstat(fd)
        except OSError:
            return None
        return info.st_dev, info.st_ino

    def discard(self, file: h5py.File) -> None:
        """Close ``file`` without writing anything more to the disk (see `open_for_writing`).

        A failed ``close`` may leave the file open inside HDF5 with its ``h5py`` object
        invalid, so the descriptor recorded at opening is used, once checked to still refer to
        the same file (were it closed, its number could belong to another file by now).
        """
        if self.fd is not None and self._identity(self.fd) == self.identity:
            devnull = os.open(os.devnull, os.O_RDWR)
            try:
                os.dup2(devnull, self.fd)
            finally:
                os.close(devnull)
        if file.id.valid:
            try:
                file.close()
            except (OSError, RuntimeError):
                pass  # only off POSIX; the temporary file is removed next anyway


def _write_error(target: str | os.PathLike[str], error: BaseException) -> _WriteError:
    if is_disk_full(error):
        return _WriteError(disk_full_message(target))
    first = re.sub(r"\s+", " ", str(error)).strip()
    return _WriteError(f"cannot write {Path(target)}: {first[:300]}. Nothing was written")
