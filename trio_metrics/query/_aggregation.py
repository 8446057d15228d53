"""graphite's aggregation functions (``sum``, ``average``, ``median``, …) over numpy rows.

They follow graphite-web's ``safe*`` helpers: gaps (NaN) are left out, a
row with no value gives NaN, ``avg_zero`` counts a gap as 0, ``multiply``
gives NaN if any slot is a gap. Sums run left to right (``cumsum``), as
Python's ``sum`` does, so that results match graphite-web's to the last bit
where the arithmetic is the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from ._series import Values

__all__ = ["AGGREGATIONS", "aggregate_columns", "canonical_aggregation", "reduce_rows"]

_ALIASES: Final = {"rangeOf": "range", "avg": "average", "total": "sum", "current": "last"}

#: Every name graphite's ``aggFunc`` parameters accept (its getAggFunc).
AGGREGATIONS: Final = frozenset(
    {
        "average",
        "avg_zero",
        "median",
        "sum",
        "min",
        "max",
        "diff",
        "stddev",
        "count",
        "range",
        "multiply",
        "last",
        *_ALIASES,
    }
)


def canonical_aggregation(name: str) -> str:
    """``avg`` → ``average`` and the other aliases; ValueError for an unknown name."""
    name = _ALIASES.get(name, name)
    if name not in AGGREGATIONS:
        raise ValueError(f"Unsupported aggregation function: {name}")
    return name


def reduce_rows(
    table: npt.NDArray[np.float64], function: str, lengths: npt.NDArray[np.int64] | None = None
) -> Values:
    """One value per row of ``table`` (NaN for gaps and padding).

    ``lengths`` are the rows' true lengths when rows are padded with NaN at
    their end; only ``avg_zero`` and ``multiply`` tell a gap from padding.
    """
    function = canonical_aggregation(function)
    rows, width = table.shape
    if rows == 0:
        return np.empty(0)
    if width == 0:
        return np.full(rows, np.nan)
    present = ~np.isnan(table)
    counts = present.sum(axis=1)
    filled = np.where(present, table, 0.0)
    some = counts > 0
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if function == "sum":
            result = np.cumsum(filled, axis=1)[:, -1]
        elif function == "average":
            result = np.cumsum(filled, axis=1)[:, -1] / counts
        elif function == "avg_zero":
            true_lengths = np.full(rows, width) if lengths is None else lengths
            result = np.cumsum(filled, axis=1)[:, -1] / true_lengths
        elif function == "min":
            result = np.where(present, table, np.inf).min(axis=1)
        elif function == "max":
            result = np.where(present, table, -np.inf).max(axis=1)
        elif function == "range":
            high = np.where(present, table, -np.inf).max(axis=1)
            low = np.where(present, table, np.inf).min(axis=1)
            result = high - low
        elif function == "count":
            result = counts.astype(np.float64)
        elif function == "last":
            last = width - 1 - present[:, ::-1].argmax(axis=1)
            result = table[np.arange(rows), last]
        elif function == "diff":
            first = present.argmax(axis=1)
            signed = -filled
            signed[np.arange(rows), first] = filled[np.arange(rows), first]
            result = np.cumsum(signed, axis=1)[:, -1]
        elif function == "stddev":
            mean = np.cumsum(filled, axis=1)[:, -1] / counts
            squares = np.where(present, (table - mean[:, None]) ** 2, 0.0)
            result = np.sqrt(np.cumsum(squares, axis=1)[:, -1] / counts)
        elif function == "median":
            result = np.full(rows, np.nan)
            for row in np.flatnonzero(some):
                ordered = np.sort(table[row][present[row]])
                middle = len(ordered) // 2
                if len(ordered) % 2:
                    result[row] = ordered[middle]
                else:
                    result[row] = float(ordered[middle - 1] + ordered[middle]) / 2
        else:  # multiply
            if lengths is None:
                gaps = ~present.all(axis=1)
            else:
                real = np.arange(width)[None, :] < lengths[:, None]
                gaps = (real & ~present).any(axis=1)
            result = np.where(gaps, np.nan, np.prod(np.where(present, table, 1.0), axis=1))
    return np.where(some, result, np.nan)


def aggregate_columns(columns: Sequence[Values], function: str, x_files_factor: float) -> Values:
    """graphite's ``aggregate``: slot i of the result combines slot i of each series
    (shorter series padded with gaps, as ``zip_longest``). A slot is a gap unless
    it has a value and ``values / len(columns) >= x_files_factor``."""
    function = canonical_aggregation(function)
    length = max((len(c) for c in columns), default=0)
    counts = np.zeros(length, dtype=np.int64)
    present = np.empty(length, dtype=bool)
    if function in ("sum", "average"):
        # Series by series, left to right (Python's sum), with no copy of the table:
        # each column is added only where it has values.
        result = np.zeros(length)
        for column in columns:
            size = len(column)
            mask = present[:size]
            np.isnan(column, out=mask)
            np.logical_not(mask, out=mask)
            counts[:size] += mask
            np.add(result[:size], column, out=result[:size], where=mask)
        if function == "average":
            with np.errstate(invalid="ignore", divide="ignore"):
                result = result / counts
    else:
        for column in columns:
            counts[: len(column)] += ~np.isnan(column)
        if function in ("min", "max"):
            pick = np.fmin if function == "min" else np.fmax
            result = np.full(length, np.nan)
            for column in columns:
                result[: len(column)] = pick(result[: len(column)], column)
        else:
            table = np.full((length, len(columns)), np.nan)
            for i, column in enumerate(columns):
                table[: len(column), i] = column
            result = reduce_rows(table, function, np.full(length, len(columns)))
    usable = (counts > 0) & (counts / max(len(columns), 1) >= x_files_factor)
    return np.where(usable, result, np.nan)
