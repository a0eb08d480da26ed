"""A minimal codec for the ``tf.train.Example`` protocol buffer, without TensorFlow or protobuf.

Only the messages an Example is made of are handled::

    Example   { Features features = 1; }
    Features  { map<string, Feature> feature = 1; }
    Feature   { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2;
                             Int64List int64_list = 3; } }
    BytesList { repeated bytes value = 1; }
    FloatList { repeated float value = 1 [packed = true]; }

Decoding keeps each feature's payload as a ``memoryview`` and decodes values on demand, so the
large image and mask byte lists are never copied into Python objects one byte at a time. Unknown
fields are skipped, as protobuf requires. Int64 lists are recognised (so a schema mismatch can be
reported) but their values are not decoded: none of the supported datasets uses them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from pyro_emorl.data.errors import DataFormatError

FeatureKind = Literal["bytes", "float", "int64"]

_KIND_BY_FIELD: dict[int, FeatureKind] = {1: "bytes", 2: "float", 3: "int64"}
_FIELD_BY_KIND = {kind: field for field, kind in _KIND_BY_FIELD.items()}
_WIRE_VARINT, _WIRE_FIXED64, _WIRE_LEN, _WIRE_FIXED32 = 0, 1, 2, 5
# Tag byte of `repeated bytes value = 1` followed by a length of one: the common case for the
# Multi-Object Datasets, which store every image and mask byte as its own one-byte string.
_ONE_BYTE_ENTRY = (0x0A, 0x01)


@dataclass(frozen=True)
class RawFeature:
    """One undecoded feature of an Example.

    Attributes:
        kind: Which list the feature holds.
        payload: The serialized ``BytesList``/``FloatList``/``Int64List`` message.
    """

    kind: FeatureKind
    payload: memoryview


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise DataFormatError("malformed Example: a varint runs past the end of its message")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise DataFormatError("malformed Example: a varint is longer than 10 bytes")


def _fields(buf: memoryview) -> list[tuple[int, int, memoryview | int]]:
    """Split one message into (field number, wire type, value) triples."""
    out: list[tuple[int, int, memoryview | int]] = []
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == _WIRE_LEN:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise DataFormatError(
                    f"malformed Example: field {field} claims {size} bytes but only "
                    f"{end - pos} remain in its message"
                )
            out.append((field, wire, buf[pos : pos + size]))
            pos += size
        elif wire == _WIRE_VARINT:
            value, pos = _varint(buf, pos)
            out.append((field, wire, value))
        elif wire in (_WIRE_FIXED32, _WIRE_FIXED64):
            size = 4 if wire == _WIRE_FIXED32 else 8
            if pos + size > end:
                raise DataFormatError(f"malformed Example: field {field} is cut short")
            out.append((field, wire, buf[pos : pos + size]))
            pos += size
        else:
            raise DataFormatError(f"malformed Example: unsupported wire type {wire}")
    return out


def _decode_entry(entry: memoryview) -> tuple[str, RawFeature]:
    """One ``map<string, Feature>`` entry -> (name, feature)."""
    name: str | None = None
    # A feature with an empty list serializes as an empty Feature message.
    raw = RawFeature("bytes", memoryview(b""))
    for field, wire, value in _fields(entry):
        if wire != _WIRE_LEN:
            continue
        assert isinstance(value, memoryview)
        if field == 1:
            try:
                name = bytes(value).decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataFormatError("malformed Example: a feature name is not UTF-8") from err
        elif field == 2:
            for kind_field, kind_wire, payload in _fields(value):
                if kind_wire == _WIRE_LEN and kind_field in _KIND_BY_FIELD:
                    assert isinstance(payload, memoryview)
                    raw = RawFeature(_KIND_BY_FIELD[kind_field], payload)
    if name is None:
        raise DataFormatError("malformed Example: a feature has no name")
    return name, raw


def decode_example(data: bytes | memoryview) -> dict[str, RawFeature]:
    """Split a serialized ``tf.train.Example`` into its named features.

    Args:
        data: The serialized Example (one TFRecord payload).

    Returns:
        Feature name -> `RawFeature`, in the order they appear in the record.

    Raises:
        DataFormatError: If the bytes are not a well-formed Example.
    """
    features: dict[str, RawFeature] = {}
    for field, wire, features_msg in _fields(memoryview(data)):
        if field != 1 or wire != _WIRE_LEN:
            continue
        assert isinstance(features_msg, memoryview)
        for entry_field, entry_wire, entry in _fields(features_msg):
            if entry_field == 1 and entry_wire == _WIRE_LEN:
                assert isinstance(entry, memoryview)
                name, raw = _decode_entry(entry)
                features[name] = raw
    return features


def one_byte_values(payload: memoryview) -> np.ndarray:
    """Decode a ``BytesList`` whose every entry is exactly one byte, as the datasets store pixels.

    Args:
        payload: The serialized BytesList.

    Returns:
        uint8 array [num_entries]; a read-only view into ``payload`` where possible.

    Raises:
        DataFormatError: If an entry is not exactly one byte long.
    """
    arr = np.frombuffer(payload, dtype=np.uint8)
    # Fast path: every entry is the three bytes (tag 0x0A, length 1, value).
    if (
        arr.size % 3 == 0
        and np.all(arr[0::3] == _ONE_BYTE_ENTRY[0])
        and np.all(arr[1::3] == _ONE_BYTE_ENTRY[1])
    ):
        return arr[2::3]
    values = bytearray()
    for field, wire, value in _fields(payload):
        if field != 1 or wire != _WIRE_LEN:
            continue
        assert isinstance(value, memoryview)
        if len(value) != 1:
            raise DataFormatError(
                "expected one byte per entry of the bytes list, found an entry of "
                f"{len(value)} bytes"
            )
        values += value
    return np.frombuffer(bytes(values), dtype=np.uint8)


def float_values(payload: memoryview) -> np.ndarray:
    """Decode a ``FloatList`` (packed or not).

    Args:
        payload: The serialized FloatList.

    Returns:
        float32 array [num_values].
    """
    chunks: list[np.ndarray] = []
    for field, wire, value in _fields(payload):
        if field != 1 or wire not in (_WIRE_LEN, _WIRE_FIXED32):
            continue
        assert isinstance(value, memoryview)
        if len(value) % 4:
            raise DataFormatError("malformed FloatList: packed length is not a multiple of 4")
        chunks.append(np.frombuffer(value, dtype="<f4"))
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(chunks).astype(np.float32, copy=False)


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _len_field(field: int, payload: bytes) -> bytes:
    return _varint_bytes((field << 3) | _WIRE_LEN) + _varint_bytes(len(payload)) + payload


def encode_one_byte_list(values: np.ndarray) -> bytes:
    """Serialize uint8 values as a ``BytesList`` of one-byte entries (the datasets' pixel format).

    Args:
        values: uint8 array of any shape; written in C order.

    Returns:
        The serialized BytesList.
    """
    flat = np.ascontiguousarray(values, dtype=np.uint8).reshape(-1)
    out = np.empty((flat.size, 3), dtype=np.uint8)
    out[:, 0], out[:, 1], out[:, 2] = _ONE_BYTE_ENTRY[0], _ONE_BYTE_ENTRY[1], flat
    return out.tobytes()


def encode_float_list(values: np.ndarray) -> bytes:
    """Serialize float values as a packed ``FloatList``.

    Args:
        values: Array of any shape; cast to little-endian float32 and written in C order.

    Returns:
        The serialized FloatList.
    """
    packed = np.ascontiguousarray(values, dtype="<f4").tobytes()
    return _len_field(1, packed) if packed else b""


def encode_example(features: Mapping[str, tuple[FeatureKind, bytes]]) -> bytes:
    """Serialize a ``tf.train.Example`` from already serialized lists.

    Args:
        features: Feature name -> (kind, serialized list), e.g. from `encode_one_byte_list`.
            The insertion order is kept, so a decoded record re-encodes byte for byte.

    Returns:
        The serialized Example.
    """
    entries = b"".join(
        _len_field(
            1,
            _len_field(1, name.encode("utf-8"))
            + _len_field(2, _len_field(_FIELD_BY_KIND[kind], payload)),
        )
        for name, (kind, payload) in features.items()
    )
    return _len_field(1, entries)
