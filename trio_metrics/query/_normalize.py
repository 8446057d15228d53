"""Series of different steps brought to one (graphite's ``normalize``), and the
constructors that keep graphite-web's ``end`` and ``pathExpression`` rules."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import reduce

import attrs
import numpy as np

from ._consolidate import consolidate_values
from ._series import TimeSeries, Values, graphite_end

__all__ = [
    "EmptyResult",
    "Normalized",
    "copy_series",
    "format_path_expressions",
    "make_series",
    "normalize",
    "with_tag",
]


class EmptyResult(Exception):
    """graphite's NormalizeEmptyResultError: the function's answer is no series at all."""


@attrs.frozen
class Normalized:
    """The series' values on a common step, and graphite's start, end and step."""

    values: list[Values]
    start: int
    end: int
    step: int


def normalize(series_list: Sequence[TimeSeries]) -> Normalized:
    """The least common multiple of the steps; each series consolidated to it with its
    own function and xFilesFactor; start the earliest, end the latest (trimmed to whole
    steps). Values stay aligned by position, as graphite-web leaves them."""
    if not series_list:
        raise EmptyResult
    step = reduce(math.lcm, (s.step for s in series_list))
    values = [
        consolidate_values(s.values, step // s.step, s.consolidation, s.x_files_factor)
        for s in series_list
    ]
    start = min(s.start for s in series_list)
    end = max(graphite_end(s) for s in series_list)
    end -= (end - start) % step
    return Normalized(values, start, end, step)


def make_series(
    name: str,
    start: int,
    end: int,
    step: int,
    values: Values,
    x_files_factor: float,
    tags: Mapping[str, str] | None = None,
    path_expression: str | None = None,
) -> TimeSeries:
    """graphite's ``TimeSeries(name, start, end, step, values)``: a new series, its
    pathExpression its name, its tags ``{"name": name}`` unless given."""
    return TimeSeries(
        name=name,
        start=start,
        step=step,
        values=np.asarray(values, dtype=np.float64),
        path_expression=name if path_expression is None else path_expression,
        x_files_factor=x_files_factor,
        tags={"name": name} if tags is None else dict(tags),
        end_override=_override(start, end, step, len(values)),
    )


def copy_series(
    series: TimeSeries,
    name: str,
    values: Values | None = None,
    *,
    start: int | None = None,
    end: int | None = None,
    step: int | None = None,
    tags: Mapping[str, str] | None = None,
) -> TimeSeries:
    """graphite's ``series.copy(...)``: what is not given is kept (``end`` too), and
    the copy's pathExpression is its new name."""
    new_values = series.values if values is None else values
    new_start = series.start if start is None else start
    new_step = series.step if step is None else step
    new_end = graphite_end(series) if end is None else end
    return attrs.evolve(
        series,
        name=name,
        start=new_start,
        step=new_step,
        values=new_values,
        path_expression=name,
        tags=series.tags if tags is None else tags,
        end_override=_override(new_start, new_end, new_step, len(new_values)),
    )


def _override(start: int, end: int, step: int, length: int) -> int | None:
    return None if end == start + length * step else end


def format_path_expressions(series_list: Sequence[TimeSeries]) -> str:
    """The series' distinct pathExpressions, in order, joined by commas."""
    return ",".join(dict.fromkeys(s.path_expression for s in series_list))


def with_tag(series: TimeSeries, key: str, value: object) -> Mapping[str, str]:
    """The series' tags plus one (graphite's Tags keep every value as text)."""
    return {**series.tags, key: str(value)}
