"""Convert DeepMind's Multi-Object Datasets TFRecords into the HDF5 layout, without TensorFlow."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from pyro_emorl.data import clevr
from pyro_emorl.data.atomic import (
    atomic_path,
    check_parent,
    output_lock,
    remove_stale_temporaries,
    warn_removed,
)
from pyro_emorl.data.errors import DataFormatError, RecordError
from pyro_emorl.data.h5layout import SplitWriter, open_for_writing, write_file_attrs
from pyro_emorl.data.interrupts import check_interrupted
from pyro_emorl.data.records import decode_record
from pyro_emorl.data.schemas import DATASETS, Schema, get_schema
from pyro_emorl.data.tfrecord import iter_records

# The paper's splits: the first N_train records that pass the filter, then the next N_test.
DEFAULT_SPLITS = {
    "tetrominoes": (60_000, 320),
    "multi_dsprites": (60_000, 320),
    "clevr_with_masks": (50_000, 320),
    "objects_room": (60_000, 320),
}
CLEVR6_MAX_OBJECTS = 6
_BATCH = 256


@dataclass
class ConversionSummary:
    """What a conversion wrote.

    Attributes:
        path: The HDF5 file.
        dataset: Dataset name.
        variant: Variant name, or ``None``.
        counts: Images written per split.
        records_read: Records read from the TFRecord file (kept or filtered out), or ClevrTex
            scenes read.
        seconds: Wall-clock time of the conversion.
        image_shape: Stored image shape [H, W, 3].
        num_entities: Masks per image E.
        preprocessing: ``"none"`` or e.g. ``"clevr-crop-resize-96"``,
            ``"clevrtex-crop-resize-128"``.
    """

    path: Path
    dataset: str
    variant: str | None
    counts: dict[str, int] = field(default_factory=dict)
    records_read: int = 0
    seconds: float = 0.0
    image_shape: tuple[int, int, int] = (0, 0, 3)
    num_entities: int = 0
    preprocessing: str = "none"


@dataclass(frozen=True)
class _Options:
    schema: Schema
    num_train: int
    num_test: int
    min_objects: int | None
    max_objects: int | None
    resize: int | None


def _options(
    dataset: str,
    variant: str | None,
    num_train: int | None,
    num_test: int | None,
    min_objects: int | None,
    max_objects: int | None,
    resize: int | None,
) -> _Options:
    """Validate the arguments of `convert` before any file is touched."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    schema = get_schema(dataset, variant)
    train, test = DEFAULT_SPLITS[dataset]
    num_train = train if num_train is None else num_train
    num_test = test if num_test is None else num_test
    for name, value in (("num_train", num_train), ("num_test", num_test)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    if num_train + num_test == 0:
        raise ValueError("num_train and num_test are both 0: nothing to convert")
    if dataset == "clevr_with_masks" and max_objects is None:
        # CLEVR6 by default; a minimum above 6 (CLEVR10's 7) lifts the default maximum.
        if min_objects is None or min_objects <= CLEVR6_MAX_OBJECTS:
            max_objects = CLEVR6_MAX_OBJECTS
    if (min_objects is not None or max_objects is not None) and not schema.has_visibility:
        raise ValueError(
            f"{dataset} records have no visibility factor, so they cannot be filtered by the "
            "number of objects; drop --min-objects/--max-objects"
        )
    for name, bound in (("min_objects", min_objects), ("max_objects", max_objects)):
        if bound is not None and not 0 <= bound < schema.num_entities:
            raise ValueError(
                f"{name} must be in 0..{schema.num_entities - 1} for {dataset}, got {value}"
            )
    if min_objects is not None and max_objects is not None and min_objects > max_objects:
        raise ValueError(f"min_objects ({min_objects}) is larger than max_objects ({max_objects})")
    if resize is not None:
        if dataset != "clevr_with_masks":
            raise ValueError("resize applies to clevr_with_masks only (the official CLEVR crop)")
        if resize <= 0:
            raise ValueError(f"resize must be a positive size such as 96 or 128, got {resize}")
    return _Options(schema, num_train, num_test, min_objects, max_objects, resize)


def _keep(scene: dict[str, np.ndarray], opts: _Options) -> bool:
    if opts.min_objects is None and opts.max_objects is None:
        return True
    # Entity 0 (the background) is always visible: foreground objects = visible entities - 1.
    objects = clevr.visible_entities(scene["visibility"]) - 1
    if opts.min_objects is not None and objects < opts.min_objects:
        return False
    return opts.max_objects is None or objects <= opts.max_objects


def _to_layout(scene: dict[str, np.ndarray], opts: _Options) -> dict[str, np.ndarray]:
    """One decoded record -> one row of the HDF5 layout (image RGB, masks [E, H, W, 1])."""
    img, masks = scene["image"], scene["mask"]
    if img.shape[-1] == 1:
        # Binarized Multi-dSprites is grayscale; the layout (and the model) want RGB.
        img = np.repeat(img, 3, axis=-1)
    if opts.resize is not None:
        img, resized = clevr.preprocess(img, masks, opts.resize, resize_masks=True)
        assert resized is not None  # resize_masks=True resizes the given masks
        masks = resized
    row = {"imgs": img, "masks": masks}
    row.update({spec.name: scene[spec.name] for spec in opts.schema.factors})
    return row


def _layout_rows(
    input_path: Path, opts: _Options, summary: ConversionSummary
) -> Iterator[dict[str, np.ndarray]]:
    """Layout rows of the records that pass the filter, lazily; counts the records read."""
    for index, data in enumerate(iter_records(input_path)):
        check_interrupted()  # a filter may skip many records between two writes
        try:
            scene = decode_record(opts.schema, data, index=index)
        except RecordError as err:
            raise RecordError(f"{input_path}: {err}") from err
        summary.records_read = index + 1
        if _keep(scene, opts):
            yield _to_layout(scene, opts)


def convert(
    dataset: str,
    input_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    variant: str | None = None,
    num_train: int | None = None,
    num_test: int | None = None,
    min_objects: int | None = None,
    max_objects: int | None = None,
    resize: int | None = None,
    progress: bool = True,
) -> ConversionSummary:
    """Convert a Multi-Object Datasets TFRecord file into the HDF5 layout, atomically.

    Records are read in file order; those that pass the object-count filter fill ``train``
    first and then ``test``, and reading stops as soon as both are full. The write holds
    `pyro_emorl.data.atomic.output_lock` on ``out_path`` (another write of it at the same time
    is refused) and first removes what killed writes of it left.

    Args:
        dataset: ``tetrominoes``, ``multi_dsprites``, ``clevr_with_masks`` or ``objects_room``.
        input_path: The (GZIP) TFRecord file.
        out_path: Destination ``.h5`` file; replaced atomically.
        variant: Dataset variant (see `pyro_emorl.data.schemas.get_schema`).
        num_train: Training images; default the paper's split (60,000, or 50,000 for CLEVR6).
        num_test: Test images; default 320.
        min_objects: Keep only images with at least this many foreground objects.
        max_objects: Keep only images with at most this many foreground objects; for
            ``clevr_with_masks`` the default is 6 (CLEVR6), or no limit when ``min_objects``
            is above 6. CLEVR10's test set is ``min_objects=7, max_objects=10, num_train=0``
            (evaluate it with K = 11 slots). The filter is recorded in the file attributes
            ``min_objects`` and ``max_objects`` (-1 = none).
        resize: CLEVR only: crop the official 192x192 box and resize images (bicubic) and masks
            (nearest neighbour) to this size now instead of at load time.
        progress: Show a progress bar.

    Returns:
        A `ConversionSummary`.

    Raises:
        ValueError: For invalid arguments (before anything is read or written).
        FileNotFoundError: If ``input_path`` does not exist.
        RecordError: If the TFRecord file is truncated or corrupt, or does not match the schema.
        DataFormatError: If the file holds fewer matching records than requested.
        pyro_emorl.data.atomic.OutputBusyError: If another process is writing ``out_path``.
        OSError: If the disk fills up (one line naming ``out_path``; nothing is written).
    """
    opts = _options(dataset, variant, num_train, num_test, min_objects, max_objects, resize)
    input_path = Path(input_path)
    if not input_path.is_file():
        raise FileNotFoundError(f"TFRecord file not found: {input_path}")
    out_path = Path(out_path)
    if out_path.is_dir():
        raise IsADirectoryError(f"{out_path} is a directory: give a file name")
    check_parent(out_path)
    with output_lock(out_path):
        warn_removed(remove_stale_temporaries(out_path))
        return _convert(opts, input_path, out_path, dataset, progress)


def _convert(
    opts: _Options, input_path: Path, out_path: Path, dataset: str, progress: bool
) -> ConversionSummary:
    schema = opts.schema
    size = opts.resize
    height, width = (size, size) if size else (schema.height, schema.width)
    preprocessing = f"clevr-crop-resize-{size}" if size else "none"
    factor_specs = {
        spec.name: (spec.shape, np.uint8 if spec.kind == "bytes" else np.float32)
        for spec in schema.factors
    }
    summary = ConversionSummary(
        path=Path(out_path),
        dataset=dataset,
        variant=schema.variant,
        image_shape=(height, width, 3),
        num_entities=schema.num_entities,
        preprocessing=preprocessing,
    )
    start = time.perf_counter()
    plan = [("train", opts.num_train), ("test", opts.num_test)]
    with atomic_path(out_path) as tmp, open_for_writing(tmp, out_path) as file:
        write_file_attrs(
            file,
            dataset=dataset,
            variant=schema.variant or "",
            source=f"tfrecord:{input_path.name}",
            preprocessing=preprocessing,
            min_objects=-1 if opts.min_objects is None else opts.min_objects,
            max_objects=-1 if opts.max_objects is None else opts.max_objects,
        )
        rows = _layout_rows(input_path, opts, summary)
        bar = tqdm(
            total=opts.num_train + opts.num_test,
            unit="img",
            desc=f"convert {dataset}",
            disable=not progress,
        )
        with bar:
            for split, target in plan:
                writer = SplitWriter(
                    file, split, height, width, schema.num_entities, factor_specs, target
                )
                while writer.count < target:
                    batch = list(itertools.islice(rows, min(_BATCH, target - writer.count)))
                    if not batch:
                        break
                    writer.append(_stack(batch))
                    bar.update(len(batch))
                summary.counts[split] = writer.finish()
        if summary.counts != dict(plan):
            raise DataFormatError(
                f"{input_path} ran out after {summary.records_read} records: found "
                f"{summary.counts} matching images but {dict(plan)} were requested; "
                "pass a smaller --num-train/--num-test (or relax the object filter)"
            )
    summary.seconds = time.perf_counter() - start
    return summary


def _stack(rows: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {key: np.stack([row[key] for row in rows]) for key in rows[0]}
