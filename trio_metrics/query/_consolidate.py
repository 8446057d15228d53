"""Consolidation: many slots into one, as graphite-web does it.

Two users: the functions that bring series of different steps to a common
one (graphite's ``normalize``: ``consolidate_values`` with the series' own
``consolidateBy`` function and xFilesFactor), and the render answer, which
brings each series down to at most ``maxDataPoints`` points exactly as
graphite-web's ``renderViewJson`` does, the start "nudge" included.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import attrs
import numpy as np

from ._series import TimeSeries, Values, graphite_end

__all__ = [
    "RenderedSeries",
    "consolidate_for_render",
    "consolidate_values",
    "render_datapoints",
    "render_series",
]


def consolidate_values(
    values: Values, points_per_value: int, function: str = "average", x_files_factor: float = 0.0
) -> Values:
    """Each run of ``points_per_value`` slots (the last run may be shorter) as one value.

    A run gives NaN unless it has a value and ``values / points_per_value >=
    x_files_factor``; ``function`` is one of graphite's consolidation
    functions (``average``/``avg``, ``avg_zero``, ``sum``, ``min``, ``max``,
    ``first``, ``last``).
    """
    if points_per_value <= 1 or len(values) == 0:
        return values
    runs = math.ceil(len(values) / points_per_value)
    padded = np.full(runs * points_per_value, np.nan)
    padded[: len(values)] = values
    table = padded.reshape(runs, points_per_value)
    present = ~np.isnan(table)
    counts = present.sum(axis=1)
    usable = (counts > 0) & (counts / points_per_value >= x_files_factor)
    filled = np.where(present, table, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        if function in ("average", "avg"):
            result = filled.sum(axis=1) / counts
        elif function == "avg_zero":
            # graphite divides by the slots it saw, the missing ones as 0
            # (a last, shorter run divides by its own length).
            lengths = np.full(runs, points_per_value, dtype=np.float64)
            lengths[-1] = len(values) - (runs - 1) * points_per_value
            result = filled.sum(axis=1) / lengths
        elif function == "sum":
            result = filled.sum(axis=1)
        elif function == "min":
            result = np.where(present, table, np.inf).min(axis=1)
        elif function == "max":
            result = np.where(present, table, -np.inf).max(axis=1)
        elif function == "first":
            result = table[np.arange(runs), present.argmax(axis=1)]
        elif function == "last":
            last = points_per_value - 1 - present[:, ::-1].argmax(axis=1)
            result = table[np.arange(runs), last]
        else:
            raise ValueError(f"Invalid consolidation function: {function!r}")
    return np.where(usable, result, np.nan)


def consolidate_for_render(
    series_list: Sequence[TimeSeries], max_data_points: int | None
) -> list[TimeSeries]:
    """Each series brought to at most about ``max_data_points`` points, as graphite-web's
    JSON render does: ``valuesPerPoint = ceil(points / maxDataPoints)`` where
    ``points`` is the whole answer's time range over the series' step, the start
    nudged so that buckets stay put from one refresh to the next, and the series'
    own consolidation function and xFilesFactor.

    The result's ``start``/``step`` are the timestamps graphite-web gives the
    points (including its quirk: after the nudge a bucket's timestamp is one
    step after its first slot)."""
    if max_data_points is None or not series_list:
        return list(series_list)
    if max_data_points < 1:
        raise ValueError(f"maxDataPoints must be at least 1, not {max_data_points}")
    time_range = max(graphite_end(s) for s in series_list) - min(s.start for s in series_list)
    result = []
    for series in series_list:
        values = series.values
        start = series.start
        if len(values) == 0:
            result.append(series)
            continue
        if max_data_points == 1:
            per_point = len(values)
            if per_point == 1:
                result.append(series)
                continue
        elif max_data_points < time_range / series.step:
            per_point = math.ceil(time_range / series.step / max_data_points)
            seconds_per_point = per_point * series.step
            nudge = seconds_per_point + (start % series.step) - (start % seconds_per_point)
            start += nudge
            dropped = nudge // series.step - 1
            if dropped > 0:
                values = values[dropped:]
        else:
            result.append(series)
            continue
        step = series.step * per_point
        consolidated = consolidate_values(
            values, per_point, series.consolidation, series.x_files_factor
        )
        # graphite-web zips the values with range(start, end + 1, step) (end unmoved).
        stamps = len(range(start, graphite_end(series) + 1, step))
        result.append(
            attrs.evolve(
                series, start=start, step=step, values=consolidated[:stamps], end_override=None
            )
        )
    return result


@attrs.frozen
class RenderedSeries:
    """One entry of graphite's JSON render answer."""

    target: str
    tags: Mapping[str, str]
    datapoints: list[tuple[float | None, int]]


def render_series(
    series_list: Sequence[TimeSeries], max_data_points: int | None = None
) -> list[TimeSeries]:
    """The series as graphite-web's renderViewJson lists their points: consolidated for
    ``maxDataPoints``; each cut at graphite's ``end`` (a function may leave more values
    than its time range holds), so that ``datapoints()`` gives exactly its points; and
    none at all when no series has a value slot. For a caller that encodes the
    answer itself (in slices); :func:`render_datapoints` gives the points at once."""
    if not any(len(series.values) for series in series_list):
        return []
    with np.errstate(all="ignore"):
        consolidated = consolidate_for_render(series_list, max_data_points)
    result = []
    for series in consolidated:
        stamps = len(range(series.start, graphite_end(series) + 1, series.step))
        if stamps < len(series.values) or series.end_override is not None:
            series = attrs.evolve(series, values=series.values[:stamps], end_override=None)
        result.append(series)
    return result


def render_datapoints(
    series_list: Sequence[TimeSeries],
    max_data_points: int | None = None,
    no_null_points: bool = False,
) -> list[RenderedSeries]:
    """The JSON render answer's entries, as graphite-web's renderViewJson makes them
    (see :func:`render_series`); with ``noNullPoints`` the gaps left out, and a series
    left with no point left out."""
    rendered = []
    for series in render_series(series_list, max_data_points):
        points = series.datapoints()
        if no_null_points:
            points = [point for point in points if point[0] is not None]
            if not points:
                continue
        rendered.append(RenderedSeries(series.name, dict(series.tags), points))
    return rendered
