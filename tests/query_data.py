"""A small in-memory store for the query tests: hand-written series and a fetch over them.

The fetch is a stand-in for the store's (the query layer takes any async fetch);
it answers every stored key that the glob matches, one slot per step from the
first multiple of the step at or after ``start`` up to ``end``, and records each
call so that a test can see which windows were read.
"""

from __future__ import annotations

import math

import numpy as np

from trio_metrics.query import TimeSeries
from trio_metrics.wire import compile_glob

STEP = 10
START, END = 1000, 1060  # six slots: 1000, 1010, ..., 1050

MAIN: dict[str, list[float | None]] = {
    "web1.cpu": [1.0, 2.0, None, 4.0, 5.0, 6.0],
    "web2.cpu": [10.0, 20.0, 30.0, None, 50.0, 60.0],
    "db1.cpu": [100.0, None, None, None, 500.0, 600.0],
    "web1.requests": [100.0, 110.0, 125.0, None, 150.0, 5.0],  # a counter, reset at the end
}


def stored_value(key: str, stamp: int) -> float | None:
    """The value of ``key`` at ``stamp``: MAIN inside [START, END); outside it only
    web1.cpu has values, (stamp - 1000) / 10 (so -1 at 990, 6 at 1060)."""
    if START <= stamp < END:
        return MAIN[key][(stamp - START) // STEP]
    if key == "web1.cpu":
        return (stamp - 1000) / 10
    return None


class MemoryFetch:
    """``fetch(path_expression, start, end)`` over the keys of MAIN."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []

    async def __call__(self, path: str, start: int, end: int) -> list[TimeSeries]:
        self.calls.append((path, start, end))
        glob = compile_glob(path)
        first = start + (-start) % STEP
        found = []
        for key in sorted(MAIN):
            if glob.matches(key):
                values = [stored_value(key, stamp) for stamp in range(first, end, STEP)]
                array = np.array([math.nan if v is None else v for v in values])
                found.append(TimeSeries(key, first, STEP, array, path))
        return found


def slots(series: TimeSeries) -> list[float | None]:
    """The values, None for gaps."""
    return [None if math.isnan(v) else v for v in series.values.tolist()]
