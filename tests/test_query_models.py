"""The vectorised functions against direct models of graphite-web's loops (transcribed
here over plain lists with None), on random series: the same doubles, gaps included."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_metrics.query import RenderContext, TimeSeries
from trio_metrics.query._context import CallContext
from trio_metrics.query._functions_transform import (
    _moving_average,
    _non_negative_deltas,
    keepLastValue,
    summarize,
)

slot = st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False), st.integers(-50, 50).map(float))
slots = st.lists(slot, max_size=60)


def array(values: list[float | None]) -> np.ndarray:
    return np.array([math.nan if v is None else v for v in values], dtype=np.float64)


def listed(values: np.ndarray) -> list[float | None]:
    return [None if math.isnan(v) else v for v in values.tolist()]


def model_keep_last_value(values: list[float | None], limit: float) -> list[float | None]:
    values = list(values)
    nones = 0
    last = None
    for i, value in enumerate(values):
        if value is None:
            nones += 1
        else:
            if 0 < nones <= limit and last is not None:
                for index in range(i - nones, i):
                    values[index] = last
            nones = 0
            last = value
    if 0 < nones <= limit and last is not None:
        for index in range(len(values) - nones, len(values)):
            values[index] = last
    return values


def model_moving_average(
    values: list[float | None], window: int, x_files_factor: float
) -> list[float | None]:
    out: list[float | None] = []
    for i in range(window, len(values)):
        present = [v for v in values[i - window : i] if v is not None]
        good = present and len(present) / window >= x_files_factor
        out.append(sum(present) / len(present) if good else None)
    return out


def model_non_negative(
    values: list[float | None], max_value: float | None, min_value: float | None
) -> list[float | None]:
    out: list[float | None] = []
    previous = None
    for value in values:
        if value is None or (max_value is not None and value > max_value):
            out.append(None)
            previous = None
            continue
        if min_value is not None and value < min_value:
            out.append(None)
            previous = None
            continue
        if previous is None:
            out.append(None)
        elif value >= previous:
            out.append(value - previous)
        elif max_value is not None:
            out.append(max_value + 1 + value - previous - (min_value or 0))
        elif min_value is not None:
            out.append(value - min_value)
        else:
            out.append(None)
        previous = value
    return out


def model_summarize(
    start: int, step: int, values: list[float | None], interval: int, align: bool
) -> tuple[int, list[float | None]]:
    """graphite-web's summarize/_summarizeValues with func="sum", xFilesFactor 0."""
    end = start + len(values) * step
    if align:
        new_start, new_end = start, end
    else:
        new_start = start - start % interval
        new_end = end - end % interval + interval
    stamps = list(range(start, end, step))
    out: list[float | None] = []
    i = 0
    bucket = new_start
    while bucket < new_end:
        first, present = i, 0
        while i < len(stamps) and stamps[i] < bucket + interval:
            if stamps[i] <= bucket:
                first = i
            if stamps[i] >= bucket and values[i] is not None:
                present += 1
            i += 1
        usable = [v for v in values[first:i] if v is not None]
        out.append(sum(usable) if present else None)
        bucket += interval
    return new_start, out


@settings(max_examples=300, deadline=None)
@given(values=slots, limit=st.sampled_from([0, 1, 2, 3, math.inf]))
def test_keep_last_value_matches_graphite(values: list[float | None], limit: float) -> None:
    one = TimeSeries("a", 0, 10, array(values), "a")
    [kept] = keepLastValue(CallContext(RenderContext(0, 10, 10)), [one], limit)
    assert listed(kept.values) == model_keep_last_value(values, limit)


@settings(max_examples=300, deadline=None)
@given(values=slots, window=st.integers(0, 70), x_files_factor=st.sampled_from([0.0, 0.5, 1.0]))
def test_moving_average_matches_graphite(
    values: list[float | None], window: int, x_files_factor: float
) -> None:
    got = listed(_moving_average(array(values), window, x_files_factor))
    assert got == model_moving_average(values, window, x_files_factor)


@settings(max_examples=300, deadline=None)
@given(
    values=slots,
    max_value=st.one_of(st.none(), st.floats(-100, 1e6, allow_nan=False)),
    min_value=st.one_of(st.none(), st.floats(-1e6, 100, allow_nan=False)),
)
def test_non_negative_deltas_match_graphite(
    values: list[float | None], max_value: float | None, min_value: float | None
) -> None:
    got = listed(_non_negative_deltas(array(values), max_value, min_value))
    assert got == model_non_negative(values, max_value, min_value)


@settings(max_examples=300, deadline=None)
@given(
    start=st.integers(0, 500),
    step=st.sampled_from([1, 7, 10, 60]),
    values=slots,
    interval=st.sampled_from([1, 5, 10, 25, 60, 300]),
    align=st.booleans(),
)
def test_summarize_matches_graphite(
    start: int, step: int, values: list[float | None], interval: int, align: bool
) -> None:
    one = TimeSeries("a", start, step, array(values), "a")
    call = CallContext(RenderContext(0, 10, 10))
    [summed] = summarize(call, [one], f"{interval}s", "sum", align)
    new_start, expected = model_summarize(start, step, values, interval, align)
    assert (summed.start, summed.step) == (new_start, interval)
    assert listed(summed.values) == expected
