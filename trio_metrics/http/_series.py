"""``GET /api/v1/series``: the points of keys within a time range, streamed.

The request is checked whole before anything is sent: its parameters, and
the number of points it would send against the per-request limit (a 400
past it). Then the answer goes out key by key, in chunks of about 64 KiB:
each key's columns are copied from the store when its turn comes (16 bytes
per point, as a protocol ``get`` does) and encoded a slice at a time, so a
request holds one key's copy and one chunk, never the whole answer, and
other tasks run between chunks.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Iterator, Sequence
from typing import Final

import attrs
import trio

from ..storage import Store, query_tier
from ..wire import MAX_TIMESTAMP, is_valid_key
from ._chart import chart_steps
from ._messages import CHUNK_BYTES, BadRequest, Request, Response

__all__ = [
    "DEFAULT_MAX_POINTS",
    "MAX_SERIES_KEYS",
    "SeriesQuery",
    "series_response",
]

#: The most ``key`` parameters one ``/api/v1/series`` request may name.
MAX_SERIES_KEYS: Final = 100
#: The most points one ``/api/v1/series`` answer may hold, by default.
DEFAULT_MAX_POINTS: Final = 1_000_000
# Points formatted per step of the encoder (about 50 KiB of text).
_SLICE_POINTS: Final = 2048


@attrs.frozen
class SeriesQuery:
    """A checked ``/api/v1/series`` request: distinct keys, inclusive bounds, reduction."""

    keys: tuple[str, ...]
    first: int
    last: int
    max_points: int | None

    @classmethod
    def from_request(cls, request: Request) -> SeriesQuery:
        """The query a request asks for; raises :exc:`BadRequest` saying what is wrong."""
        keys = request.query.get("key", [])
        if not keys:
            raise BadRequest("give at least one key parameter")
        if len(keys) > MAX_SERIES_KEYS:
            raise BadRequest(f"at most {MAX_SERIES_KEYS} key parameters")
        first = _timestamp(request, "from", 0)
        last = _timestamp(request, "until", MAX_TIMESTAMP)
        if first > last:
            raise BadRequest(f"from ({first}) is after until ({last})")
        max_points = _max_points(request)
        for key in keys:
            if not is_valid_key(key):
                raise BadRequest(f"invalid key {key!r}")
        return cls(tuple(dict.fromkeys(keys)), first, last, max_points)

    def sent(self, in_range: int) -> int:
        """How many of a key's ``in_range`` points the answer holds."""
        return in_range if self.max_points is None else min(in_range, self.max_points)


async def series_response(store: Store, query: SeriesQuery, limit: int) -> Response:
    """The streamed answer to ``query``; raises :exc:`BadRequest` if it would hold
    more than ``limit`` points.

    Counting reads each key once before the answer starts (one key's copy
    at a time), so a failing store is a 500, not a cut answer.
    """
    total = 0
    for key in query.keys:
        total += query.sent(len(await _range_of(store, key, query)))
        if total > limit:
            hint = "a narrower range" if query.max_points else "max_points or a narrower range"
            raise BadRequest(
                f"the answer would hold over {limit} points, the limit per request: ask for {hint}"
            )
    return Response.streamed(_encode(store, query))


class _Range:
    """A key's points within the bounds, on the step of the retention tier that
    covers them (0: as put): a copy of the range's columns."""

    __slots__ = ("start", "step", "stop", "timestamps", "values")

    def __init__(self, timestamps: Sequence[int], values: Sequence[float], step: int):
        self.timestamps = timestamps
        self.values = values
        self.step = step
        self.start = 0
        self.stop = len(timestamps)

    def __len__(self) -> int:
        return self.stop - self.start


async def _range_of(store: Store, key: str, query: SeriesQuery) -> _Range:
    """``key``'s range from the finest tier that covers it; lets other tasks run
    after the copy (a store that does not suspend would otherwise copy every
    key of a request in one go)."""
    step, found = await query_tier(store, key, query.first, query.last)
    await trio.lowlevel.checkpoint()
    if found is None:
        return _Range((), (), step)
    return _Range(found.timestamps, found.values, step)


async def _encode(store: Store, query: SeriesQuery) -> AsyncGenerator[bytes, None]:
    """The answer's JSON in chunks of about :data:`CHUNK_BYTES`, key by key."""
    buffer = bytearray(b'{"from":%d,"until":%d,"series":[' % (query.first, query.last))
    for number, key in enumerate(query.keys):
        found = await _range_of(store, key, query)
        buffer += b'%s{"key":%s,"step":%d,"total":%d,"points":[' % (
            b"," if number else b"",
            json.dumps(key).encode(),
            found.step,
            len(found),
        )
        separator = b""
        for piece in _point_texts(found, query.max_points):
            if piece is None:
                await trio.lowlevel.checkpoint()
                continue
            buffer += separator
            buffer += piece
            separator = b","
            if len(buffer) >= CHUNK_BYTES:
                yield bytes(buffer)  # the sender lets other tasks run after each chunk
                buffer.clear()
        buffer += b"]}"
    buffer += b"]}"
    yield bytes(buffer)


def _point_texts(found: _Range, max_points: int | None) -> Iterator[bytes | None]:
    """``[ts,value]`` pairs joined by commas, a slice of points at a time; None where
    the encoder should let other tasks run (a long reduction)."""
    stamps, values = found.timestamps, found.values
    if max_points is None or len(found) <= max_points:
        for low in range(found.start, found.stop, _SLICE_POINTS):
            high = min(low + _SLICE_POINTS, found.stop)
            # repr(float) is JSON for every finite value, and the store holds no other.
            yield ",".join(map("[{},{!r}]".format, stamps[low:high], values[low:high])).encode()
        return
    batch: list[int] = []
    for index in chart_steps(values, found.start, found.stop, max_points):
        if index is not None:
            batch.append(index)
        if batch and (index is None or len(batch) == _SLICE_POINTS):
            yield ",".join(f"[{stamps[i]},{values[i]!r}]" for i in batch).encode()
            batch = []
        if index is None:
            yield None
    if batch:
        yield ",".join(f"[{stamps[i]},{values[i]!r}]" for i in batch).encode()


def _timestamp(request: Request, name: str, default: int) -> int:
    text = request.param(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit() and len(text) <= 19) or int(text) > MAX_TIMESTAMP:
        raise BadRequest(f"{name} must be whole unix seconds in 0..{MAX_TIMESTAMP}")
    return int(text)


def _max_points(request: Request) -> int | None:
    text = request.param("max_points")
    if text is None:
        return None
    if not (text.isascii() and text.isdigit() and len(text) <= 9) or int(text) < 3:
        raise BadRequest("max_points must be a whole number of at least 3")
    return int(text)
