"""The data directory's file formats, without files: framing, records, damage."""

from __future__ import annotations

import struct
import zlib
from array import array

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_metrics.storage._log_format import (
    FRAME_HEADER_SIZE,
    MAX_RECORD_SIZE,
    Damage,
    FormatError,
    decode_batch,
    decode_series,
    decode_trailer,
    encode_batch,
    encode_series,
    encode_trailer,
    frame,
    scan_records,
)
from trio_metrics.wire._protocol import MAX_TIMESTAMP, is_valid_key

keys = st.text(min_size=1, max_size=20).filter(is_valid_key)
values = st.floats(allow_nan=False, allow_infinity=False)
timestamps = st.integers(0, MAX_TIMESTAMP)
points = st.lists(st.tuples(keys, values, timestamps), min_size=1, max_size=50)


@given(points)
def test_batch_round_trip(batch: list[tuple[str, float, int]]) -> None:
    names = [key for key, _, _ in batch]
    numbers = [value for _, value, _ in batch]
    stamps = [ts for _, _, ts in batch]
    scan = scan_records(encode_batch(names, numbers, stamps), 0)
    assert scan.damage is None
    [payload] = scan.payloads
    decoded_keys, decoded_values, decoded_stamps = decode_batch(payload)
    assert decoded_keys == names
    assert list(decoded_values) == numbers
    assert list(decoded_stamps) == stamps


def test_batch_layout_is_little_endian_columns() -> None:
    record = encode_batch(["a", "bc"], [1.5, -2.0], [7, 8])
    payload = record[FRAME_HEADER_SIZE:]
    assert payload == (
        struct.pack("<I", 2) + struct.pack("<qq", 7, 8) + struct.pack("<dd", 1.5, -2.0) + b"a\nbc"
    )
    length, crc, head_crc = struct.unpack("<III", record[:FRAME_HEADER_SIZE])
    assert length == len(payload)
    assert crc == zlib.crc32(payload)
    assert head_crc == zlib.crc32(record[:8])


@given(keys, st.lists(st.tuples(timestamps, values), min_size=1, max_size=30))
def test_series_round_trip(key: str, series: list[tuple[int, float]]) -> None:
    stamps = array("q", sorted({ts for ts, _ in series}))
    numbers = array("d", [float(i) for i in range(len(stamps))])
    [payload] = scan_records(encode_series(key, stamps, numbers), 0).payloads
    record = decode_series(payload)
    assert (record.key, record.timestamps, record.values) == (key, stamps, numbers)
    assert decode_trailer(payload) is None


def test_trailer_round_trip_and_is_not_a_series() -> None:
    [payload] = scan_records(encode_trailer(3, 12), 0).payloads
    assert decode_trailer(payload) == (3, 12)
    with pytest.raises(FormatError):
        decode_series(payload)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x01\x00",
        struct.pack("<I", 0),
        struct.pack("<I", 2) + b"\x00" * 31,
        struct.pack("<I", 1) + b"\x00" * 16 + b"a\nb",
        struct.pack("<I", 1) + b"\x00" * 16 + b"\xff",
    ],
)
def test_bad_batch_payloads_are_format_errors(payload: bytes) -> None:
    with pytest.raises(FormatError):
        decode_batch(payload)


def _log(count: int) -> tuple[bytes, list[int]]:
    """A log body of ``count`` records and each record's start offset."""
    data = b""
    starts = []
    for i in range(count):
        starts.append(len(data))
        data += encode_batch([f"key.{i}", "other"], [float(i), -1.0], [i, 2 * i])
    return data, starts


def test_every_cut_keeps_exactly_the_whole_records_before_it() -> None:
    data, starts = _log(4)
    boundaries = [*starts, len(data)]
    for cut in range(len(data) + 1):
        scan = scan_records(data[:cut], 0)
        whole = [start for start in boundaries if start <= cut]
        assert len(scan.payloads) == len(whole) - 1, cut
        assert scan.good_end == whole[-1], cut
        if cut in boundaries:
            assert scan.damage is None, cut
        else:
            assert scan.damage is Damage.TORN_TAIL, cut


def test_zeros_after_the_last_record_are_a_torn_tail() -> None:
    data, _ = _log(2)
    scan = scan_records(data + bytes(100), 0)
    assert scan.damage is Damage.TORN_TAIL
    assert scan.good_end == len(data)
    assert len(scan.payloads) == 2


def test_a_flipped_byte_before_the_last_record_is_corruption_at_that_record() -> None:
    data, starts = _log(3)
    middle_start, middle_end = starts[1], starts[2]
    for position in range(middle_start, middle_end):
        damaged = bytearray(data)
        damaged[position] ^= 0x40
        scan = scan_records(bytes(damaged), 0)
        assert scan.damage is Damage.CORRUPT, position
        assert scan.good_end == middle_start, position
        assert len(scan.payloads) == 1


def test_any_bad_byte_in_the_last_record_is_a_torn_tail() -> None:
    # Nothing readable follows: cutting there loses nothing.
    data, starts = _log(2)
    for position in range(starts[1], len(data)):
        damaged = bytearray(data)
        damaged[position] ^= 0x01
        scan = scan_records(bytes(damaged), 0)
        assert scan.damage is Damage.TORN_TAIL, position
        assert scan.good_end == starts[1]


def test_a_hole_of_zeros_is_a_torn_tail_only_if_nothing_good_follows() -> None:
    # Pages of one write reaching the disk out of order leave a hole.
    data, starts = _log(6)
    hole = bytearray(data)
    hole[starts[3] + 5 : starts[5] + 5] = bytes(starts[5] - starts[3])
    scan = scan_records(bytes(hole), 0)
    assert scan.damage is Damage.TORN_TAIL
    assert scan.good_end == starts[3]
    hole_then_good = (
        bytes(hole[: starts[5] + 5]) + data[starts[5] + 5 :] + encode_batch(["k"], [1.0], [1])
    )
    scan = scan_records(hole_then_good, 0)
    assert scan.damage is Damage.CORRUPT
    assert scan.good_end == starts[3]


def test_an_absurd_length_with_a_good_header_checksum_is_damage() -> None:
    head = struct.pack("<II", MAX_RECORD_SIZE + 1, 0)
    bogus = head + struct.pack("<I", zlib.crc32(head))
    good = frame(b"after")
    scan = scan_records(bogus + good, 0)
    assert scan.damage is Damage.CORRUPT
    assert "maximum" in scan.reason
    assert scan.payloads == []


def test_scan_starts_at_the_given_offset_and_reports_offsets() -> None:
    data, starts = _log(3)
    scan = scan_records(b"HEADER!!" + data, 8)
    assert scan.offsets == [8 + start for start in starts]
    assert scan.damage is None
