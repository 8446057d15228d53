"""A bounded cache of encoded ``get`` answer lines, per key.

``repr(float)`` costs about half a microsecond per point, so answering
``get *`` over a million points by formatting them again on every read is
slow. :class:`AnswerCache` keeps the encoded data lines of each key in
chunks of up to :data:`~trio_metrics.wire.PIECE_BYTES` bytes and
reuses them while the points they show are unchanged.

Who owns what:

- The store holds numbers only. It tells its listeners which key changed,
  and from which index, whenever a point is overwritten or inserted before
  the end (:meth:`MetricStore.add_change_listener`); appends need no word.
- The protocol module does the encoding (:func:`encode_point_lines`).
- This cache owns the bytes and their invalidation: on a change at index
  ``i`` it drops the chunks from the one holding ``i`` onwards; on a read
  it picks the chunks that are valid at the moment of the snapshot, and
  encodes whatever the snapshot has beyond them. A chunk encoded from a
  snapshot is kept only if nothing changed in that key since. Its memory
  is bounded by ``budget`` bytes (least recently read keys go first).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Final

import attrs

from ..wire import encode_point_lines, points_per_piece

__all__ = ["DEFAULT_ANSWER_CACHE_BYTES", "AnswerCache"]

#: The default memory budget of the cache, in bytes of encoded text.
DEFAULT_ANSWER_CACHE_BYTES: Final = 64 * 1024 * 1024


@attrs.define
class _Entry:
    # Chunk j shows points [j * per_chunk, (j + 1) * per_chunk), where
    # per_chunk = points_per_piece(key); only full chunks are kept, so a
    # growing series never needs a chunk rebuilt, only new ones added.
    chunks: list[bytes] = attrs.Factory(list)
    nbytes: int = 0
    # Bumped by every invalidation (and eviction), so that a read encoding
    # from an older snapshot does not keep chunks of data changed since.
    epoch: int = 0


class AnswerCache:
    """Encoded data lines per key, reused across reads; see the module doc.

    Not thread-safe: used from the server's one trio thread. Entries exist
    only for keys with at least one cached chunk, so the number of entries
    is bounded by the budget too.
    """

    def __init__(self, budget: int = DEFAULT_ANSWER_CACHE_BYTES) -> None:
        if budget < 0:
            raise ValueError("budget must not be negative")
        self.budget: Final = budget
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        # Changes to keys that have no entry: a read that began with no
        # entry for its key may only create one if none happened since.
        self._changes_without_entry = 0
        self.nbytes = 0
        #: Points answered from cached chunks, and points encoded afresh.
        self.points_reused = 0
        self.points_encoded = 0

    def invalidate(self, key: str, index: int) -> None:
        """The points of ``key`` from ``index`` on changed (a store listener)."""
        entry = self._entries.get(key)
        if entry is None:
            self._changes_without_entry += 1
            return
        entry.epoch += 1
        keep = index // points_per_piece(key)
        if keep < len(entry.chunks):
            dropped = sum(map(len, entry.chunks[keep:]))
            del entry.chunks[keep:]
            entry.nbytes -= dropped
            self.nbytes -= dropped
        if not entry.chunks:
            del self._entries[key]

    def lines_of(
        self, key: str, timestamps: Sequence[int], values: Sequence[float]
    ) -> Iterator[bytes]:
        """The data lines of a snapshot of ``key``'s series, in pieces.

        Call it at the moment the snapshot is taken: the cached chunks that
        cover the snapshot's first points are picked now, and the rest is
        encoded (and, if nothing changed meanwhile and within the budget,
        cached) as the returned iterator is consumed.
        """
        per_chunk = points_per_piece(key)
        entry = self._entries.get(key)
        if entry is None:
            reused: list[bytes] = []
            epoch = self._changes_without_entry
        else:
            self._entries.move_to_end(key)
            reused = entry.chunks[: len(timestamps) // per_chunk]
            epoch = entry.epoch
        return self._pieces(key, per_chunk, entry, epoch, reused, timestamps, values)

    def _pieces(
        self,
        key: str,
        per_chunk: int,
        entry: _Entry | None,
        epoch: int,
        reused: list[bytes],
        timestamps: Sequence[int],
        values: Sequence[float],
    ) -> Iterator[bytes]:
        yield from reused
        self.points_reused += len(reused) * per_chunk
        count = len(timestamps)
        caching = True
        for start in range(len(reused) * per_chunk, count, per_chunk):
            stop = start + per_chunk
            piece = encode_point_lines(key, timestamps[start:stop], values[start:stop])
            self.points_encoded += min(stop, count) - start
            if caching and stop <= count:
                kept = self._keep(key, per_chunk, entry, epoch, start, piece)
                if kept is None:
                    caching = False
                else:
                    entry, epoch = kept
            yield piece

    def _keep(
        self, key: str, per_chunk: int, entry: _Entry | None, epoch: int, start: int, piece: bytes
    ) -> tuple[_Entry, int] | None:
        """Cache ``piece`` as the chunk starting at point ``start``, if still valid."""
        current = self._entries.get(key)
        if entry is None:
            if current is not None or self._changes_without_entry != epoch:
                return None  # the key changed, or another read cached it
        elif current is not entry or entry.epoch != epoch:
            return None  # the key changed or was evicted since the snapshot
        size = len(piece)
        if size > self.budget:
            return None
        while self.nbytes + size > self.budget:
            victim = next((k for k, e in self._entries.items() if e is not entry), None)
            if victim is None:
                return None
            evicted = self._entries.pop(victim)
            self.nbytes -= evicted.nbytes
            evicted.epoch += 1
        if entry is None:
            entry = self._entries[key] = _Entry()
        if len(entry.chunks) * per_chunk != start:
            return None
        entry.chunks.append(piece)
        entry.nbytes += size
        self.nbytes += size
        return entry, entry.epoch
