"""The data directory's file formats, without files: framing, records, damage."""

from __future__ import annotations

import struct
import zlib
from array import array
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_metrics.storage import _log_format
from trio_metrics.storage._log_format import (
    FRAME_HEADER_SIZE,
    MAX_RECORD_SIZE,
    SNAPSHOT_MAGIC,
    BlockRecord,
    Damage,
    FormatError,
    decode_batch,
    decode_block,
    decode_series,
    decode_tier_state,
    decode_trailer,
    encode_batch,
    encode_block,
    encode_series,
    encode_tier_state,
    encode_trailer,
    frame,
    is_batch_record,
    is_snapshot_record,
    scan_records,
    snapshot_pieces,
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
    good = encode_batch(["after"], [1.0], [1])
    scan = scan_records(bogus + good, 0)
    assert scan.damage is Damage.CORRUPT
    assert "maximum" in scan.reason
    assert scan.payloads == []


def test_scan_starts_at_the_given_offset_and_reports_offsets() -> None:
    data, starts = _log(3)
    scan = scan_records(b"HEADER!!" + data, 8)
    assert scan.offsets == [8 + start for start in starts]
    assert scan.damage is None


#: The CRC32 of 8 zero bytes: a timestamp column holding 0 and then this
#: holds the header of an empty frame with good checksums.
CRC_OF_8_ZEROS = 1696784233


def _hiding(inner: bytes) -> list[int]:
    """Timestamps whose column holds the bytes ``inner`` (padded with zeros).

    They may be negative, which the format takes; through the protocol a
    writer would try record contents until every eighth byte fits.
    """
    padded = inner + bytes(-len(inner) % 8)
    return list(struct.unpack(f"<{len(padded) // 8}q", padded))


def _batch_hiding(stamps: list[int]) -> bytes:
    return encode_batch(["k"] * len(stamps), [0.0] * len(stamps), stamps)


A_FRAME_PATTERN = [0, CRC_OF_8_ZEROS] * 3
A_WHOLE_RECORD = _hiding(b"pad!" + encode_batch(["inner"], [2.0], [7]))


def test_the_frame_pattern_is_an_empty_frame_with_good_checksums() -> None:
    column = struct.pack("<2q", 0, CRC_OF_8_ZEROS)
    assert column[:FRAME_HEADER_SIZE] == frame(b"")
    scan = scan_records(column[:FRAME_HEADER_SIZE], 0)
    assert scan.damage is None
    assert scan.payloads == [b""]


@pytest.mark.parametrize("stamps", [A_FRAME_PATTERN, A_WHOLE_RECORD], ids=["empty", "record"])
def test_a_torn_record_is_never_searched_for_frames(stamps: list[int]) -> None:
    # A good header says how long its record is: nothing inside it is a frame.
    data, _ = _log(2)
    last_start = len(data)
    data += _batch_hiding(stamps)
    for cut in range(last_start + 1, len(data)):
        scan = scan_records(data[:cut], 0)
        assert scan.damage is Damage.TORN_TAIL, cut
        assert scan.good_end == last_start, cut


def test_records_with_good_headers_are_followed_to_the_end() -> None:
    # A bad payload (a page lost inside it), then a torn record hiding a
    # whole record: the headers say where each ends, so nothing follows.
    data, starts = _log(2)
    lost_page = bytearray(data)
    lost_page[starts[1] + FRAME_HEADER_SIZE + 1] ^= 0xFF
    torn = _batch_hiding(A_WHOLE_RECORD)[:-4]
    scan = scan_records(bytes(lost_page) + torn, 0)
    assert scan.damage is Damage.TORN_TAIL
    assert scan.good_end == starts[1]
    # The same with a good record after the torn one is damage.
    scan = scan_records(bytes(lost_page) + _batch_hiding(A_WHOLE_RECORD), 0)
    assert scan.damage is Damage.CORRUPT


def test_past_a_lost_header_an_empty_frame_is_not_readable_data() -> None:
    # The header's page never reached the disk; the payload's did.
    data, _ = _log(2)
    record = bytearray(_batch_hiding(A_FRAME_PATTERN))
    record[:FRAME_HEADER_SIZE] = bytes(FRAME_HEADER_SIZE)
    scan = scan_records(data + bytes(record), 0)
    assert scan.damage is Damage.TORN_TAIL
    assert scan.good_end == len(data)


def test_past_a_lost_header_a_whole_record_counts_as_readable_data() -> None:
    # Bytes that are a whole record with good checksums cannot be told from
    # one once the header before them is lost: refusing is the safe side.
    data, _ = _log(2)
    record = bytearray(_batch_hiding(A_WHOLE_RECORD))
    record[:FRAME_HEADER_SIZE] = bytes(FRAME_HEADER_SIZE)
    assert scan_records(data + bytes(record), 0).damage is Damage.CORRUPT


def test_a_record_check_decides_what_a_search_may_find() -> None:
    data, _ = _log(1)
    hole = bytes(FRAME_HEADER_SIZE + 3)
    snapshot_record = encode_series("k", array("q", [1]), array("d", [1.0]))
    assert scan_records(data + hole + snapshot_record, 0).damage is Damage.CORRUPT
    scan = scan_records(data + hole + snapshot_record, 0, is_batch_record)
    assert scan.damage is Damage.TORN_TAIL


adversarial_stamps = st.one_of(
    st.lists(st.one_of(timestamps, st.sampled_from([0, CRC_OF_8_ZEROS])), min_size=1, max_size=12),
    st.integers(1, 6).map(lambda n: [0, CRC_OF_8_ZEROS] * n),
    st.just(A_WHOLE_RECORD),
)


@st.composite
def adversarial_batches(draw: st.DrawFn) -> bytes:
    stamps = draw(adversarial_stamps)
    names = draw(st.lists(keys, min_size=len(stamps), max_size=len(stamps)))
    numbers = draw(st.lists(values, min_size=len(stamps), max_size=len(stamps)))
    return encode_batch(names, numbers, stamps)


@given(st.lists(adversarial_batches(), min_size=1, max_size=6), st.data())
def test_any_cut_of_any_log_keeps_exactly_the_whole_records_before_it(
    records: list[bytes], data: st.DataObject
) -> None:
    log = b"".join(records)
    cut = data.draw(st.integers(0, len(log)), label="cut")
    zeros = data.draw(st.sampled_from([0, 1, 4096]), label="zeros after the cut")
    ends = [sum(map(len, records[:i])) for i in range(len(records) + 1)]
    whole = [end for end in ends if end <= cut]
    scan = scan_records(log[:cut] + bytes(zeros), 0, is_batch_record)
    expected = [record[FRAME_HEADER_SIZE:] for record in records[: len(whole) - 1]]
    assert [bytes(payload) for payload in scan.payloads] == expected
    assert scan.good_end == whole[-1]
    if cut == whole[-1] and not zeros:
        assert scan.damage is None
    else:
        assert scan.damage is Damage.TORN_TAIL


LONG_KEY_BYTES = 60_000


def _long_key_series(count: int) -> list[tuple[str, array[int], array[float]]]:
    """``count`` keys of 60 KB, 3 points each."""
    return [
        (f"{i:05d}" + "x" * (LONG_KEY_BYTES - 5), array("q", [1, 2, 3]), array("d", [i, i, i]))
        for i in range(count)
    ]


def test_snapshot_pieces_are_sized_in_bytes_not_points() -> None:
    series = _long_key_series(200)
    budget = 1 << 20
    pieces = [b"".join(piece) for piece in snapshot_pieces(series, budget)]
    record = len(encode_series(*series[0]))
    assert len(pieces) > 10
    # Each piece is under the budget plus one record.
    assert max(map(len, pieces)) < budget + record
    data = b"".join(pieces)
    assert data.startswith(SNAPSHOT_MAGIC)
    scan = scan_records(data, len(SNAPSHOT_MAGIC))
    assert scan.damage is None
    assert decode_trailer(scan.payloads[-1]) == (200, 600)
    assert [decode_series(p).key for p in scan.payloads[:-1]] == [key for key, _, _ in series]


def test_snapshot_pieces_read_the_series_only_as_far_as_they_need() -> None:
    taken = []

    def each_series() -> Iterator[tuple[str, array[int], array[float]]]:
        for one in _long_key_series(100):
            taken.append(one[0])
            yield one

    pieces = snapshot_pieces(each_series(), 3 * LONG_KEY_BYTES)
    next(pieces)
    assert len(taken) == 3


def test_a_series_over_the_largest_record_is_split_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_log_format, "MAX_RECORD_SIZE", 1000)
    stamps = array("q", range(200))
    numbers = array("d", (float(t) for t in range(200)))
    data = b"".join(b"".join(piece) for piece in snapshot_pieces([("key", stamps, numbers)]))
    scan = scan_records(data, len(SNAPSHOT_MAGIC))
    assert scan.damage is None
    records = [decode_series(payload) for payload in scan.payloads[:-1]]
    assert len(records) == 4
    assert all(len(payload) <= 1000 for payload in scan.payloads)
    assert {record.key for record in records} == {"key"}
    assert array("q", b"".join(r.timestamps.tobytes() for r in records)) == stamps
    assert array("d", b"".join(r.values.tobytes() for r in records)) == numbers
    assert decode_trailer(scan.payloads[-1]) == (1, 200)


def test_a_batch_over_the_largest_record_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_log_format, "MAX_RECORD_SIZE", 1000)
    encode_batch(["k"] * 50, [1.0] * 50, list(range(50)))
    with pytest.raises(ValueError, match="over the 1000 maximum"):
        encode_batch(["k"] * 60, [1.0] * 60, list(range(60)))


@given(
    key=st.text(min_size=1, max_size=20).filter(lambda key: "\n" not in key),
    first=st.integers(-(2**63), 2**63 - 1),
    length=st.integers(0, 2**20),
    count=st.integers(1, 2**32 - 1),
    stamps=st.binary(max_size=40),
    values=st.binary(min_size=1, max_size=40),
)
def test_block_round_trip(
    key: str, first: int, length: int, count: int, stamps: bytes, values: bytes
) -> None:
    last = min(first + length, 2**63 - 1)
    block = BlockRecord(key, first, last, count, stamps, values)
    payload = encode_block(key, block)[FRAME_HEADER_SIZE:]
    assert decode_block(payload) == block
    assert is_snapshot_record(payload)
    # It is no other record.
    assert decode_batch_or_none(payload) is None
    assert decode_tier_state(payload) is None


def decode_batch_or_none(payload: bytes) -> object:
    try:
        return decode_batch(payload)
    except FormatError:
        return None


def test_block_layout() -> None:
    block = BlockRecord("k", 10, 20, 3, b"ST", b"VAL")
    payload = encode_block("k", block)[FRAME_HEADER_SIZE:]
    assert payload == struct.pack("<IIIqqI", 0xFFFFFFFB, 1, 3, 10, 20, 2) + b"kSTVAL"


@pytest.mark.parametrize(
    "payload",
    [
        struct.pack("<IIIqqI", 0xFFFFFFFB, 1, 0, 10, 20, 1) + b"kSV",  # no points
        struct.pack("<IIIqqI", 0xFFFFFFFB, 1, 3, 20, 10, 1) + b"kSV",  # last before first
        struct.pack("<IIIqqI", 0xFFFFFFFB, 0, 3, 10, 20, 1) + b"SV",  # no key
        struct.pack("<IIIqqI", 0xFFFFFFFB, 1, 3, 10, 20, 5) + b"kSV",  # stamps past the end
        struct.pack("<IIIqqI", 0xFFFFFFFB, 1, 3, 10, 20, 2) + b"kSV",  # no values
        struct.pack("<IIIqqI", 0xFFFFFFFB, 1, 3, 10, 20, 1) + b"\xffSV",  # key not UTF-8
    ],
)
def test_bad_block_payloads_are_format_errors(payload: bytes) -> None:
    with pytest.raises(FormatError):
        decode_block(payload)
    assert not is_snapshot_record(payload)


def test_snapshot_pieces_write_blocks_before_their_series() -> None:
    block = BlockRecord("a", 1, 2, 2, b"S", b"V")
    pieces = snapshot_pieces(
        [("a", [3], [3.0]), ("b", [], [])],
        blocks_of=lambda key: [block] if key == "a" else [],
        after_key=lambda key: encode_tier_state(key, 1, 0, [0]),
    )
    data = b"".join(b"".join(piece) for piece in pieces)
    payloads = scan_records(data, len(SNAPSHOT_MAGIC)).payloads
    assert decode_block(payloads[0]) == block
    assert decode_series(payloads[1]).key == "a"
    assert decode_tier_state(payloads[2]) is not None
    # A key with nothing outside its blocks (here: nothing at all) gets no series record.
    assert decode_tier_state(payloads[3]) is not None
    assert decode_trailer(payloads[4]) == (2, 3)
