"""A torch Dataset over HDF5 files in the official EfficientMORL layout (ours and Zenodo's)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from pyro_emorl.data import clevr
from pyro_emorl.data.errors import DataFormatError, MissingArrayError
from pyro_emorl.data.scans import ScanRecord

Item = dict[str, Any]


class HDF5Dataset(Dataset[Item]):
    """Images (and optionally masks and factors) of one split of an HDF5 file.

    The file layout is the official code's (its `lib/datasets.py`): a group per split with
    ``imgs`` [N, H, W, 3] (0..255), ``masks`` [N, E, H, W, 1] (0/255, entity 0 = background)
    and ``factors``, either one array [N, E, F] (the official CLEVR files) or a group of named
    arrays [N, E, ...] (files written by `pyro_emorl.data.generate` and
    `pyro_emorl.data.convert`).

    Each item is a dict:

    * ``"imgs"``: float32 [3, H, W] in [0, 1] (the official code's ``x * 2 - 1`` is left to the
      model). With ``clevr_preprocess`` H = W = 96 ("clevr-small") or 128 ("clevr-large").
    * ``"masks"`` (if ``masks``): float32 [E, 1, H, W] with values 0/1 (stored as 0/255, or as
      0/1 in a float or bool array). With ``clevr_preprocess``
      the masks are cropped to 192x192 like the official loader, or resized to the image size
      (nearest neighbour) if ``resize_masks``.
    * ``"factors"`` (if ``factors``): dict of tensors [E, ...] by factor name, or one tensor
      [E, F] for a file whose ``factors`` is a single array.

    The file is opened lazily, once per process, so the dataset pickles into DataLoader worker
    processes and works with ``DistributedSampler``. Everything is validated at construction;
    float pixels are scanned in full the first time, and a record in the user's cache
    (``~/.cache/pyro_emorl/scans/``) then spares later opens of the unchanged file that scan
    (`pyro_emorl.data.scans`).

    Args:
        path: The HDF5 file.
        split: Group to read (``"train"``, ``"val"`` or ``"test"``).
        masks: Also return masks.
        factors: Also return factors.
        clevr_preprocess: ``None``, ``"clevr-small"`` or ``"clevr-large"`` (240x320 CLEVR only).
        max_images: Use only the first ``max_images`` images (all if ``None`` or larger).
        resize_masks: With ``clevr_preprocess``, resize masks to the image size.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        DataFormatError: If the file is not HDF5, lacks the split or a needed key, or an array
            has the wrong shape.
        ValueError: For an invalid argument.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        split: str = "train",
        masks: bool = False,
        factors: bool = False,
        clevr_preprocess: str | None = None,
        max_images: int | None = None,
        resize_masks: bool = False,
    ) -> None:
        self.path = Path(path)
        self.split = split
        self.masks = masks
        self.factors = factors
        if clevr_preprocess is not None and clevr_preprocess not in clevr.STYLES:
            raise ValueError(
                f"clevr_preprocess must be None, {' or '.join(map(repr, clevr.STYLES))}, "
                f"got {clevr_preprocess!r}"
            )
        if resize_masks and clevr_preprocess is None:
            raise ValueError("resize_masks only applies together with clevr_preprocess")
        if max_images is not None and max_images <= 0:
            raise ValueError(f"max_images must be positive or None, got {max_images}")
        self.clevr_size = None if clevr_preprocess is None else clevr.STYLES[clevr_preprocess]
        self.resize_masks = resize_masks
        self.factor_names: tuple[str, ...] | None = None
        total = self._validate()
        self._len = total if max_images is None else min(total, max_images)
        self._file: h5py.File | None = None
        self._pid: int | None = None

    def _validate(self) -> int:
        """Check the file layout; returns the number of images in the split."""
        if not self.path.is_file():
            raise FileNotFoundError(f"HDF5 file not found: {self.path}")
        if not h5py.is_hdf5(self.path):
            raise DataFormatError(
                f"{self.path} is not an HDF5 file. TFRecords must be converted first "
                "(`emorl convert DATASET FILE.tfrecords --out FILE.h5`)."
            )
        record = ScanRecord(self.path)  # the file's identity before anything is read
        with _open(self.path) as f:
            if self.split not in f or not isinstance(f[self.split], h5py.Group):
                groups = [k for k in f if isinstance(f[k], h5py.Group)]
                raise DataFormatError(
                    f"{self.path} has no group {self.split!r}; available: {groups or 'none'}"
                )
            group = f[self.split]
            imgs = _dataset(group, "imgs", self.path, self.split)
            if imgs.ndim != 4 or imgs.shape[-1] != 3:
                raise DataFormatError(
                    f"{self.path}:{self.split}/imgs has shape {list(imgs.shape)}; "
                    "expected [N, H, W, 3]"
                )
            n, h, w = imgs.shape[:3]
            if n == 0:
                raise DataFormatError(f"{self.path}:{self.split} holds no images")
            _check_pixel_values(imgs, f"{self.path}:{self.split}/imgs", record)
            if self.clevr_size is not None and (h, w) != clevr.FULL_SIZE:
                raise DataFormatError(
                    f"clevr_preprocess needs 240x320 CLEVR images but {self.path} has {h}x{w} "
                    f"(preprocessing attribute: {f.attrs.get('preprocessing', 'unknown')!r}); "
                    "pass clevr_preprocess=None for data cropped and resized at conversion"
                )
            if self.masks:
                if "masks" not in group:
                    raise MissingArrayError(str(self.path), self.split, "masks", sorted(group))
                m = _dataset(group, "masks", self.path, self.split)
                if m.ndim != 5 or m.shape[0] != n or m.shape[2:] != (h, w, 1):
                    raise DataFormatError(
                        f"{self.path}:{self.split}/masks has shape {list(m.shape)}; expected "
                        f"[{n}, E, {h}, {w}, 1] to match imgs"
                    )
            if self.factors:
                if "factors" not in group:
                    raise MissingArrayError(str(self.path), self.split, "factors", sorted(group))
                node = group["factors"]
                items = node.items() if isinstance(node, h5py.Group) else [("factors", node)]
                for name, arr in items:
                    if not isinstance(arr, h5py.Dataset) or arr.shape[:1] != (n,):
                        raise DataFormatError(
                            f"{self.path}:{self.split}/factors/{name} must be an array with "
                            f"{n} rows (one per image)"
                        )
                if isinstance(node, h5py.Group):
                    self.factor_names = tuple(node)
            return n

    def __len__(self) -> int:
        return self._len

    def _group(self) -> h5py.Group:
        # Open once per process: a handle inherited through fork is not safe to use.
        if self._file is None or self._pid != os.getpid():
            self._file = _open(self.path)
            self._pid = os.getpid()
        return self._file[self.split]

    def __getitem__(self, index: int) -> Item:
        if not -self._len <= index < self._len:
            raise IndexError(f"index {index} out of range for {self._len} images")
        index %= self._len
        try:
            group = self._group()
            img = group["imgs"][index]
            masks = group["masks"][index] if self.masks else None
        except OSError as error:  # a truncated file or a corrupt chunk
            raise DataFormatError(
                f"{self.path}:{self.split}: cannot read image {index} ({error}); the file is "
                "damaged: generate or convert it again"
            ) from error
        if self.clevr_size is not None:
            img, masks = clevr.preprocess(
                np.asarray(img, dtype=np.uint8), masks, self.clevr_size, self.resize_masks
            )
        item: Item = {"imgs": torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))}
        item["imgs"] = item["imgs"].to(torch.float32) / 255
        if masks is not None:
            m = torch.from_numpy(np.ascontiguousarray(masks.transpose(0, 3, 1, 2)))
            # Binary masks come as 0/255 (the layout's uint8) or 0/1 (some float or bool files);
            # any value above 1 means the former. Dividing 0/1 masks by 255 would make them
            # 0/0.0039, which no metric reads as a mask.
            m = m.to(torch.float32)
            item["masks"] = m / 255 if bool((m > 1).any()) else m
        if self.factors:
            node = group["factors"]
            if self.factor_names is None:
                item["factors"] = torch.from_numpy(np.asarray(node[index]))
            else:
                item["factors"] = {
                    name: torch.from_numpy(np.asarray(node[name][index]))
                    for name in self.factor_names
                }
        return item

    def close(self) -> None:
        """Close this process's file handle (it reopens on the next access)."""
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None
        self._pid = None

    def __getstate__(self) -> dict[str, Any]:
        # h5py handles do not pickle; each process opens its own.
        state = self.__dict__.copy()
        state["_file"] = None
        state["_pid"] = None
        return state


#: Images checked per read when a float array's values are scanned.
_SCAN_CHUNK = 2048


def _check_pixel_values(imgs: h5py.Dataset, where: str, record: ScanRecord) -> None:
    """Pixels must be 0..255: unsigned integers pass as they are; a float or signed array (as in
    Zenodo-style files, and the cause of silent failures) is scanned unless ``record`` says this
    very file passed the scan already, and recorded when it passes."""
    kind = imgs.dtype.kind
    if kind == "u":
        return
    if kind not in "if":
        raise DataFormatError(f"{where} has dtype {imgs.dtype}; expected uint8 pixels 0..255")
    if record.passed(imgs.name):
        return
    _scan_pixel_values(imgs, where)
    record.add(imgs.name)


def _scan_pixel_values(imgs: h5py.Dataset, where: str) -> None:
    """Read every image, chunk by chunk: no NaN/inf, values in 0..255, and floats not all in
    [0, 1] (pixels stored in the wrong scale)."""
    kind = imgs.dtype.kind
    largest = -np.inf
    for start in range(0, imgs.shape[0], _SCAN_CHUNK):
        chunk = np.asarray(imgs[start : start + _SCAN_CHUNK])
        bad = ~np.isfinite(chunk) if kind == "f" else np.zeros(chunk.shape, dtype=bool)
        bad |= (chunk < 0) | (chunk > 255)
        if bad.any():
            first = np.argwhere(bad)[0]
            value = float(chunk[tuple(first)])
            raise DataFormatError(
                f"{where}: image {start + int(first[0])} holds {value}; "
                "pixels must be finite values in 0..255"
            )
        largest = max(largest, float(chunk.max()))
    if kind == "f" and largest <= 1.0:
        raise DataFormatError(
            f"{where} holds floats in [0, 1], but the layout stores pixels as 0..255: write "
            "(imgs * 255).round().astype('uint8') instead"
        )


def _open(path: Path) -> h5py.File:
    """Open ``path`` for reading; a file HDF5 cannot open (truncated, damaged) gives one line
    naming it instead of HDF5's bare ``truncated file: eof = ...``."""
    try:
        return h5py.File(path, "r")
    except OSError as error:
        reason = " ".join(str(error).split())
        if "truncated file" in reason:
            reason = "the file is truncated (shorter than HDF5 says it is)"
        raise DataFormatError(
            f"{path} cannot be opened as HDF5: {reason[:200]}; the file is damaged or was not "
            "written to the end: generate or convert it again"
        ) from error


def _dataset(group: h5py.Group, key: str, path: Path, split: str) -> h5py.Dataset:
    if key not in group or not isinstance(group[key], h5py.Dataset):
        raise DataFormatError(f"{path}:{split} has no array {key!r} (it has {sorted(group)})")
    return group[key]
