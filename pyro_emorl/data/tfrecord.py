"""TFRecord framing without TensorFlow: read and write the records of a (GZIP) TFRecord file.

A TFRecord file is a sequence of records, each framed as::

    uint64 length (little endian)
    uint32 masked CRC32C of the 8 length bytes
    byte   data[length]
    uint32 masked CRC32C of data

where ``masked(crc) = ((crc >> 15) | (crc << 17)) + 0xA282EAD8 (mod 2**32)``. DeepMind's
Multi-Object Datasets compress the whole stream with GZIP. Both checksums are verified, so a
truncated or corrupt file raises `RecordError` naming the record
instead of yielding garbage.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, Literal, cast

import google_crc32c

from pyro_emorl.data.atomic import atomic_path
from pyro_emorl.data.errors import RecordError

Compression = Literal["auto", "gzip", "none"]

_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")
_MASK_DELTA = 0xA282EAD8
_GZIP_MAGIC = b"\x1f\x8b"


def masked_crc32c(data: bytes | bytearray | memoryview) -> int:
    """The masked CRC32C that TFRecord stores beside the length and the data of each record.

    Args:
        data: The bytes to checksum.

    Returns:
        The masked checksum as an unsigned 32-bit integer.
    """
    crc = google_crc32c.value(bytes(data))
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def _open_stream(path: Path, compression: Compression) -> BinaryIO:
    if compression not in ("auto", "gzip", "none"):
        raise ValueError(f"compression must be 'auto', 'gzip' or 'none', got {compression!r}")
    use_gzip = compression == "gzip" or (compression == "auto" and _is_gzip(path))
    stream = gzip.open(path, "rb") if use_gzip else open(path, "rb")
    return cast(BinaryIO, stream)  # both are binary readers


# What a file that is not a TFRecord file may be, by its first bytes.
_SIGNATURES = {
    b"\x89HDF\r\n\x1a\n": "an HDF5 file (HDF5 files need no conversion: pass them as they are)",
    b"\x89PNG\r\n\x1a\n": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"PK\x03\x04": "a ZIP archive (unpack it first)",
    b"\x1f\x8b": "a GZIP file read as uncompressed (use compression='auto')",
}


def _not_tfrecord(path: Path, head: bytes) -> RecordError:
    """The error for a file whose first record header is invalid: name what it looks like."""
    kind = next((what for magic, what in _SIGNATURES.items() if head.startswith(magic)), None)
    if kind is None and head and all(32 <= b < 127 or b in b"\t\r\n" for b in head):
        kind = "a text file"
    looks = f"it looks like {kind}" if kind else "or it is damaged at its start"
    return RecordError(
        f"{path} is not a TFRecord file ({looks}): the header of its first record is invalid. "
        "Give the .tfrecords file of the dataset"
    )


def _read_exact(stream: BinaryIO, size: int, what: str, index: int, path: Path) -> bytes:
    try:
        data = stream.read(size)
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as err:
        # gzip raises EOFError when the compressed stream stops early and zlib.error or
        # BadGzipFile when it is damaged; say which record was being read.
        raise RecordError(
            f"{path}: cannot read the {what} of record {index}: the compressed stream is "
            f"truncated or corrupt ({err}). Re-download or re-create the file."
        ) from err
    if len(data) != size:
        if index == 0 and what == "header":
            raise _not_tfrecord(path, _head(path))
        raise RecordError(
            f"{path}: record {index} is truncated: its {what} needs {size} bytes but the file "
            f"ends after {len(data)}. Re-download or re-create the file."
        )
    return data


def _head(path: Path) -> bytes:
    """The first bytes of ``path`` as stored (before any decompression)."""
    with open(path, "rb") as f:
        return f.read(64)


def iter_records(
    path: str | os.PathLike[str], compression: Compression = "auto"
) -> Iterator[bytes]:
    """Yield the data of every record of a TFRecord file, verifying both checksums.

    The file is streamed, so files larger than memory are fine.

    Args:
        path: The TFRecord file.
        compression: ``"gzip"``, ``"none"``, or ``"auto"`` to detect GZIP from the magic bytes.

    Yields:
        The serialized payload of each record (a ``tf.train.Example`` in the Multi-Object
        Datasets).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        RecordError: If a record is truncated, a checksum does not match, or the GZIP stream is
            damaged. The message names the record index.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"TFRecord file not found: {path}")
    with _open_stream(path, compression) as stream:
        index = 0
        while True:
            try:
                first = stream.read(1)
            except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as err:
                raise RecordError(
                    f"{path}: cannot read record {index}: the file is not a valid (GZIP) TFRecord "
                    f"file or its compressed stream is truncated or corrupt ({err})."
                ) from err
            if not first:
                return
            header = first + _read_exact(stream, _HEADER.size - 1, "header", index, path)
            length, length_crc = _HEADER.unpack(header)
            if masked_crc32c(header[:8]) != length_crc:
                if index == 0:
                    raise _not_tfrecord(path, _head(path))
                raise RecordError(
                    f"{path}: record {index} has a corrupt length field (CRC32C mismatch): the "
                    "file is damaged. Re-download or re-create the file."
                )
            body = _read_exact(stream, length + _FOOTER.size, "data", index, path)
            data = body[:length]
            (data_crc,) = _FOOTER.unpack_from(body, length)
            if masked_crc32c(data) != data_crc:
                raise RecordError(
                    f"{path}: record {index} is corrupt: the CRC32C of its {length} data bytes "
                    "does not match the stored checksum. Re-download or re-create the file."
                )
            yield data
            index += 1


def frame_record(data: bytes) -> bytes:
    """Frame one payload as a TFRecord record (length, checksums).

    Args:
        data: The serialized payload.

    Returns:
        ``len(data) + 16`` bytes ready to be appended to a TFRecord stream.
    """
    length = struct.pack("<Q", len(data))
    return (
        length
        + struct.pack("<I", masked_crc32c(length))
        + data
        + struct.pack("<I", masked_crc32c(data))
    )


def write_records(
    path: str | os.PathLike[str],
    records: Iterable[bytes],
    compression: Literal["gzip", "none"] = "gzip",
) -> Path:
    """Write payloads as a TFRecord file, atomically (temporary file, then rename).

    Args:
        path: Destination file.
        records: Serialized payloads, e.g. from `pyro_emorl.data.records.encode_record`.
        compression: ``"gzip"`` (what the Multi-Object Datasets use) or ``"none"``.

    Returns:
        The destination path.
    """
    if compression not in ("gzip", "none"):
        raise ValueError(f"compression must be 'gzip' or 'none', got {compression!r}")
    with atomic_path(path) as tmp:
        # Level 6 is zlib's (and TensorFlow's) default; gzip.open's default 9 is much slower.
        stream = gzip.open(tmp, "wb", compresslevel=6) if compression == "gzip" else open(tmp, "wb")
        with stream:
            for data in records:
                stream.write(frame_record(data))
    return Path(path)
