"""TFRecord framing, checksums, corruption handling and the Example codec."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyro_emorl.data.errors import DataFormatError, RecordError
from pyro_emorl.data.example import (
    decode_example,
    encode_example,
    encode_float_list,
    encode_one_byte_list,
    float_values,
    one_byte_values,
)
from pyro_emorl.data.tfrecord import iter_records, masked_crc32c, write_records

PAYLOADS = [b"first", b"", b"x" * 1000, bytes(range(256))]


def test_masked_crc32c_matches_the_published_check_value():
    # CRC32C("123456789") = 0xE3069283 (RFC 3720 check value), masked as TFRecord does.
    crc = 0xE3069283
    expected = (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
    assert masked_crc32c(b"123456789") == expected


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_write_then_read_round_trip(tmp_path, compression):
    path = write_records(tmp_path / "r.tfrecords", PAYLOADS, compression=compression)
    assert list(iter_records(path)) == PAYLOADS
    assert list(iter_records(path, compression=compression)) == PAYLOADS


def test_empty_file_has_no_records(tmp_path):
    path = write_records(tmp_path / "empty.tfrecords", [])
    assert list(iter_records(path)) == []


def _raw(tmp_path, payloads=PAYLOADS):
    path = write_records(tmp_path / "raw.tfrecords", payloads, compression="none")
    return path, bytearray(path.read_bytes())


def _offset(index, payloads=PAYLOADS):
    return sum(len(p) + 16 for p in payloads[:index])


def test_truncated_record_names_the_record(tmp_path):
    path, raw = _raw(tmp_path)
    cut = _offset(2) + 12 + 500  # inside the data of record 2
    path.write_bytes(raw[:cut])
    with pytest.raises(RecordError, match="record 2 is truncated"):
        list(iter_records(path))


def test_truncated_header_names_the_record(tmp_path):
    path, raw = _raw(tmp_path)
    path.write_bytes(raw[: _offset(3) + 5])
    with pytest.raises(RecordError, match="record 3 is truncated"):
        list(iter_records(path))


def test_corrupt_data_fails_the_checksum(tmp_path):
    path, raw = _raw(tmp_path)
    raw[_offset(2) + 12 + 10] ^= 0x01
    path.write_bytes(bytes(raw))
    records = iter_records(path)
    assert next(records) == PAYLOADS[0] and next(records) == PAYLOADS[1]
    with pytest.raises(RecordError, match="record 2 is corrupt"):
        next(records)


def test_corrupt_length_is_detected_before_reading(tmp_path):
    path, raw = _raw(tmp_path)
    raw[_offset(1) + 3] ^= 0xFF  # a huge bogus length
    path.write_bytes(bytes(raw))
    with pytest.raises(RecordError, match="record 1 has a corrupt length"):
        list(iter_records(path))


def test_a_file_that_is_not_a_tfrecord_is_rejected(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("this is not a TFRecord file, just some text\n")
    with pytest.raises(
        RecordError, match=r"notes.txt is not a TFRecord file \(it looks like a text"
    ):
        list(iter_records(path))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        list(iter_records(tmp_path / "nope.tfrecords"))


def test_truncated_gzip_names_the_record(real_sample_path, tmp_path):
    data = real_sample_path.read_bytes()
    for cut in (200, len(data) // 2, len(data) - 3):
        path = tmp_path / f"cut{cut}.tfrecords"
        path.write_bytes(data[:cut])
        with pytest.raises(RecordError, match=r"record \d+"):
            list(iter_records(path))


def test_a_flipped_byte_anywhere_never_yields_silent_garbage(real_sample_path, tmp_path):
    """Either the damage is reported, or (gzip header fields nobody checks) data is intact."""
    original = list(iter_records(real_sample_path))
    data = real_sample_path.read_bytes()
    path = tmp_path / "flipped.tfrecords"
    reported = 0
    for pos in range(0, len(data), 7):
        damaged = bytearray(data)
        damaged[pos] ^= 0x10
        path.write_bytes(bytes(damaged))
        try:
            records = list(iter_records(path))
        except RecordError:
            reported += 1
            continue
        assert records == original, f"flipping byte {pos} gave different records silently"
    assert reported > 0.9 * len(range(0, len(data), 7))


def test_gzip_and_uncompressed_are_detected_automatically(tmp_path):
    payloads = [b"abc", b"defg"]
    gz = write_records(tmp_path / "a.tfrecords", payloads, compression="gzip")
    assert gz.read_bytes()[:2] == b"\x1f\x8b"
    raw = tmp_path / "b.tfrecords"
    raw.write_bytes(gzip.decompress(gz.read_bytes()))
    assert list(iter_records(raw)) == payloads


def test_invalid_compression_argument(tmp_path):
    with pytest.raises(ValueError, match="compression"):
        write_records(tmp_path / "x", [], compression="zip")
    path = write_records(tmp_path / "y", [b"a"])
    with pytest.raises(ValueError, match="compression"):
        list(iter_records(path, compression="bz2"))


# --- Example codec ---------------------------------------------------------------------------

names = st.text(min_size=1, max_size=12)
byte_arrays = st.binary(max_size=64).map(lambda b: ("bytes", np.frombuffer(b, np.uint8)))
float_arrays = st.lists(st.floats(allow_nan=False, width=32), max_size=16).map(
    lambda v: ("float", np.array(v, dtype=np.float32))
)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(names, st.one_of(byte_arrays, float_arrays), max_size=6))
def test_example_round_trip(features):
    encoded = encode_example(
        {
            name: (kind, encode_one_byte_list(v) if kind == "bytes" else encode_float_list(v))
            for name, (kind, v) in features.items()
        }
    )
    decoded = decode_example(encoded)
    assert list(decoded) == list(features)
    for name, (kind, values) in features.items():
        raw = decoded[name]
        got = one_byte_values(raw.payload) if raw.kind == "bytes" else float_values(raw.payload)
        assert raw.kind == kind
        np.testing.assert_array_equal(got, values)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_decoding_garbage_raises_only_data_format_errors(data):
    try:
        features = decode_example(data)
    except DataFormatError:
        return
    for raw in features.values():
        try:
            one_byte_values(raw.payload) if raw.kind == "bytes" else float_values(raw.payload)
        except DataFormatError:
            pass


def test_unpacked_floats_and_multi_byte_entries():
    # FloatList written unpacked: tag (1 << 3) | 5 then 4 bytes per value.
    unpacked = b"".join(b"\x0d" + struct.pack("<f", v) for v in (1.5, -2.0))
    np.testing.assert_array_equal(float_values(memoryview(unpacked)), [1.5, -2.0])
    # A BytesList with one 3-byte entry is not the datasets' pixel encoding.
    with pytest.raises(DataFormatError, match="one byte per entry"):
        one_byte_values(memoryview(b"\x0a\x03abc"))
