"""Functions that transform each series on its own: arithmetic, gaps, rates,
summarize, movingAverage, timeShift, consolidateBy, and constantLine."""

from __future__ import annotations

from typing import Final

import attrs
import numpy as np

from ._aggregation import canonical_aggregation, reduce_rows
from ._context import CallContext, RenderContext, SeriesList
from ._grammar import TargetError
from ._normalize import copy_series, make_series, with_tag
from ._series import TimeSeries, Values, graphite_end
from ._times import TimeFormatError, parse_interval

__all__ = [
    "absolute",
    "consolidateBy",
    "constantLine",
    "derivative",
    "integral",
    "keepLastValue",
    "movingAverage",
    "moving_average_window",
    "nonNegativeDerivative",
    "offset",
    "perSecond",
    "scale",
    "summarize",
    "timeShift",
    "time_shift_window",
    "transformNull",
]

#: The most buckets summarize makes for one series (``summarize(x, "1s")`` over years).
MAX_BUCKETS: Final = 1_000_000


def _renamed(
    series: TimeSeries, name: str, values: Values, tag: str, tag_value: object
) -> TimeSeries:
    """graphite's in-place rename: name and pathExpression, one more tag, new values."""
    return attrs.evolve(
        series,
        name=name,
        path_expression=name,
        values=values,
        tags=with_tag(series, tag, tag_value),
    )


def scale(call: CallContext, seriesList: SeriesList, factor: float) -> SeriesList:
    """Each value times ``factor`` (``scale(name,%g)``)."""
    return [
        _renamed(
            series, f"scale({series.name},{factor:g})", series.values * factor, "scale", factor
        )
        for series in seriesList
    ]


def offset(call: CallContext, seriesList: SeriesList, factor: float) -> SeriesList:
    """Each value plus ``factor`` (``offset(name,%g)``)."""
    return [
        _renamed(
            series,
            f"offset({series.name},{factor:g})",
            series.values + factor,
            "offset",
            factor,
        )
        for series in seriesList
    ]


def transformNull(
    call: CallContext,
    seriesList: SeriesList,
    default: float,
    referenceSeries: SeriesList | None,
) -> SeriesList:
    """Gaps replaced by ``default``; with ``referenceSeries``, only in slots where one
    of them has a value."""
    defaults: Values | None = None
    if referenceSeries:
        length = max(len(s.values) for s in referenceSeries)
        any_value = np.zeros(length, dtype=bool)
        for reference in referenceSeries:
            any_value[: len(reference.values)] |= ~np.isnan(reference.values)
        defaults = np.where(any_value, float(default), np.nan)
    results = []
    for series in seriesList:
        if referenceSeries:
            name = f"transformNull({series.name},{default:g},referenceSeries)"
        else:
            name = f"transformNull({series.name},{default:g})"
        if defaults is not None and len(defaults):
            length = max(len(series.values), len(defaults))
            values = np.full(length, np.nan)
            values[: len(series.values)] = series.values
            fill = np.full(length, np.nan)
            fill[: len(defaults)] = defaults
            values = np.where(np.isnan(values), fill, values)
        else:
            values = np.where(np.isnan(series.values), float(default), series.values)
        renamed = _renamed(series, name, values, "transformNull", default)
        if referenceSeries:
            renamed = attrs.evolve(renamed, tags=with_tag(renamed, "referenceSeries", 1))
        if len(values) != len(series.values):
            renamed = attrs.evolve(renamed, end_override=graphite_end(series))
        results.append(renamed)
    return results


def keepLastValue(call: CallContext, seriesList: SeriesList, limit: float) -> SeriesList:
    """Each run of at most ``limit`` gaps after a value filled with that value."""
    results = []
    for series in seriesList:
        values = series.values
        gaps = np.isnan(values)
        if gaps.any():
            positions = np.arange(len(values))
            last_value = np.maximum.accumulate(np.where(gaps, -1, positions))
            run = np.cumsum(np.diff(np.concatenate(([0], gaps.astype(np.int8)))) == 1)
            run_lengths = np.bincount(run[gaps], minlength=int(run[-1]) + 1)
            fill = gaps & (last_value >= 0)
            fill &= run_lengths[run] <= limit
            values = np.where(fill, values[np.maximum(last_value, 0)], values)
        name = f"keepLastValue({series.name})"
        results.append(attrs.evolve(series, name=name, path_expression=name, values=values))
    return results


def absolute(call: CallContext, seriesList: SeriesList) -> SeriesList:
    """Each value's absolute value (``absolute(name)``)."""
    return [
        _renamed(series, f"absolute({series.name})", np.abs(series.values), "absolute", 1)
        for series in seriesList
    ]


def integral(call: CallContext, seriesList: SeriesList) -> SeriesList:
    """The running total of the values (gaps stay gaps and add nothing)."""
    results = []
    for series in seriesList:
        present = ~np.isnan(series.values)
        # cumsum adds left to right, as graphite-web's running "current += val".
        totals = np.cumsum(np.where(present, series.values, 0.0))
        results.append(
            copy_series(
                series,
                f"integral({series.name})",
                np.where(present, totals, np.nan),
                tags=with_tag(series, "integral", 1),
            )
        )
    return results


def derivative(call: CallContext, seriesList: SeriesList) -> SeriesList:
    """Each value minus the one before (a gap where either is one)."""
    results = []
    for series in seriesList:
        values = np.full(len(series.values), np.nan)
        values[1:] = series.values[1:] - series.values[:-1]
        results.append(
            copy_series(
                series,
                f"derivative({series.name})",
                values,
                tags=with_tag(series, "derivative", 1),
            )
        )
    return results


def _non_negative_deltas(
    values: Values, max_value: float | None, min_value: float | None
) -> Values:
    """graphite's _nonNegativeDelta along a series: a value out of [min, max] is a gap
    and no base for the next; a drop is a gap, or a wrap at max/min when given."""
    valid = ~np.isnan(values)
    with np.errstate(invalid="ignore"):
        if max_value is not None:
            valid &= ~(values > max_value)
        if min_value is not None:
            valid &= ~(values < min_value)
    previous = np.full(len(values), np.nan)
    previous[1:] = np.where(valid[:-1], values[:-1], np.nan)
    both = valid & ~np.isnan(previous)
    with np.errstate(invalid="ignore", over="ignore"):
        rising = values >= previous
        deltas = np.where(rising, values - previous, np.nan)
        if max_value is not None:
            wrapped = max_value + 1 + values - previous - (min_value or 0)
            deltas = np.where(rising, deltas, wrapped)
        elif min_value is not None:
            deltas = np.where(rising, deltas, values - min_value)
    return np.where(both, deltas, np.nan)


def nonNegativeDerivative(
    call: CallContext, seriesList: SeriesList, maxValue: float | None, minValue: float | None
) -> SeriesList:
    """derivative, without the drops of a counter (or across its wrap at maxValue)."""
    return [
        copy_series(
            series,
            f"nonNegativeDerivative({series.name})",
            _non_negative_deltas(series.values, maxValue, minValue),
            tags=with_tag(series, "nonNegativeDerivative", 1),
        )
        for series in seriesList
    ]


def perSecond(
    call: CallContext, seriesList: SeriesList, maxValue: float | None, minValue: float | None
) -> SeriesList:
    """nonNegativeDerivative per second of step, rounded to 6 decimals as graphite does."""
    results = []
    for series in seriesList:
        rates = _non_negative_deltas(series.values, maxValue, minValue) / series.step
        rounded = _round6(rates)
        results.append(
            copy_series(
                series,
                f"perSecond({series.name})",
                rounded,
                tags=with_tag(series, "perSecond", 1),
            )
        )
    return results


def _round6(values: Values) -> Values:
    """Python's ``round(x, 6)`` (exact decimal rounding, as graphite-web uses it) for
    each value: numpy's multiply-round-divide gives the same double unless ``x * 1e6``
    lies near a half, or is huge; those few are rounded by Python."""
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = values * 1e6
        fraction = scaled - np.floor(scaled)
        risky = ~(np.abs(fraction - 0.5) > 1e-3) | ~(np.abs(scaled) < 1e12)
        rounded = np.round(values, 6)
    for index in np.flatnonzero(risky & ~np.isnan(values)).tolist():
        rounded[index] = round(float(values[index]), 6)
    return rounded


def _interval_seconds(text: str, function: str) -> int:
    try:
        seconds = parse_interval(text)
    except TimeFormatError as error:
        raise TargetError(f"{function}: {error}") from None
    return seconds


def summarize(
    call: CallContext, seriesList: SeriesList, intervalString: str, func: str, alignToFrom: bool
) -> SeriesList:
    """Buckets of ``intervalString`` (aligned to multiples of it, or to each series'
    start with alignToFrom), each the ``func`` of its values."""
    interval = _interval_seconds(intervalString, "summarize")
    if interval <= 0:
        raise TargetError(f"summarize: the interval must be positive: {intervalString!r}")
    canonical_aggregation(func)
    results = []
    for series in seriesList:
        end = graphite_end(series)
        if alignToFrom:
            new_start, new_end = series.start, end
        else:
            new_start = series.start - series.start % interval
            new_end = end - end % interval + interval
        buckets = max(0, -(-(new_end - new_start) // interval))
        if buckets > MAX_BUCKETS:
            raise TargetError(f"summarize: more than {MAX_BUCKETS} buckets of {intervalString!r}")
        values = _bucketed(series, new_start, interval, buckets, func)
        if alignToFrom:
            new_end = new_start + buckets * interval
        aligned = ", true" if alignToFrom else ""
        name = f'summarize({series.name}, "{intervalString}", "{func}"{aligned})'
        tags = {**with_tag(series, "summarize", intervalString), "summarizeFunction": func}
        results.append(
            copy_series(
                series, name, values, start=new_start, end=new_end, step=interval, tags=tags
            )
        )
    return results


def _bucketed(series: TimeSeries, start: int, interval: int, buckets: int, func: str) -> Values:
    count = min(len(series.values), len(range(series.start, graphite_end(series), series.step)))
    stamps = series.start + series.step * np.arange(count, dtype=np.int64)
    which = (stamps - start) // interval
    inside = which < buckets
    which = which[inside]
    points = series.values[:count][inside]
    sizes = np.bincount(which, minlength=buckets)
    width = int(sizes.max()) if len(sizes) else 0
    table = np.full((buckets, width), np.nan)
    firsts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    table[which, np.arange(len(which)) - firsts[which]] = points
    present = np.bincount(which, weights=~np.isnan(points), minlength=buckets)
    values = reduce_rows(table, func, sizes)
    usable = (present > 0) & (present / (interval / series.step) >= series.x_files_factor)
    return np.where(usable, values, np.nan)


def _preview_seconds(seriesList: SeriesList, windowSize: int | float | str) -> int:
    if isinstance(windowSize, str):
        return abs(_interval_seconds(windowSize, "movingAverage"))
    if windowSize < 0:
        raise TargetError(f"movingAverage: the window must not be negative: {windowSize!r}")
    return max(s.step for s in seriesList) * int(windowSize)


def moving_average_window(call: CallContext, arguments: list[object]) -> RenderContext | None:
    """movingAverage evaluates its series again from ``from`` minus the window."""
    series_list, window = arguments[0], arguments[1]
    if not series_list or not isinstance(series_list, list):
        return None
    assert isinstance(window, int | float | str)
    return call.render.shifted(-_preview_seconds(series_list, window))


def movingAverage(
    call: CallContext,
    seriesList: SeriesList,
    windowSize: int | float | str,
    xFilesFactor: float | None,
) -> SeriesList:
    """The average of the ``windowSize`` slots (or the time span) before each slot."""
    if not seriesList:
        return []
    preview = _preview_seconds(seriesList, windowSize)
    results = []
    for series in call.refetched or []:
        if isinstance(windowSize, str):
            name = f'movingAverage({series.name},"{windowSize}")'
            window = preview // series.step
        else:
            name = f"movingAverage({series.name},{windowSize})"
            window = int(windowSize)
        factor = series.x_files_factor if xFilesFactor is None else xFilesFactor
        results.append(
            copy_series(
                series,
                name,
                _moving_average(series.values, window, factor),
                start=series.start + preview,
                tags=with_tag(series, "movingAverage", windowSize),
            )
        )
    return results


def _moving_average(values: Values, window: int, x_files_factor: float) -> Values:
    """Slot i: the average of the values of slots i - window .. i - 1. Each window is
    summed left to right, as graphite-web's ``sum`` does, so the doubles agree."""
    count = len(values) - window
    if count <= 0:
        return np.empty(0)
    if window == 0:
        return np.full(count, np.nan)
    present = ~np.isnan(values)
    filled = np.where(present, values, 0.0)
    sums = np.zeros(count)
    counts = np.zeros(count, dtype=np.int64)
    if window <= count:
        # One pass per position in the window, over all windows at once.
        for offset in range(window):
            sums += filled[offset : offset + count]
            counts += present[offset : offset + count]
    else:
        for first in range(count):
            sums[first] = np.cumsum(filled[first : first + window])[-1]
            counts[first] = np.count_nonzero(present[first : first + window])
    with np.errstate(invalid="ignore", divide="ignore"):
        averages = sums / counts
    usable = (counts > 0) & (counts / window >= x_files_factor)
    return np.where(usable, averages, np.nan)


def _shift_text(timeShift: str) -> str:
    # No sign means back in time (parse_interval takes it as forward).
    return "-" + timeShift if timeShift[:1].isdigit() else timeShift


def time_shift_window(call: CallContext, arguments: list[object]) -> RenderContext | None:
    """timeShift evaluates its series again over the shifted window."""
    series_list, shift = arguments[0], arguments[1]
    if not series_list or not isinstance(series_list, list):
        return None
    assert isinstance(shift, str)
    seconds = _interval_seconds(_shift_text(shift), "timeShift")
    return call.render.shifted(seconds, seconds)


def timeShift(
    call: CallContext,
    seriesList: SeriesList,
    timeShift: str,
    resetEnd: bool,
    alignDST: bool,
) -> SeriesList:
    """The series of another time, drawn at this one (``timeShift(name, "-7d")``).

    alignDST changes nothing: times are UTC, which has no daylight saving."""
    if not seriesList:
        return []
    shift = _shift_text(timeShift)
    first = seriesList[0]
    results = []
    for shifted in call.refetched or []:
        if resetEnd:
            end = graphite_end(first)
        else:
            end = graphite_end(shifted) - shifted.start + first.start
        natural = first.start + len(shifted.values) * shifted.step
        results.append(
            attrs.evolve(
                shifted,
                name=f'timeShift({shifted.name}, "{shift}")',
                start=first.start,
                tags=with_tag(shifted, "timeShift", shift),
                end_override=None if end == natural else end,
            )
        )
    return results


def consolidateBy(call: CallContext, seriesList: SeriesList, consolidationFunc: str) -> SeriesList:
    """How maxDataPoints (and mixed steps) consolidate the series: sum, average, min,
    max, first or last."""
    results = []
    for series in seriesList:
        name = f'consolidateBy({series.name},"{consolidationFunc}")'
        results.append(
            attrs.evolve(
                series,
                name=name,
                path_expression=name,
                consolidation=consolidationFunc,
                tags=with_tag(series, "consolidateBy", consolidationFunc),
            )
        )
    return results


def constantLine(call: CallContext, value: float) -> SeriesList:
    """Three points of ``value`` across the request's window, named after the value."""
    start, end = call.render.start, call.render.end
    step = max(1, int((end - start) / 2.0))
    series = make_series(
        str(value),
        start,
        end,
        step,
        np.full(3, value, dtype=np.float64),
        call.render.x_files_factor,
        path_expression=f"constantLine({value})",
    )
    return [series]
