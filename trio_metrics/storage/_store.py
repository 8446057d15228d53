"""The metric store: per-key time series, one value per second, no I/O.

:class:`MetricStore` keeps each key's series as two parallel typed arrays
(``array('q')`` timestamps kept sorted, ``array('d')`` values), 16 bytes per
point instead of a Python object per point. The server talks to any object
that satisfies :class:`Store`, whose methods are awaitable so that a store
doing I/O (a write-ahead log, a remote backend) fits without touching the
server.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from typing import Final, NamedTuple, Protocol

from ._copy_budget import BYTES_PER_POINT, CopyBudget, NeedRoom, Taken
from ._key_index import SortedKeys

__all__ = [
    "KEY_PAGE",
    "MetricStore",
    "Series",
    "Store",
    "StoreUnavailableError",
    "TierRange",
    "query_tier",
]

#: Keys per page of :meth:`MetricStore.sorted_keys` unless told.
KEY_PAGE: Final = 1024


class StoreUnavailableError(Exception):
    """The store cannot take points now (its disk failed, or it is closed).

    The server answers each put of the refused batch with the protocol's
    error answer, rather than acknowledge a point it could not keep; a read
    that gets it ends its connection.
    """


class Series(NamedTuple):
    """A snapshot of one key's points: timestamps ascending, values alongside."""

    key: str
    timestamps: Sequence[int]
    values: Sequence[float]


class TierRange(NamedTuple):
    """What a range reader gets: the points, and the step they are on (0: as put)."""

    step: int
    series: Series | None


class Store(Protocol):
    """What the server needs from a store.

    ``put_batch`` receives all consecutive puts of one pipelined read as
    three parallel columns and returns once they are stored (a durable
    store: once they are as safe as its policy promises); only then are
    their ``ok`` answers sent. ``query`` takes a key or ``"*"``.
    """

    async def put_batch(
        self, keys: Sequence[str], values: Sequence[float], timestamps: Sequence[int]
    ) -> None:
        """Store every point, in order (a later point wins over an earlier one)."""
        ...

    async def query(self, key: str) -> Iterable[Series]:
        """The series of ``key``, or of every key in first-stored order for ``"*"``.

        The result is consumed while the answer is written, possibly with
        other tasks running in between. Each series must be a consistent
        snapshot of its key when it is taken from the iterable; ``"*"`` need
        not be one snapshot across keys.
        """
        ...

    async def counts(self) -> tuple[int, int]:
        """Return (number of keys, number of points)."""
        ...

    async def query_range(self, key: str, start: int, end: int) -> Iterable[Series]:
        """The points of ``key`` (one key, no ``"*"``) with ``start <= timestamp <= end``.

        One series, a snapshot of the range only, or none when nothing is in it.
        """
        ...

    # A store may also have ``async def query_tier(key, start, end) -> TierRange``:
    # the finest retention tier that covers the range (see :func:`query_tier`).

    async def delete(self, keys: Sequence[str]) -> int:
        """Remove ``keys`` and all their points; return how many of them were stored.

        A durable store returns once the removal is as safe as its puts.
        """
        ...

    async def list_keys(self) -> list[str]:
        """Every stored key, in first-stored order."""
        ...

    async def keys_with_prefix(self, prefix: str, after: str, limit: int) -> list[str]:
        """Up to ``limit`` stored keys that start with ``prefix`` and sort after
        ``after`` (code point order), sorted.

        A page costs about ``limit``, not the number of keys: a caller lists
        many keys page by page (``after`` = the last key of the previous
        page), letting other tasks run in between; keys stored meanwhile
        appear if they sort after the page being read.
        """
        ...


class MetricStore:
    """In-memory store: one value per (key, second), last write wins.

    Reads return snapshots, so a reader never sees a series change under it.
    Appending in time order is O(1); an out-of-order point is placed by
    binary search (inserting is O(points of that key)).
    """

    def __init__(self) -> None:
        # A dict keeps insertion order, which is the order "get *" promises.
        self._series: dict[str, tuple[array[int], array[float]]] = {}
        self._sorted = SortedKeys()
        self._points = 0
        self._listeners: list[Callable[[str, int], None]] = []

    def add_change_listener(self, listener: Callable[[str, int], None]) -> None:
        """Call ``listener(key, index)`` whenever points of ``key`` from
        ``index`` on change other than by appending: an overwrite or an
        insertion before the last point. (Appends are not reported: what
        was there before stays as it was.)"""
        self._listeners.append(listener)

    def remove_change_listener(self, listener: Callable[[str, int], None]) -> None:
        """Stop calling ``listener``."""
        self._listeners.remove(listener)

    def _changed(self, key: str, index: int) -> None:
        for listener in self._listeners:
            listener(key, index)

    def __len__(self) -> int:
        """The number of stored points, over all keys."""
        return self._points

    def keys(self) -> list[str]:
        """Every key, in first-stored order."""
        return list(self._series)

    def sorted_keys(self, prefix: str = "", after: str = "", limit: int = KEY_PAGE) -> list[str]:
        """Up to ``limit`` keys that start with ``prefix`` and sort after ``after``, sorted
        (a bisection and a slice: see :meth:`Store.keys_with_prefix`)."""
        return self._sorted.page(prefix, after, limit)

    def put(self, key: str, value: float, timestamp: int) -> None:
        """Store one point, replacing any value ``key`` had at ``timestamp``."""
        self.put_columns((key,), (value,), (timestamp,))

    def put_many(self, points: Iterable[tuple[str, float, int]]) -> None:
        """Store ``(key, value, timestamp)`` points in order."""
        for key, value, timestamp in points:
            self.put_columns((key,), (value,), (timestamp,))

    def put_columns(
        self, keys: Sequence[str], values: Sequence[float], timestamps: Sequence[int]
    ) -> None:
        """Store the points given as parallel columns, in order."""
        series = self._series
        # Points that landed on a second their key already held (not new).
        held = 0
        for key, value, timestamp in zip(keys, values, timestamps, strict=True):
            # A subscript and an unpacking: cheaper per point than .get()
            # and two subscripts, and a new key is rare.
            try:
                stamps, numbers = series[key]
            except KeyError:
                series[key] = (array("q", (timestamp,)), array("d", (value,)))
                self._sorted.add(key)
                continue
            # (A key may have no points in its arrays: a tiered store's key
            # whose points are all in compressed blocks.)
            if stamps and timestamp > stamps[-1]:
                # The common case: time moves forward.
                stamps.append(timestamp)
                numbers.append(value)
                continue
            held += self._place(key, stamps, numbers, value, timestamp)
        self._points += len(keys) - held

    def _place(
        self, key: str, stamps: array[int], numbers: array[float], value: float, timestamp: int
    ) -> int:
        """Put a point at or before ``key``'s last; 1 if its second was held already."""
        if not stamps:
            stamps.append(timestamp)
            numbers.append(value)
            return 0
        if timestamp == stamps[-1]:
            index = len(stamps) - 1
            numbers[index] = value
            held = 1
        else:
            index = bisect_left(stamps, timestamp)
            if stamps[index] == timestamp:
                numbers[index] = value
                held = 1
            else:
                stamps.insert(index, timestamp)
                numbers.insert(index, value)
                held = 0
        if self._listeners:
            self._changed(key, index)
        return held

    def admit(
        self, keys: Sequence[str], values: Sequence[float], timestamps: Sequence[int]
    ) -> tuple[Sequence[str], Sequence[float], Sequence[int]]:
        """The points of a batch that will be stored: all of them (a store with
        retention rules drops those past their span, before they are logged)."""
        return keys, values, timestamps

    def store_admitted(
        self, keys: Sequence[str], values: Sequence[float], timestamps: Sequence[int]
    ) -> None:
        """Store points already admitted (:meth:`admit`): :meth:`put_columns`."""
        self.put_columns(keys, values, timestamps)

    def series_between(self, key: str, start: int, end: int) -> Series | None:
        """A snapshot of ``key``'s points with ``start <= timestamp <= end``, or None if none.

        Two bisections on the timestamp column; only the range is copied.
        """
        columns = self._series.get(key)
        if columns is None:
            return None
        stamps, numbers = columns
        first = bisect_left(stamps, start)
        stop = bisect_right(stamps, end, lo=first)
        if first == stop:
            return None
        return Series(key, stamps[first:stop], numbers[first:stop])

    def delete_keys(self, keys: Iterable[str]) -> int:
        """Remove ``keys`` with all their points; return how many were stored.

        Listeners hear of each removed key as a change from index 0, so
        that nothing encoded from its old points is shown again.
        """
        removed = 0
        for key in keys:
            columns = self._series.pop(key, None)
            if columns is None:
                continue
            self._sorted.remove(key)
            self._points -= len(columns[0])
            removed += 1
            if self._listeners:
                self._changed(key, 0)
        return removed

    def clear(self) -> None:
        """Forget every point (recovery starting over); listeners are not called."""
        self._series.clear()
        self._sorted.clear()
        self._points = 0

    def restore_series(self, key: str, timestamps: array[int], values: array[float]) -> None:
        """Install ``key``'s whole series, as recovery reads it from a snapshot.

        The columns are taken over, not copied; ``timestamps`` must be
        strictly ascending and as long as ``values``. Replaces what ``key`` had.
        """
        old = self._series.get(key)
        if old is None:
            self._sorted.add(key)
        else:
            self._points -= len(old[0])
        self._series[key] = (timestamps, values)
        self._points += len(timestamps)

    def series(self, key: str) -> list[Series]:
        """Snapshots of ``key``'s series (none if unknown), or of all for ``"*"``."""
        return list(self.iter_series(key))

    def iter_series(self, key: str) -> Iterator[Series]:
        """Like :meth:`series`, but each key is copied only when it is reached.

        With ``"*"`` over many keys, no single step copies them all (which
        would hold up every other connection); keys stored after the call
        are not included.
        """
        if key != "*":
            columns = self._series.get(key)
            if columns is not None:
                # Slicing an array copies its memory in one go.
                yield Series(key, columns[0][:], columns[1][:])
            return
        for each in list(self._series):
            columns = self._series.get(each)
            if columns is not None:  # not deleted since the call
                yield Series(each, columns[0][:], columns[1][:])

    async def put_batch(
        self, keys: Sequence[str], values: Sequence[float], timestamps: Sequence[int]
    ) -> None:
        """:class:`Store` interface: :meth:`put_columns` (never suspends)."""
        self.put_columns(keys, values, timestamps)

    async def query(self, key: str) -> Iterable[Series]:
        """:class:`Store` interface (never suspends): one key is copied at
        once, ``"*"`` key by key as the answer is written (:meth:`iter_series`)."""
        return self.iter_series(key) if key == "*" else self.series(key)

    async def counts(self) -> tuple[int, int]:
        """:class:`Store` interface: ``(len(keys()), len(self))`` (never suspends)."""
        return len(self._series), self._points

    async def list_keys(self) -> list[str]:
        """:class:`Store` interface: :meth:`keys` (never suspends)."""
        return self.keys()

    def iter_series_within(
        self, key: str, budget: CopyBudget
    ) -> Generator[Series | NeedRoom, None, None]:
        """Like :meth:`iter_series`, holding at most one key's copy, counted in ``budget``.

        Before copying a key it takes the copy's bytes from ``budget``; when
        they do not fit it yields :class:`NeedRoom` instead, and tries again
        when asked for the next item (the caller waits for room first). A
        key's bytes are handed back when the next item is asked for, or when
        the iterator is closed: the caller must be done with a series by then.
        """
        keys = list(self._series) if key == "*" else [key]
        held: Taken | None = None
        try:
            for each in keys:
                if held is not None:
                    budget.give_back(held)
                    held = None
                while (columns := self._series.get(each)) is not None:
                    need = len(columns[0]) * BYTES_PER_POINT
                    held = budget.try_take(need)
                    if held is not None:
                        yield Series(each, columns[0][:], columns[1][:])
                        break
                    yield NeedRoom(budget, need)
        finally:
            if held is not None:
                budget.give_back(held)

    async def keys_with_prefix(self, prefix: str, after: str, limit: int) -> list[str]:
        """:class:`Store` interface: :meth:`sorted_keys` (never suspends)."""
        return self.sorted_keys(prefix, after, limit)

    async def query_range(self, key: str, start: int, end: int) -> list[Series]:
        """:class:`Store` interface: :meth:`series_between` (never suspends)."""
        found = self.series_between(key, start, end)
        return [] if found is None else [found]

    async def query_tier(self, key: str, start: int, end: int) -> TierRange:
        """The points in range, as put (no retention tiers here: step 0)."""
        return TierRange(0, self.series_between(key, start, end))

    async def delete(self, keys: Sequence[str]) -> int:
        """:class:`Store` interface: :meth:`delete_keys` (never suspends)."""
        return self.delete_keys(keys)


async def query_tier(store: Store, key: str, start: int, end: int) -> TierRange:
    """``key``'s points within ``[start, end]`` from the finest retention tier that
    covers the whole range, with that tier's step (0: the points as put).

    A store without tiers (no ``query_tier`` method) answers with
    :meth:`Store.query_range`, step 0.
    """
    reader = getattr(store, "query_tier", None)
    if reader is not None:
        found: TierRange = await reader(key, start, end)
        return found
    return TierRange(0, next(iter(await store.query_range(key, start, end)), None))
