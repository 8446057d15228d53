"""Reducing a series for a chart: each run's lowest and highest point, a bounded scan at a time.

:func:`chart_steps` is a plain generator, so it runs anywhere, but it
pauses (yields ``None``) after every :data:`SCAN_VALUES` values it scans:
the series encoder lets other tasks run there, so reducing two million
points never holds the event loop for more than a few milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Final

__all__ = ["SCAN_VALUES", "chart_steps", "iter_chart_indexes", "reduce_for_chart"]

#: Values scanned between two pauses of :func:`chart_steps`.
SCAN_VALUES: Final = 1 << 16


def chart_steps(values: Sequence[float], start: int, stop: int, limit: int) -> Iterator[int | None]:
    """Indexes of at most ``limit`` points of ``values[start:stop]``, ascending, with
    ``None`` after each :data:`SCAN_VALUES` values scanned.

    Past ``limit`` points the range is cut into equal runs, and each run
    keeps its lowest and highest point (the first of equal ones), so spikes
    and dips survive; the last point is always kept.
    """
    total = stop - start
    if total <= limit:
        yield from range(start, stop)
        return
    runs = (limit - 1) // 2
    scanned = 0
    last = -1
    for run in range(runs):
        low, high = start + run * total // runs, start + (run + 1) * total // runs
        smallest = largest = low
        for piece_start in range(low, high, SCAN_VALUES):
            piece = values[piece_start : min(piece_start + SCAN_VALUES, high)]
            # min() and list.index() on a slice find the place at C speed.
            lowest, highest = min(piece), max(piece)
            if lowest < values[smallest]:
                smallest = piece_start + piece.index(lowest)
            if highest > values[largest]:
                largest = piece_start + piece.index(highest)
            scanned += len(piece)
            if scanned >= SCAN_VALUES:
                scanned = 0
                yield None
        for index in sorted({smallest, largest}):
            yield index
            last = index
    if last != stop - 1:
        yield stop - 1


def iter_chart_indexes(values: Sequence[float], max_points: int) -> Iterator[int]:
    """The indexes of :func:`chart_steps` over all of ``values``, without the pauses."""
    return (index for index in chart_steps(values, 0, len(values), max_points) if index is not None)


def reduce_for_chart(values: Sequence[float], max_points: int) -> list[int]:
    """:func:`iter_chart_indexes` as a list."""
    return list(iter_chart_indexes(values, max_points))
