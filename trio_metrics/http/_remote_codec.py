"""Prometheus' remote write and remote read messages, sans-IO: bytes in, columns out, and back.

The bodies are snappy *blocks* (``cramjam``) of protobuf messages from
Prometheus' ``prompb/remote.proto`` and ``types.proto`` (release 2.42; the
files, stripped of their gogoproto options, and the code protoc made of
them are in ``_prompb/``).

Two paths are written by hand, because the protobuf runtime cannot keep up
on them (measured: about 84,000 samples per CPU-second decoding a realistic
``WriteRequest`` with the upb runtime, attribute access being most of it):

- :func:`decode_write_request` walks a ``WriteRequest`` and turns it
  straight into the three columns ``Store.put_batch`` takes. The labels of
  a series are the same bytes request after request, so their key is
  looked up by those bytes (:class:`SeriesKeys`) and only a new series is
  decoded label by label and checked.
- :func:`encode_read_response` writes the samples of a ``ReadResponse``.

``ReadRequest`` (a few small queries) is decoded by the generated code. A
test decodes what the protobuf runtime encodes, and the other way round.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import struct
from collections.abc import Iterable, Sequence
from typing import Final

import attrs
import cramjam

from ..wire import MAX_KEY_BYTES, key_from_labels

__all__ = [
    "STALE_NAN_BITS",
    "Matcher",
    "Query",
    "RemoteFormatError",
    "SeriesKeys",
    "WriteBatch",
    "compress",
    "decode_read_request",
    "decode_write_request",
    "decompress",
    "encode_read_response",
]

#: The bits of the NaN that Prometheus sends to mark a series as gone.
STALE_NAN_BITS: Final = 0x7FF0000000000002

_DOUBLE: Final = struct.Struct("<d")
_BITS: Final = struct.Struct("<Q")
#: A Sample field at the end of a TimeSeries: tag, length 16, the value's
#: tag, the value, the timestamp's tag, a 6-byte varint of milliseconds.
_USUAL_SAMPLE: Final = struct.Struct("<3sdc6s")
_LABEL_NAME: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_INT64_WRAP: Final = 1 << 64
_INT64_MAX: Final = (1 << 63) - 1


class RemoteFormatError(ValueError):
    """A body that is not a valid remote write or remote read request."""


# --- snappy -------------------------------------------------------------------


def decompress(body: bytes, max_bytes: int) -> bytes:
    """The snappy block ``body`` decompressed, refused if it would pass ``max_bytes``.

    The block starts with its decompressed length, read before anything is
    decompressed, so a small body cannot make the server hold a huge one.
    """
    try:
        size, _ = _varint(body, 0, len(body))
    except RemoteFormatError:
        raise RemoteFormatError("the body is not a snappy block (no length)") from None
    if size > max_bytes:
        raise RemoteFormatError(
            f"the body decompresses to {size} bytes, over the limit of {max_bytes}"
        )
    try:
        return bytes(cramjam.snappy.decompress_raw(body))
    except Exception as exc:  # cramjam raises its own DecompressionError
        raise RemoteFormatError(f"the body is not a valid snappy block: {exc}") from None


def compress(data: bytes) -> bytes:
    """``data`` as a snappy block."""
    return bytes(cramjam.snappy.compress_raw(data))


# --- protobuf primitives ------------------------------------------------------


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it."""
    result = 0
    shift = 0
    while pos < end:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            if shift > 63:
                raise RemoteFormatError("a varint is longer than 10 bytes")
            return result, pos
        shift += 7
    raise RemoteFormatError("the message is cut short inside a varint")


def _skip_field(data: bytes, pos: int, end: int) -> int:
    """The position after the field (tag and all) at ``pos``; unknown fields are skipped."""
    tag, pos = _varint(data, pos, end)
    wire_type = tag & 7
    if tag >> 3 == 0:
        raise RemoteFormatError("a field has number 0")
    if wire_type == 0:
        _, pos = _varint(data, pos, end)
    elif wire_type == 1:
        pos += 8
    elif wire_type == 2:
        length, pos = _varint(data, pos, end)
        pos += length
    elif wire_type == 5:
        pos += 4
    else:
        raise RemoteFormatError(f"wire type {wire_type} is not used by these messages")
    if pos > end:
        raise RemoteFormatError("a field runs past the end of its message")
    return pos


def _six_byte_seconds(stamp: bytes) -> int | None:
    """The seconds of a 6-byte varint of milliseconds, or None if it is not one."""
    if stamp[5] >= 0x80 or min(stamp[:5]) < 0x80:
        return None
    return _varint(stamp, 0, 6)[0] // 1000


def _write_varint(value: int, out: bytearray) -> None:
    value &= _INT64_WRAP - 1  # negative int64s are ten bytes, as protobuf writes them
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _write_bytes(field_tag: int, data: bytes, out: bytearray) -> None:
    out.append(field_tag)
    _write_varint(len(data), out)
    out += data


# --- remote write -------------------------------------------------------------


@attrs.define
class WriteBatch:
    """What one ``WriteRequest`` holds: the points to store, as columns, and counts."""

    keys: list[str] = attrs.field(factory=list)
    values: list[float] = attrs.field(factory=list)
    #: Seconds (milliseconds truncated).
    timestamps: list[int] = attrs.field(factory=list)
    series: int = 0
    samples: int = 0
    #: Samples left out: Prometheus' staleness markers.
    stale: int = 0
    #: Samples left out: NaN or infinite values, or timestamps before 1970.
    unstorable: int = 0
    metadata: int = 0


class SeriesKeys:
    """The key of each series, by the bytes of its labels in a ``WriteRequest``.

    Only a series not seen before is decoded and checked: its labels must be
    UTF-8 without NUL, its label names Prometheus' (``[a-zA-Z_][a-zA-Z0-9_]*``),
    each once. Holds at most ``max_entries`` series, then starts afresh.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        #: Encoded labels -> key, for every series seen (and checked) so far.
        self.cached: dict[bytes, str] = {}

    def __len__(self) -> int:
        return len(self.cached)

    def key_of(self, encoded_labels: bytes) -> str:
        """The key of the series whose ``Label`` fields are ``encoded_labels``."""
        key = self.cached.get(encoded_labels)
        if key is None:
            key = _key_of_labels(encoded_labels)
            if len(self.cached) >= self.max_entries:
                self.cached.clear()
            self.cached[encoded_labels] = key
        return key


def _key_of_labels(data: bytes) -> str:
    labels: list[tuple[str, str]] = []
    pos, end = 0, len(data)
    while pos < end:
        if data[pos] != 0x0A:
            pos = _skip_field(data, pos, end)  # an unknown field of TimeSeries
            continue
        length, pos = _varint(data, pos + 1, end)
        labels.append(_label(data, pos, pos + length))
        pos += length
    if not labels:
        raise RemoteFormatError("a series has no labels")
    try:
        key = key_from_labels(labels)
    except ValueError as exc:
        raise RemoteFormatError(f"series {_show(labels)}: {exc}") from None
    if len(key.encode()) > MAX_KEY_BYTES:
        raise RemoteFormatError(
            f"series {_show(labels)}: its key is longer than {MAX_KEY_BYTES} bytes"
        )
    return key


def _label(data: bytes, pos: int, end: int) -> tuple[str, str]:
    if end > len(data):
        raise RemoteFormatError("a label runs past the end of its series")
    fields = {1: b"", 2: b""}
    while pos < end:
        tag = data[pos]
        if tag in (0x0A, 0x12):
            length, start = _varint(data, pos + 1, end)
            pos = start + length
            if pos > end:
                raise RemoteFormatError("a label's text runs past the end of the label")
            fields[tag >> 3] = data[start:pos]
        else:
            pos = _skip_field(data, pos, end)
    try:
        name, value = fields[1].decode(), fields[2].decode()
    except UnicodeDecodeError:
        raise RemoteFormatError("a label is not UTF-8") from None
    if "\0" in name or "\0" in value:
        raise RemoteFormatError(f"label {name!r}={value!r} holds a NUL character")
    if not _LABEL_NAME.fullmatch(name):
        raise RemoteFormatError(f"{name!r} is not a Prometheus label name")
    return name, value


def _show(labels: Sequence[tuple[str, str]]) -> str:
    text = "{" + ", ".join(f"{name}={value!r}" for name, value in labels) + "}"
    return text if len(text) <= 120 else text[:117] + "..."


def decode_write_request(data: bytes, keys: SeriesKeys, max_series: int) -> WriteBatch:
    """The points of the ``WriteRequest`` ``data``, ready for ``Store.put_batch``.

    Staleness markers are left out, and so are samples the store cannot
    hold (NaN or infinite values, timestamps before 1970): each is counted.
    Metadata is counted and otherwise ignored, as are exemplars and native
    histograms. Raises :exc:`RemoteFormatError` for a message that does not
    decode, a series whose labels no key can hold, or more than
    ``max_series`` series.
    """
    try:
        return _decode_write_request(data, keys, max_series)
    except IndexError:
        raise RemoteFormatError("the message is cut short") from None


def _decode_write_request(data: bytes, keys: SeriesKeys, max_series: int) -> WriteBatch:
    batch = WriteBatch()
    out_keys, out_values, out_stamps = batch.keys, batch.values, batch.timestamps
    unpack_tail = _USUAL_SAMPLE.unpack_from
    unpack_double = _DOUBLE.unpack_from
    isfinite = math.isfinite
    key_of = keys.key_of
    cached = keys.cached.get
    stamps_seen: dict[bytes, int] = {}
    pos, end = 0, len(data)
    series = stale = unstorable = samples = 0
    while pos < end:
        tag = data[pos]
        if tag != 0x0A:  # not a TimeSeries
            if tag == 0x1A:
                batch.metadata += 1
            pos = _skip_field(data, pos, end)
            continue
        series += 1
        if series > max_series:
            raise RemoteFormatError(f"more than {max_series} series in one request")
        length = data[pos + 1]
        if length < 0x80:
            start = pos + 2
        elif data[pos + 2] < 0x80:
            length = (length & 0x7F) | (data[pos + 2] << 7)
            start = pos + 3
        else:
            length, start = _varint(data, pos + 1, end)
        stop = start + length
        if stop > end:
            raise RemoteFormatError("a series runs past the end of the request")
        # The usual shape, as Prometheus writes it: the labels, then one
        # sample of a value and a 6-byte timestamp (a date of 1971..2109)
        # at the very end. Labels seen (and checked) before say it is so.
        if length >= _USUAL_SAMPLE.size:
            head, value, stamp_tag, stamp = unpack_tail(data, stop - _USUAL_SAMPLE.size)
            if head == b"\x12\x10\x09" and stamp_tag == b"\x10":
                known = cached(data[start : stop - _USUAL_SAMPLE.size])
                seconds = stamps_seen.get(stamp)
                if seconds is None:
                    seconds = _six_byte_seconds(stamp)
                    if seconds is not None:
                        stamps_seen[stamp] = seconds
                if known is not None and seconds is not None:
                    samples += 1
                    if isfinite(value):
                        out_keys.append(known)
                        out_values.append(value)
                        out_stamps.append(seconds)
                    elif _BITS.unpack(_DOUBLE.pack(value))[0] == STALE_NAN_BITS:
                        stale += 1
                    else:
                        unstorable += 1
                    pos = stop
                    continue
        p = start
        while p < stop and data[p] == 0x0A:
            length = data[p + 1]
            if length < 0x80:
                p += 2 + length
            else:
                length, p = _varint(data, p + 1, stop)
                p += length
        if p > stop:
            raise RemoteFormatError("a label runs past the end of its series")
        labels_end = p
        key = key_of(data[start:labels_end])
        first = len(out_keys)
        late_labels: list[bytes] = []
        while p < stop:
            tag = data[p]
            if tag == 0x12:  # a Sample
                length, q = _varint(data, p + 1, stop)
                p = q + length
                if p > stop:
                    raise RemoteFormatError("a sample runs past the end of its series")
                value = 0.0
                millis = 0
                while q < p:
                    field = data[q]
                    if field == 0x09 and q + 9 <= p:
                        value = unpack_double(data, q + 1)[0]
                        q += 9
                    elif field == 0x10:
                        millis, q = _varint(data, q + 1, p)
                    else:
                        q = _skip_field(data, q, p)
                samples += 1
                if not isfinite(value):
                    if _BITS.unpack(_DOUBLE.pack(value))[0] == STALE_NAN_BITS:
                        stale += 1
                    else:
                        unstorable += 1
                elif millis > _INT64_MAX:  # a negative int64: before 1970
                    unstorable += 1
                else:
                    out_keys.append(key)
                    out_values.append(value)
                    out_stamps.append(millis // 1000)
            elif tag == 0x0A:  # a label after the samples: allowed, if unusual
                q = _skip_field(data, p, stop)
                late_labels.append(data[p:q])
                p = q
            else:  # exemplars, native histograms, unknown fields
                p = _skip_field(data, p, stop)
        if late_labels:
            key = key_of(data[start:labels_end] + b"".join(late_labels))
            out_keys[first:] = [key] * (len(out_keys) - first)
        pos = stop
    batch.series = series
    batch.samples = samples
    batch.stale = stale
    batch.unstorable = unstorable
    return batch


# --- remote read --------------------------------------------------------------


@attrs.frozen
class Matcher:
    """One ``LabelMatcher``: ``kind`` is ``=``, ``!=``, ``=~`` or ``!~``."""

    kind: str
    name: str
    value: str
    #: The fully anchored expression of ``=~`` and ``!~``.
    pattern: re.Pattern[str] | None = None

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether a series with ``labels`` passes (a missing label is ``""``)."""
        got = labels.get(self.name, "")
        if self.kind == "=":
            return got == self.value
        if self.kind == "!=":
            return got != self.value
        assert self.pattern is not None
        return (self.pattern.fullmatch(got) is not None) == (self.kind == "=~")


@attrs.frozen
class Query:
    """One ``Query`` of a ``ReadRequest``: milliseconds, both ends included."""

    start_ms: int
    end_ms: int
    matchers: tuple[Matcher, ...]


# LabelMatcher.Type's values: EQ, NEQ, RE, NRE.
_KINDS: Final = {0: "=", 1: "!=", 2: "=~", 3: "!~"}


def decode_read_request(data: bytes) -> list[Query]:
    """The queries of the ``ReadRequest`` ``data``.

    Raises :exc:`RemoteFormatError` for a message that does not decode, a
    regular expression that does not compile, or a request that accepts only
    response types other than ``SAMPLES``.
    """
    # Loaded with the first read: the protobuf runtime is not needed before.
    from google.protobuf.message import DecodeError

    from ._prompb import remote_pb2

    try:
        request = remote_pb2.ReadRequest.FromString(data)
    except DecodeError as exc:
        raise RemoteFormatError(f"the body is not a ReadRequest: {exc}") from None
    accepted = set(request.accepted_response_types)
    if accepted and remote_pb2.ReadRequest.SAMPLES not in accepted:
        raise RemoteFormatError("only the SAMPLES response type is served")
    queries = []
    for query in request.queries:
        matchers = []
        for matcher in query.matchers:
            kind = _KINDS.get(matcher.type)
            if kind is None:
                raise RemoteFormatError(f"unknown matcher type {matcher.type}")
            pattern = None
            if kind in ("=~", "!~"):
                try:
                    pattern = re.compile(matcher.value)
                except (re.error, RecursionError) as exc:
                    raise RemoteFormatError(
                        f"bad regular expression {matcher.value!r}: {exc}"
                    ) from None
            matchers.append(Matcher(kind, matcher.name, matcher.value, pattern))
        queries.append(Query(query.start_timestamp_ms, query.end_timestamp_ms, tuple(matchers)))
    return queries


def encode_read_response(
    results: Iterable[Iterable[tuple[Sequence[tuple[str, str]], bytes]]],
) -> bytes:
    """A ``ReadResponse``: per query, its series as (sorted labels, encoded samples).

    The samples of a series are encoded beforehand by :func:`encode_samples`.
    """
    out = bytearray()
    for series_list in results:
        result = bytearray()
        for labels, samples in series_list:
            series = b"".join([*map(_label_field, labels), samples])
            _write_bytes(0x0A, series, result)
        _write_bytes(0x0A, bytes(result), out)
    return bytes(out)


@functools.lru_cache(maxsize=65_536)
def _label_field(label: tuple[str, str]) -> bytes:
    """One ``labels`` field of a ``TimeSeries`` (labels repeat from series to series)."""
    body = bytearray()
    _write_bytes(0x0A, label[0].encode(), body)
    _write_bytes(0x12, label[1].encode(), body)
    field = bytearray()
    _write_bytes(0x0A, bytes(body), field)
    return bytes(field)


def encode_samples(series: Sequence[tuple[Sequence[int], Sequence[float]]]) -> list[bytes]:
    """The ``samples`` fields of each ``TimeSeries``: ``(timestamps, values)``, seconds sent as ms.

    Every timestamp must be at most ``(2**63 - 1) // 1000`` (an int64 of ms).
    Written with numpy, all series at once, a row of bytes per sample (the
    samples whose timestamp varints have one length are one matrix): a
    Python loop over a read's samples would cost about a microsecond each.
    """
    import numpy as np  # loaded with the first read, as for Graphite queries

    counts = [len(timestamps) for timestamps, _ in series]
    if not sum(counts):
        return [b""] * len(series)
    millis = np.concatenate([np.asarray(t, dtype=np.int64) for t, _ in series]) * 1000
    numbers = np.concatenate([np.asarray(v, dtype="<f8") for _, v in series])
    sizes = np.ones(len(millis), dtype=np.int64)
    for shift in range(7, 63, 7):
        sizes += millis >= (1 << shift)
    widths = 12 + sizes
    ends = np.cumsum(widths)
    starts = ends - widths

    def rows_of(chosen: slice | np.ndarray) -> np.ndarray:
        size = int(sizes[chosen][0])
        rows = np.empty((len(millis[chosen]), 12 + size), dtype=np.uint8)
        rows[:, 0] = 0x12
        rows[:, 1] = 10 + size
        rows[:, 2] = 0x09
        rows[:, 3:11] = numbers[chosen].view(np.uint8).reshape(-1, 8)
        rows[:, 11] = 0x10
        stamps = millis[chosen]
        for index in range(size):
            more = 0x80 if index < size - 1 else 0
            rows[:, 12 + index] = ((stamps >> (7 * index)) & 0x7F) | more
        return rows

    if sizes[0] == sizes[-1] and (sizes == sizes[0]).all():
        data = rows_of(slice(None)).tobytes()  # the usual case: one matrix is the answer
    else:
        flat = np.empty(int(ends[-1]), dtype=np.uint8)
        for size in np.unique(sizes).tolist():
            chosen = np.flatnonzero(sizes == size)
            flat[starts[chosen][:, None] + np.arange(12 + size)] = rows_of(chosen)
        data = flat.tobytes()
    # Series k's samples are [firsts[k], firsts[k + 1]); its bytes start where its first does.
    firsts = np.cumsum([0, *counts])
    bounds = np.append(starts, len(data))[firsts].tolist()
    return [data[begin:end] for begin, end in itertools.pairwise(bounds)]
