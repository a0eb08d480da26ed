"""Schema-aware decoding and encoding of one Multi-Object Datasets record.

A decoded record ("scene") is a dict of numpy arrays:

* ``image``: uint8 [H, W, C] (C = 1 only for binarized Multi-dSprites),
* ``mask``: uint8 [E, H, W, 1], values 0/255, always entity-first (Multi-dSprites' stored
  [H, W, E, 1] is transposed),
* one array per factor, with the Multi-Object Datasets' names and shapes (leading dimension E).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from pyro_emorl.data.errors import DataFormatError, RecordError
from pyro_emorl.data.example import (
    FeatureKind,
    decode_example,
    encode_example,
    encode_float_list,
    encode_one_byte_list,
    float_values,
    one_byte_values,
)
from pyro_emorl.data.schemas import FeatureSpec, Schema


def _where(index: int | None) -> str:
    return "record" if index is None else f"record {index}"


def decode_record(schema: Schema, data: bytes, index: int | None = None) -> dict[str, np.ndarray]:
    """Decode one serialized Example with a dataset schema.

    Args:
        schema: The dataset's `Schema`.
        data: One TFRecord payload.
        index: Record number, used in error messages.

    Returns:
        The scene dict described in the module docstring. Its arrays are read-only views into
        ``data`` (no copy); copy them before modifying.

    Raises:
        RecordError: If the record is not a valid Example, a feature is missing, has the wrong
            kind, or has the wrong number of values (usually: the wrong dataset or variant).
    """
    where = _where(index)
    try:
        raw = decode_example(data)
    except DataFormatError as err:
        raise RecordError(f"{where}: {err}") from err
    scene: dict[str, np.ndarray] = {}
    for spec in schema.features:
        feature = raw.get(spec.name)
        if feature is None:
            raise RecordError(
                f"{where} has no feature {spec.name!r} (it has {', '.join(raw) or 'none'}); "
                f"is it really a {_describe(schema)} file?"
            )
        if feature.kind != spec.kind:
            raise RecordError(
                f"{where}: feature {spec.name!r} is a {feature.kind} list but the "
                f"{_describe(schema)} schema expects a {spec.kind} list"
            )
        try:
            values = (
                one_byte_values(feature.payload)
                if spec.kind == "bytes"
                else float_values(feature.payload)
            )
        except DataFormatError as err:
            raise RecordError(f"{where}: feature {spec.name!r}: {err}") from err
        if values.size != spec.size:
            raise RecordError(
                f"{where}: feature {spec.name!r} has {values.size} values but the "
                f"{_describe(schema)} schema expects {spec.size} (shape {list(spec.shape)}); "
                "check the dataset name and --variant"
            )
        scene[spec.name] = values.reshape(spec.shape)
    if schema.masks_entity_last:
        scene["mask"] = scene["mask"].transpose(2, 0, 1, 3)
    return scene


def encode_record(schema: Schema, scene: Mapping[str, np.ndarray]) -> bytes:
    """Encode a scene as a serialized Example in the dataset's schema (inverse of decode).

    Args:
        schema: The dataset's schema.
        scene: The scene dict of the module docstring (``mask`` entity-first). Features are
            written in the mapping's order.

    Returns:
        The serialized Example, ready for `pyro_emorl.data.tfrecord.write_records`.

    Raises:
        ValueError: If a feature is missing, unknown, or has the wrong shape.
    """
    specs = {spec.name: spec for spec in schema.features}
    missing = set(specs) - set(scene)
    unknown = set(scene) - set(specs)
    if missing or unknown:
        raise ValueError(
            f"scene does not match the {_describe(schema)} schema: missing {sorted(missing)}, "
            f"unknown {sorted(unknown)}"
        )
    encoded: dict[str, tuple[FeatureKind, bytes]] = {}
    for name, value in scene.items():
        spec = specs[name]
        arr = np.asarray(value)
        if name == "mask" and schema.masks_entity_last:
            arr = arr.transpose(1, 2, 0, 3)
        _check_shape(spec, arr)
        encoded[name] = (
            ("bytes", encode_one_byte_list(arr))
            if spec.kind == "bytes"
            else ("float", encode_float_list(arr))
        )
    return encode_example(encoded)


def _check_shape(spec: FeatureSpec, arr: np.ndarray) -> None:
    if arr.shape != spec.shape:
        raise ValueError(
            f"feature {spec.name!r} has shape {list(arr.shape)}, expected {list(spec.shape)}"
        )


def _describe(schema: Schema) -> str:
    return schema.dataset if schema.variant is None else f"{schema.dataset}/{schema.variant}"
