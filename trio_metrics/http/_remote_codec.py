"""Prometheus' remote write and remote read messages, sans-IO: bytes in, columns out, and back.

The bodies are snappy *blocks* (``cramjam``) of protobuf messages from
Prometheus' ``prompb/remote.proto`` and ``types.proto`` (release 2.42; the
files, stripped of their gogoproto options, and the code protoc made of
them are in ``_prompb/``).

Two paths are written by hand, because the protobuf runtime cannot keep up
on them (measured: about 84,000 samples per CPU-second decoding a realistic
``WriteRequest`` with the upb runtime, attribute access being most of it):

- :func:`decode_write_request` turns a ``WriteRequest`` straight into the
  three columns ``Store.put_batch`` takes. The protobuf runtime splits it
  into its series, as bytes (a message class made at run time, whose
  ``timeseries`` field is ``repeated bytes``). The labels of a series are
  the same bytes request after request, so their key is looked up by those
  bytes (:class:`SeriesKeys`), and the one sample at the end of each series
  is read with numpy, all series at once. Only a new series, or one of
  another shape, is decoded field by field and checked.
- :func:`encode_read_response` writes the samples of a ``ReadResponse``.

``ReadRequest`` (a few small queries) is decoded by the generated code. A
test decodes what the protobuf runtime encodes, and the other way round.
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
import re
import struct
from collections.abc import Iterable, Sequence
from typing import Any, Final, cast

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
    from google.protobuf.message import DecodeError

    try:
        skeleton = _write_skeleton().FromString(data)
    except DecodeError:
        raise RemoteFormatError(_framing_fault(data)) from None
    batch = WriteBatch(series=len(skeleton.timeseries), metadata=len(skeleton.metadata))
    if batch.series > max_series:
        raise RemoteFormatError(f"more than {max_series} series in one request")
    if batch.series:
        try:
            _decode_series(list(skeleton.timeseries), keys, batch)
        except IndexError:
            raise RemoteFormatError("the message is cut short") from None
    return batch


def _framing_fault(data: bytes) -> str:
    """What is wrong with a ``WriteRequest`` that the protobuf runtime refused."""
    pos, end = 0, len(data)
    try:
        while pos < end:
            if data[pos] == 0x0A:
                length, start = _varint(data, pos + 1, end)
                if start + length > end:
                    return "a series runs past the end of the request"
            pos = _skip_field(data, pos, end)
    except RemoteFormatError as exc:
        return str(exc)
    return "the body is not a valid WriteRequest (protobuf wire format)"


@functools.cache
def _write_skeleton() -> Any:
    """A message class that reads a ``WriteRequest``'s series and metadata as bytes.

    The protobuf runtime (upb, in C) then finds where each series begins and
    ends, and checks the request's outer framing, without a Python object
    per label.
    """
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="trio_metrics_write_skeleton.proto", package="trio_metrics", syntax="proto3"
    )
    message = proto.message_type.add(name="WriteSkeleton")
    for name, number in (("timeseries", 1), ("metadata", 3)):
        message.field.add(
            name=name, number=number, type=field.TYPE_BYTES, label=field.LABEL_REPEATED
        )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("trio_metrics.WriteSkeleton"))


#: The last 18 bytes of a series as Prometheus writes it: one Sample field
#: (tag, length 16, the value's tag, the value, the timestamp's tag and a
#: 6-byte varint of milliseconds, a date of 1971..2109). A Sample of value
#: 0.0 has no value field (protobuf leaves zeros out): its field is the last
#: 9 bytes, ``12 07 10`` and the varint. Fields overlap on purpose.
_TAIL_BYTES: Final = 18
_ZERO_TAIL_BYTES: Final = 9
_TAIL_FIELDS: Final[Any] = {
    "names": ["head", "value", "middle", "stamp"],
    "formats": ["<u4", "<f8", "<u4", "<u8"],
    "offsets": [0, 3, 8, 10],
    "itemsize": _TAIL_BYTES,
}
_labels_before_tail: Final = operator.itemgetter(slice(None, -_TAIL_BYTES))
_labels_before_zero_tail: Final = operator.itemgetter(slice(None, -_ZERO_TAIL_BYTES))
_tail: Final = operator.itemgetter(slice(-_TAIL_BYTES, None))


def _decode_series(bodies: list[bytes], keys: SeriesKeys, batch: WriteBatch) -> None:
    """Adds the samples of the ``TimeSeries`` messages ``bodies`` to ``batch``, in order.

    The usual series (labels seen before, then one sample at the very end)
    are read all at once with numpy: their labels' bytes are looked up in
    ``keys``, their tails read as columns. A labels block is only ever cached
    once it was decoded as nothing but ``Label`` fields, so a hit on the
    bytes before a well-formed tail proves the series has exactly that shape.
    Any other series is decoded field by field, in its place.
    """
    import numpy as np

    count = len(bodies)
    if min(map(len, bodies)) < _TAIL_BYTES:
        usual = np.zeros(count, dtype=bool)
        found: list[str | None] = [None] * count
        zero = usual
        values = np.zeros(count)
        seconds = np.zeros(count, dtype=np.int64)
    else:
        tails: Any = np.frombuffer(b"".join(map(_tail, bodies)), dtype=np.dtype(_TAIL_FIELDS))
        stamp = tails["stamp"] >> np.uint64(16)
        usual = (stamp & np.uint64(0x808080808080)) == np.uint64(0x008080808080)
        middle = tails["middle"]
        zero = usual & ((middle >> np.uint32(8)) == np.uint32(0x100712))
        usual &= ((tails["head"] & np.uint32(0xFFFFFF)) == np.uint32(0x091012)) & (
            (middle >> np.uint32(24)) == np.uint32(0x10)
        )
        millis = stamp & np.uint64(0x7F)
        for group in range(1, 6):
            millis |= (stamp >> np.uint64(group)) & np.uint64(0x7F << (7 * group))
        seconds = (millis // np.uint64(1000)).astype(np.int64)
        values = tails["value"]
        found = list(map(keys.cached.get, map(_labels_before_tail, bodies)))
        for index in np.flatnonzero(zero & ~usual).tolist():
            found[index] = keys.cached.get(_labels_before_zero_tail(bodies[index]))
        if zero.any():
            values = np.where(usual, values, 0.0)
        usual |= zero
    if usual.all() and None not in found:
        _add_usual(cast("list[str]", found), values, seconds, batch)
        return
    _add_each(bodies, keys, found, usual.tolist(), values.tolist(), seconds.tolist(), batch)


def _add_usual(found: list[str], values: Any, seconds: Any, batch: WriteBatch) -> None:
    import numpy as np

    batch.samples += len(found)
    finite = np.isfinite(values)
    if finite.all():
        batch.keys += found
        batch.values += values.tolist()
        batch.timestamps += seconds.tolist()
        return
    dropped = np.ascontiguousarray(values[~finite]).view(np.uint64)
    stale = int(np.count_nonzero(dropped == np.uint64(STALE_NAN_BITS)))
    batch.stale += stale
    batch.unstorable += len(dropped) - stale
    batch.keys += itertools.compress(found, finite.tolist())
    batch.values += values[finite].tolist()
    batch.timestamps += seconds[finite].tolist()


def _add_each(
    bodies: list[bytes],
    keys: SeriesKeys,
    found: list[str | None],
    usual: list[bool],
    values: list[float],
    seconds: list[int],
    batch: WriteBatch,
) -> None:
    for index, body in enumerate(bodies):
        key = found[index]
        if key is None or not usual[index]:
            _add_series(body, keys, batch)
            continue
        value = values[index]
        batch.samples += 1
        if math.isfinite(value):
            batch.keys.append(key)
            batch.values.append(value)
            batch.timestamps.append(seconds[index])
        elif _BITS.unpack(_DOUBLE.pack(value))[0] == STALE_NAN_BITS:
            batch.stale += 1
        else:
            batch.unstorable += 1


def _add_series(data: bytes, keys: SeriesKeys, batch: WriteBatch) -> None:
    """Adds one ``TimeSeries`` message, decoded field by field, to ``batch``."""
    stop = len(data)
    p = 0
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
    key = keys.key_of(data[:labels_end])
    out_keys, out_values, out_stamps = batch.keys, batch.values, batch.timestamps
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
                    value = _DOUBLE.unpack_from(data, q + 1)[0]
                    q += 9
                elif field == 0x10:
                    millis, q = _varint(data, q + 1, p)
                else:
                    q = _skip_field(data, q, p)
            batch.samples += 1
            if not math.isfinite(value):
                if _BITS.unpack(_DOUBLE.pack(value))[0] == STALE_NAN_BITS:
                    batch.stale += 1
                else:
                    batch.unstorable += 1
            elif millis > _INT64_MAX:  # a negative int64: before 1970
                batch.unstorable += 1
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
        key = keys.key_of(data[:labels_end] + b"".join(late_labels))
        out_keys[first:] = [key] * (len(out_keys) - first)


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
