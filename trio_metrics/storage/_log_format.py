"""The on-disk formats of a data directory, as pure code: bytes in, records out.

Both file kinds, the write-ahead log (``log.NNNNNNNN``) and the snapshot
(``snapshot.NNNNNNNN``), are an 8-byte file header followed by framed
records. A frame is a 12-byte header and a payload::

    length   u32 LE   payload length in bytes
    crc      u32 LE   CRC32 of the payload
    head_crc u32 LE   CRC32 of the 8 bytes above

The header's own checksum tells a damaged length apart from a torn write:
without it, a flipped bit in a length in the middle of a file would look
like a record running past the end, and everything after it would be
dropped as a "torn tail". Once a header is known good, its length also
says where the next frame starts when the payload is bad or cut off, so
nothing inside a torn record is ever taken for a frame.

A log record holds one batch of points as columns::

    count u32 LE | count x timestamp i64 LE | count x value f64 LE | keys

``keys`` are the batch's keys in UTF-8 joined by ``\\n`` (a key never holds
one). A snapshot holds one record per key, in the store's key order::

    count u32 LE | key length u32 LE | key UTF-8 | timestamps | values

(a series too long for one record, over :data:`MAX_RECORD_SIZE`, is
several consecutive records of its key, which a reader joins)

A log record may instead remove keys (a delete; logs written before
deletes existed simply hold none)::

    0xFFFFFFFE u32 LE | count u32 LE | keys

with the ``count`` keys in UTF-8 joined by ``\\n``. Its mark is no batch's
count: a batch of that many points would be over :data:`MAX_RECORD_SIZE`.
Replay applies batches and deletes in log order.

A log record may also move one key's retention floors (a roll-up: see
:mod:`trio_metrics.storage._tiers`), applied in its place among the others::

    0xFFFFFFFD u32 LE | n u32 LE | n x floor i64 LE | key UTF-8

and a snapshot of a store with retention rules holds, after each such key's
series, the key's floors and the log position its copy reflects (the
segment and how many of that segment's records were applied), so that
replay skips for that key the records the copy already holds::

    0xFFFFFFFC u32 LE | segment u64 LE | applied u64 LE | n u32 LE | n x floor i64 LE | key UTF-8

and, before a key's series, the key's compressed blocks as memory holds
them (see :mod:`trio_metrics.storage._blocks`), oldest first, one record
each; the series record then holds only the points newer than the blocks::

    0xFFFFFFFB u32 LE | key length u32 LE | count u32 LE | first i64 LE | last i64 LE
    | stamps length u32 LE | key UTF-8 | stamps (pcodec) | values (pcodec)

A snapshot ends with a trailer record (``count`` = 0xFFFFFFFF, then the number of
keys and of points as u64 LE) so that a cut-off snapshot is never mistaken
for a complete one. Nothing here touches a file.
"""

from __future__ import annotations

import enum
import struct
import sys
import zlib
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

import attrs

__all__ = [
    "FRAME_HEADER_SIZE",
    "LOG_MAGIC",
    "MAX_RECORD_SIZE",
    "SNAPSHOT_MAGIC",
    "SNAPSHOT_PIECE_BYTES",
    "BlockRecord",
    "CompressedBlock",
    "Damage",
    "FormatError",
    "RollUpRecord",
    "Scan",
    "SeriesRecord",
    "TierState",
    "decode_batch",
    "decode_block",
    "decode_deletion",
    "decode_log_record",
    "decode_roll_up",
    "decode_series",
    "decode_tier_state",
    "decode_trailer",
    "encode_batch",
    "encode_block",
    "encode_deletion",
    "encode_roll_up",
    "encode_series",
    "encode_tier_state",
    "encode_trailer",
    "frame",
    "is_batch_record",
    "is_log_record",
    "is_snapshot_record",
    "scan_records",
    "snapshot_pieces",
]

LOG_MAGIC = b"TMLOG01\n"
SNAPSHOT_MAGIC = b"TMSNAP1\n"
FILE_HEADER_SIZE = 8

_HEAD = struct.Struct("<II")
_HEAD_CRC = struct.Struct("<I")
FRAME_HEADER_SIZE = 12
_COUNT = struct.Struct("<I")
_SERIES_HEAD = struct.Struct("<II")
_TRAILER = struct.Struct("<IQQ")
_TRAILER_MARK = 0xFFFFFFFF
_DELETION = struct.Struct("<II")
_DELETION_MARK = 0xFFFFFFFE
_ROLL_UP = struct.Struct("<II")
_ROLL_UP_MARK = 0xFFFFFFFD
_TIER_STATE = struct.Struct("<IQQI")
_TIER_STATE_MARK = 0xFFFFFFFC
_BLOCK = struct.Struct("<IIIqqI")
_BLOCK_MARK = 0xFFFFFFFB

#: No record is larger: a length beyond it is damage, not data.
MAX_RECORD_SIZE = 1 << 30

# The columns are written little-endian whatever the machine.
_SWAP = sys.byteorder != "little"


class FormatError(ValueError):
    """A payload whose checksum was right but whose content is not a record."""


def frame(payload: bytes) -> bytes:
    """The payload with its frame header in front."""
    head = _HEAD.pack(len(payload), zlib.crc32(payload))
    return head + _HEAD_CRC.pack(zlib.crc32(head)) + payload


class Damage(enum.Enum):
    """How a scan's first bad byte range looks."""

    #: Nothing readable follows the bad record: what a crash in the middle
    #: of a write leaves.
    TORN_TAIL = "torn tail"
    #: A good record follows the bad one: real damage.
    CORRUPT = "corrupt record"


@attrs.frozen
class Scan:
    """What :func:`scan_records` found in one file's bytes."""

    #: The payloads of the good records, in file order.
    payloads: list[memoryview]
    #: Where each good record's frame starts.
    offsets: list[int]
    #: The offset just past the last good record.
    good_end: int
    #: None when the whole file was good.
    damage: Damage | None = None
    #: Why the record at ``good_end`` is bad.
    reason: str = ""


def scan_records(
    data: bytes | memoryview,
    start: int,
    is_record: Callable[[memoryview], bool] | None = None,
) -> Scan:
    """Read the frames of ``data`` from offset ``start`` until the end or the first bad one.

    A bad frame is a :attr:`Damage.TORN_TAIL` when nothing readable
    follows it: cutting it loses nothing that could still be read, which
    is what a crash in the middle of a write, or pages of the last write
    reaching the disk out of order, leaves. With a good frame after it, it
    is :attr:`Damage.CORRUPT`. How "after" is judged is :func:`_judge`'s;
    ``is_record`` says whether a payload found by searching byte by byte
    holds a record (by default: a log or snapshot record of any kind).
    Never raises for bad bytes.
    """
    view = memoryview(data)
    size = len(view)
    payloads: list[memoryview] = []
    offsets: list[int] = []
    offset = start
    while offset < size:
        reason = _frame_problem(view, offset, size)
        if reason is not None:
            damage = _judge(view, offset, is_record or _holds_any_record)
            return Scan(payloads, offsets, offset, damage, reason)
        length = _HEAD.unpack_from(view, offset)[0]
        payloads.append(view[offset + FRAME_HEADER_SIZE : offset + FRAME_HEADER_SIZE + length])
        offsets.append(offset)
        offset += FRAME_HEADER_SIZE + length
    return Scan(payloads, offsets, offset)


#: How far past a bad frame :func:`scan_records` looks for a good one. Past
#: it, a bad stretch that is not all zeros counts as damage (the safe side).
RESYNC_WINDOW = 1 << 20


def _judge(view: memoryview, offset: int, is_record: Callable[[memoryview], bool]) -> Damage:
    """Whether anything readable follows the bad frame at ``offset``.

    A frame whose header checksum is good occupies its declared length, so
    the next frame starts right after it and nowhere inside it: bytes a
    torn record holds (points anyone can put) are never read as frames.
    Only past a header that is itself bad, whose length is unknown, is a
    good frame searched for byte by byte, and there it must hold a record.
    """
    size = len(view)
    if not any(view[offset:]):
        return Damage.TORN_TAIL
    position = offset
    while (end := _trusted_end(view, position)) is not None:
        if end >= size:
            return Damage.TORN_TAIL  # the bad frame reaches the end of the file
        if _frame_problem(view, end, size) is None:
            return Damage.CORRUPT
        position = end
    if _good_frame_after(view, position + 1, is_record):
        return Damage.CORRUPT
    return Damage.TORN_TAIL


def _trusted_end(view: memoryview, offset: int) -> int | None:
    """Where the frame at ``offset`` ends if its header can be believed, else None.

    It can when its checksum is good and the length is one a writer makes.
    """
    if len(view) - offset < FRAME_HEADER_SIZE:
        return None
    length: int = _HEAD.unpack_from(view, offset)[0]
    (head_crc,) = _HEAD_CRC.unpack_from(view, offset + 8)
    if zlib.crc32(view[offset : offset + 8]) != head_crc or length > MAX_RECORD_SIZE:
        return None
    return offset + FRAME_HEADER_SIZE + length


def _good_frame_after(
    view: memoryview, first: int, is_record: Callable[[memoryview], bool]
) -> bool:
    """Whether a good frame holding a record starts in ``first`` .. ``first + RESYNC_WINDOW``.

    An empty "frame" is 8 zero bytes and their CRC32, which a column of
    points can hold by chance; no record is empty, and requiring a record
    rules such chance patterns out.
    """
    size = len(view)
    last = min(size - FRAME_HEADER_SIZE, first + RESYNC_WINDOW)
    if size - first > RESYNC_WINDOW + FRAME_HEADER_SIZE and any(view[last:]):
        return True  # too far to search: assume readable data follows
    crc32 = zlib.crc32
    for candidate in range(first, last + 1):
        head = view[candidate : candidate + 8]
        if crc32(head) != _HEAD_CRC.unpack_from(view, candidate + 8)[0]:
            continue
        if _frame_problem(view, candidate, size) is None:
            length = _HEAD.unpack_from(view, candidate)[0]
            payload_start = candidate + FRAME_HEADER_SIZE
            if is_record(view[payload_start : payload_start + length]):
                return True
    return False


def _frame_problem(view: memoryview, offset: int, size: int) -> str | None:
    """Why the frame at ``offset`` is bad, or None if it is good."""
    if size - offset < FRAME_HEADER_SIZE:
        return "frame header cut off"
    length, crc = _HEAD.unpack_from(view, offset)
    (head_crc,) = _HEAD_CRC.unpack_from(view, offset + 8)
    if zlib.crc32(view[offset : offset + 8]) != head_crc:
        return "frame header checksum mismatch"
    if length > MAX_RECORD_SIZE:
        return f"record length {length} over the maximum"
    end = offset + FRAME_HEADER_SIZE + length
    if end > size:
        return f"record of {length} bytes cut off at {size - offset - FRAME_HEADER_SIZE}"
    if zlib.crc32(view[offset + FRAME_HEADER_SIZE : end]) != crc:
        return "record checksum mismatch"
    return None


def encode_batch(keys: Sequence[str], values: Sequence[float], timestamps: Sequence[int]) -> bytes:
    """A framed log record of one batch of points (parallel columns).

    Raises :exc:`ValueError` for columns of unequal length, an empty batch,
    a key holding a newline, or a record over :data:`MAX_RECORD_SIZE`, and
    :exc:`struct.error` for a timestamp outside the i64 range.
    """
    count = len(keys)
    if not count == len(values) == len(timestamps):
        raise ValueError("the columns of a batch must be of one length")
    joined = "\n".join(keys)
    if not count or joined.count("\n") != count - 1:
        raise ValueError("a batch needs at least one point, and no key may hold a newline")
    # struct packs a column about twice as fast as array(...).tobytes(),
    # and little-endian on any machine.
    payload = b"".join(
        (
            _COUNT.pack(count),
            struct.pack(f"<{count}q", *timestamps),
            struct.pack(f"<{count}d", *values),
            joined.encode(),
        )
    )
    if len(payload) > MAX_RECORD_SIZE:
        # Recovery would refuse it as damage: it must never be logged.
        raise ValueError(f"a batch of {len(payload)} bytes is over the {MAX_RECORD_SIZE} maximum")
    return frame(payload)


def decode_batch(payload: bytes | memoryview) -> tuple[list[str], array[float], array[int]]:
    """The ``(keys, values, timestamps)`` columns of one log record's payload."""
    view = memoryview(payload)
    if len(view) < _COUNT.size:
        raise FormatError("batch record shorter than its count")
    (count,) = _COUNT.unpack_from(view, 0)
    columns_end = _COUNT.size + 16 * count
    if len(view) < columns_end or count == 0:
        raise FormatError(f"batch record too short for {count} points")
    stamps = array("q")
    stamps.frombytes(view[_COUNT.size : _COUNT.size + 8 * count])
    numbers = array("d")
    numbers.frombytes(view[_COUNT.size + 8 * count : columns_end])
    if _SWAP:  # pragma: no cover
        stamps.byteswap()
        numbers.byteswap()
    try:
        keys = bytes(view[columns_end:]).decode().split("\n")
    except UnicodeDecodeError as exc:
        raise FormatError("batch record keys are not UTF-8") from exc
    if len(keys) != count:
        raise FormatError(f"batch record has {len(keys)} keys for {count} points")
    return keys, numbers, stamps


def encode_deletion(keys: Sequence[str]) -> bytes:
    """A framed log record that removes ``keys``.

    Raises :exc:`ValueError` for no keys, a key holding a newline, or a
    record over :data:`MAX_RECORD_SIZE`.
    """
    joined = "\n".join(keys)
    if not keys or joined.count("\n") != len(keys) - 1:
        raise ValueError("a delete needs at least one key, and no key may hold a newline")
    payload = _DELETION.pack(_DELETION_MARK, len(keys)) + joined.encode()
    if len(payload) > MAX_RECORD_SIZE:
        raise ValueError(f"a delete of {len(payload)} bytes is over the {MAX_RECORD_SIZE} maximum")
    return frame(payload)


def decode_deletion(payload: bytes | memoryview) -> list[str] | None:
    """The keys of a delete record's payload; None if it is not one.

    Raises :exc:`FormatError` for a payload marked as a delete that does not decode.
    """
    view = memoryview(payload)
    if len(view) < _DELETION.size or _COUNT.unpack_from(view, 0)[0] != _DELETION_MARK:
        return None
    count = _DELETION.unpack_from(view, 0)[1]
    try:
        keys = bytes(view[_DELETION.size :]).decode().split("\n")
    except UnicodeDecodeError as exc:
        raise FormatError("delete record keys are not UTF-8") from exc
    if count == 0 or len(keys) != count:
        raise FormatError(f"delete record has {len(keys)} keys, says {count}")
    return keys


@attrs.frozen
class RollUpRecord:
    """A log record that moves one key's retention floors."""

    key: str
    floors: tuple[int, ...]


def encode_roll_up(key: str, floors: Sequence[int]) -> bytes:
    """A framed log record that moves ``key``'s floors to ``floors``.

    Raises :exc:`ValueError` for no floors or a key holding a newline.
    """
    if not floors or "\n" in key or not key:
        raise ValueError("a roll-up needs a key without a newline and at least one floor")
    payload = _ROLL_UP.pack(_ROLL_UP_MARK, len(floors)) + _floors_bytes(floors) + key.encode()
    return frame(payload)


def decode_roll_up(payload: bytes | memoryview) -> RollUpRecord | None:
    """The roll-up in a log record's payload; None if it is not one.

    Raises :exc:`FormatError` for a payload marked as a roll-up that does not decode.
    """
    view = memoryview(payload)
    if len(view) < _ROLL_UP.size or _COUNT.unpack_from(view, 0)[0] != _ROLL_UP_MARK:
        return None
    count = _ROLL_UP.unpack_from(view, 0)[1]
    floors, key = _floors_and_key(view, _ROLL_UP.size, count, "roll-up")
    return RollUpRecord(key, floors)


@attrs.frozen
class TierState:
    """A snapshot record: one key's floors, and the log position its copy reflects."""

    key: str
    segment: int
    applied: int
    floors: tuple[int, ...]


def encode_tier_state(key: str, segment: int, applied: int, floors: Sequence[int]) -> bytes:
    """A framed snapshot record of ``key``'s floors (maybe none yet) and log position."""
    head = _TIER_STATE.pack(_TIER_STATE_MARK, segment, applied, len(floors))
    return frame(head + _floors_bytes(floors) + key.encode())


def decode_tier_state(payload: bytes | memoryview) -> TierState | None:
    """The tier state in a snapshot record's payload; None if it is not one."""
    view = memoryview(payload)
    if len(view) < _TIER_STATE.size or _COUNT.unpack_from(view, 0)[0] != _TIER_STATE_MARK:
        return None
    _, segment, applied, count = _TIER_STATE.unpack_from(view, 0)
    floors, key = _floors_and_key(view, _TIER_STATE.size, count, "tier state")
    return TierState(key, segment, applied, floors)


class CompressedBlock(Protocol):
    """What a snapshot needs of a compressed block (see :class:`~._blocks.Block`)."""

    @property
    def first(self) -> int: ...
    @property
    def last(self) -> int: ...
    @property
    def count(self) -> int: ...
    @property
    def stamps(self) -> bytes: ...
    @property
    def values(self) -> bytes: ...


@attrs.frozen
class BlockRecord:
    """A snapshot record: one compressed block of a key, its bytes as memory held them."""

    key: str
    first: int
    last: int
    count: int
    stamps: bytes
    values: bytes


def encode_block(key: str, block: CompressedBlock) -> bytes:
    """A framed snapshot record of one of ``key``'s compressed blocks (bytes as they are)."""
    encoded_key = key.encode()
    head = _BLOCK.pack(
        _BLOCK_MARK, len(encoded_key), block.count, block.first, block.last, len(block.stamps)
    )
    return frame(b"".join((head, encoded_key, block.stamps, block.values)))


def decode_block(payload: bytes | memoryview) -> BlockRecord | None:
    """The compressed block in a snapshot record's payload; None if it is not one.

    Raises :exc:`FormatError` for a payload marked as a block that does not decode.
    """
    view = memoryview(payload)
    if len(view) < _BLOCK.size or _COUNT.unpack_from(view, 0)[0] != _BLOCK_MARK:
        return None
    _, key_length, count, first, last, stamps_length = _BLOCK.unpack_from(view, 0)
    key_end = _BLOCK.size + key_length
    stamps_end = key_end + stamps_length
    if count == 0 or first > last or not key_length or stamps_end >= len(view):
        raise FormatError("block record of the wrong size")
    try:
        key = bytes(view[_BLOCK.size : key_end]).decode()
    except UnicodeDecodeError as exc:
        raise FormatError("block record key is not UTF-8") from exc
    return BlockRecord(
        key, first, last, count, bytes(view[key_end:stamps_end]), bytes(view[stamps_end:])
    )


def _floors_bytes(floors: Sequence[int]) -> bytes:
    column = array("q", floors)
    if _SWAP:  # pragma: no cover
        column.byteswap()
    return column.tobytes()


def _floors_and_key(
    view: memoryview, start: int, count: int, what: str
) -> tuple[tuple[int, ...], str]:
    key_start = start + 8 * count
    if len(view) <= key_start:
        raise FormatError(f"{what} record of the wrong size")
    column = array("q")
    column.frombytes(view[start:key_start])
    if _SWAP:  # pragma: no cover
        column.byteswap()
    try:
        key = bytes(view[key_start:]).decode()
    except UnicodeDecodeError as exc:
        raise FormatError(f"{what} record key is not UTF-8") from exc
    return tuple(column), key


def decode_log_record(
    payload: bytes | memoryview,
) -> tuple[list[str], array[float], array[int]] | list[str] | RollUpRecord:
    """A log record: a batch's ``(keys, values, timestamps)``, a delete's list of
    keys, or a :class:`RollUpRecord`.

    Raises :exc:`FormatError` for a payload that is none of them.
    """
    deleted = decode_deletion(payload)
    if deleted is not None:
        return deleted
    rolled = decode_roll_up(payload)
    return decode_batch(payload) if rolled is None else rolled


@attrs.frozen
class SeriesRecord:
    """One key's whole series, as a snapshot holds it."""

    key: str
    timestamps: array[int]
    values: array[float]


def encode_series(key: str, timestamps: array[int], values: array[float]) -> bytes:
    """A framed snapshot record of one key's series (columns already sorted)."""
    encoded_key = key.encode()
    if _SWAP:  # pragma: no cover
        timestamps = array("q", timestamps)
        values = array("d", values)
        timestamps.byteswap()
        values.byteswap()
    payload = b"".join(
        (
            _SERIES_HEAD.pack(len(timestamps), len(encoded_key)),
            encoded_key,
            timestamps.tobytes(),
            values.tobytes(),
        )
    )
    return frame(payload)


def decode_series(payload: bytes | memoryview) -> SeriesRecord:
    """The series in one snapshot record's payload."""
    view = memoryview(payload)
    if len(view) < _SERIES_HEAD.size:
        raise FormatError("series record shorter than its header")
    count, key_length = _SERIES_HEAD.unpack_from(view, 0)
    key_end = _SERIES_HEAD.size + key_length
    if count == _TRAILER_MARK or len(view) != key_end + 16 * count or count == 0:
        raise FormatError("series record of the wrong size")
    try:
        key = bytes(view[_SERIES_HEAD.size : key_end]).decode()
    except UnicodeDecodeError as exc:
        raise FormatError("series record key is not UTF-8") from exc
    stamps = array("q")
    stamps.frombytes(view[key_end : key_end + 8 * count])
    numbers = array("d")
    numbers.frombytes(view[key_end + 8 * count :])
    if _SWAP:  # pragma: no cover
        stamps.byteswap()
        numbers.byteswap()
    return SeriesRecord(key, stamps, numbers)


#: A snapshot is written in pieces of about this many bytes (records are
#: the key, 16 bytes per point and 20 bytes of headers), so that writing one
#: holds at most a piece and one record in memory, however long the keys.
SNAPSHOT_PIECE_BYTES = 1 << 20


def snapshot_pieces(
    series: Iterable[tuple[str, Sequence[int], Sequence[float]]],
    piece_bytes: int = SNAPSHOT_PIECE_BYTES,
    after_key: Callable[[str], bytes | None] | None = None,
    blocks_of: Callable[[str], Sequence[CompressedBlock]] | None = None,
) -> Iterator[list[bytes]]:
    """A whole snapshot file of ``series`` (in order), as pieces to write one after another.

    Each piece is a list of encoded parts: the first starts with the file
    header, the last ends with the trailer. A piece is under
    ``piece_bytes`` plus its last record. ``series`` is read lazily, one
    key per step, so the caller decides when each key is copied;
    ``after_key(key)``, called in the same step as the copy, may give one
    more record to write after the key's series (its :class:`TierState`),
    and ``blocks_of(key)``, also in that step, the key's compressed blocks,
    older than every point of its series, written as they are before it.
    A key's series may then be empty (no series record).
    """
    piece: list[bytes] = [SNAPSHOT_MAGIC]
    size = len(SNAPSHOT_MAGIC)
    keys = points = 0
    for key, timestamps, values in series:
        keys += 1
        points += len(timestamps)
        blocks = () if blocks_of is None else blocks_of(key)
        records = [encode_block(key, block) for block in blocks]
        points += sum(block.count for block in blocks)
        if len(timestamps):
            records.extend(_series_records(key, _column("q", timestamps), _column("d", values)))
        extra = None if after_key is None else after_key(key)
        if extra is not None:
            records.append(extra)
        for record in records:
            piece.append(record)
            size += len(record)
            if size >= piece_bytes:
                yield piece
                piece, size = [], 0
    piece.append(encode_trailer(keys, points))
    yield piece


def _column(typecode: str, column: Sequence[Any]) -> array[Any]:
    # The store hands out arrays, written as they are; other sequences are copied.
    return column if isinstance(column, array) else array(typecode, column)


def _series_records(key: str, timestamps: array[int], values: array[float]) -> Iterator[bytes]:
    """One key's series as snapshot records: one, or several in order when one
    would be over :data:`MAX_RECORD_SIZE` (recovery joins them).

    Raises :exc:`ValueError` for a key too long for any record.
    """
    per_record = (MAX_RECORD_SIZE - _SERIES_HEAD.size - len(key.encode())) // 16
    if per_record < 1:
        raise ValueError("a key too long for a snapshot record")
    if len(timestamps) <= per_record:
        yield encode_series(key, timestamps, values)
        return
    for start in range(0, len(timestamps), per_record):
        end = start + per_record
        yield encode_series(key, timestamps[start:end], values[start:end])


def encode_trailer(keys: int, points: int) -> bytes:
    """The framed record that ends a complete snapshot."""
    return frame(_TRAILER.pack(_TRAILER_MARK, keys, points))


def decode_trailer(payload: bytes | memoryview) -> tuple[int, int] | None:
    """``(keys, points)`` if ``payload`` is a snapshot trailer, else None."""
    if len(payload) != _TRAILER.size:
        return None
    mark, keys, points = _TRAILER.unpack_from(payload, 0)
    return (keys, points) if mark == _TRAILER_MARK else None


def is_batch_record(payload: bytes | memoryview) -> bool:
    """Whether ``payload`` decodes as a log record (never raises)."""
    try:
        decode_batch(payload)
    except FormatError:
        return False
    return True


def is_log_record(payload: bytes | memoryview) -> bool:
    """Whether ``payload`` decodes as a log record, batch or delete (never raises)."""
    try:
        decode_log_record(payload)
    except FormatError:
        return False
    return True


def is_snapshot_record(payload: bytes | memoryview) -> bool:
    """Whether ``payload`` decodes as a snapshot's series, tier state, block or
    trailer record (never raises)."""
    if decode_trailer(payload) is not None:
        return True
    try:
        if decode_tier_state(payload) is None and decode_block(payload) is None:
            decode_series(payload)
    except FormatError:
        return False
    return True


def _holds_any_record(payload: memoryview) -> bool:
    return is_log_record(payload) or is_snapshot_record(payload)
