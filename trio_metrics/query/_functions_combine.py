"""Functions that combine series: sums, averages, extremes, group, divideSeries,
asPercent, groupByNode. Names follow graphite-web: ``sumSeries(a.*)`` is named
after the distinct pathExpressions of its inputs."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from ._aggregation import aggregate_columns, canonical_aggregation
from ._context import CallContext, SeriesList
from ._grammar import TargetError
from ._nodes import node_key
from ._normalize import EmptyResult, format_path_expressions, make_series, normalize
from ._series import TimeSeries, Values, graphite_end
from ._tag_expressions import key_tags

__all__ = [
    "asPercent",
    "averageSeries",
    "divideSeries",
    "group",
    "groupByNode",
    "maxSeries",
    "minSeries",
    "sumSeries",
]


def aggregate(call: CallContext, series_list: Sequence[TimeSeries], function: str) -> SeriesList:
    """graphite's ``aggregate``: one series, ``<function>Series(<pathExpressions>)``."""
    if not series_list:
        return []
    try:
        normalized = normalize(series_list)
    except EmptyResult:
        return []
    x_files_factor = call.render.x_files_factor
    name = f"{function}Series({format_path_expressions(series_list)})"
    values = aggregate_columns(normalized.values, function, x_files_factor)
    tags = dict(series_list[0].tags)
    for series in series_list:
        tags = {key: value for key, value in tags.items() if series.tags.get(key) == value}
    tags.setdefault("name", name)
    tags["aggregatedBy"] = function
    return [
        make_series(
            name,
            normalized.start,
            normalized.end,
            normalized.step,
            values,
            x_files_factor,
            tags=tags,
        )
    ]


def _flat(series_lists: Sequence[SeriesList]) -> SeriesList:
    return [series for series_list in series_lists for series in series_list]


def sumSeries(call: CallContext, *seriesLists: SeriesList) -> SeriesList:
    """The sum at each slot (gaps left out; a slot with no value is a gap)."""
    return aggregate(call, _flat(seriesLists), "sum")


def averageSeries(call: CallContext, *seriesLists: SeriesList) -> SeriesList:
    """The average of the values at each slot."""
    return aggregate(call, _flat(seriesLists), "average")


def maxSeries(call: CallContext, *seriesLists: SeriesList) -> SeriesList:
    """The largest value at each slot."""
    return aggregate(call, _flat(seriesLists), "max")


def minSeries(call: CallContext, *seriesLists: SeriesList) -> SeriesList:
    """The smallest value at each slot."""
    return aggregate(call, _flat(seriesLists), "min")


def group(call: CallContext, *seriesLists: SeriesList) -> SeriesList:
    """All the series of all the lists, as one list."""
    return _flat(seriesLists)


def _divide(dividend: Values, divisor: Values) -> Values:
    """graphite's safeDiv over zip_longest: a gap where either is a gap or the divisor is 0."""
    length = max(len(dividend), len(divisor))
    top = np.full(length, np.nan)
    top[: len(dividend)] = dividend
    bottom = np.full(length, np.nan)
    bottom[: len(divisor)] = divisor
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        quotient = top / bottom
    return np.where(bottom == 0, np.nan, quotient)


def divideSeries(
    call: CallContext, dividendSeriesList: SeriesList, divisorSeries: SeriesList
) -> SeriesList:
    """Each dividend over the one divisor series (``divideSeries(a,b)``)."""
    x_files_factor = call.render.x_files_factor
    if not divisorSeries:
        return [
            attrs.evolve(
                series,
                name=f"divideSeries({series.name},MISSING)",
                path_expression=f"divideSeries({series.name},MISSING)",
                values=np.full(len(series.values), np.nan),
            )
            for series in dividendSeriesList
        ]
    if len(divisorSeries) > 1:
        raise TargetError(
            "divideSeries second argument must reference exactly 1 series"
            f" (got {len(divisorSeries)})"
        )
    divisor = divisorSeries[0]
    results = []
    for dividend in dividendSeriesList:
        normalized = normalize([dividend, divisor])
        results.append(
            make_series(
                f"divideSeries({dividend.name},{divisor.name})",
                normalized.start,
                normalized.end,
                normalized.step,
                _divide(*normalized.values),
                x_files_factor,
            )
        )
    return results


def _percent(part: Values, total: Values) -> Values:
    return _divide(part, total) * 100.0


def _part_of_whole(part: TimeSeries, whole: TimeSeries, x_files_factor: float) -> TimeSeries:
    """``asPercent(part,whole)``: the two on one step, as graphite pairs them."""
    pair = normalize([part, whole])
    return make_series(
        f"asPercent({part.name},{whole.name})",
        pair.start,
        pair.end,
        pair.step,
        _percent(*pair.values),
        x_files_factor,
    )


def _safe_sum(columns: Sequence[Values]) -> Values:
    return aggregate_columns(columns, "sum", 0.0)


def asPercent(
    call: CallContext, seriesList: SeriesList, total: Any, *nodes: int | float | str
) -> SeriesList:
    """Each series as a percentage of ``total``: a number, one series, as many series
    as ``seriesList`` (paired by sorted name), or by default their sum; with
    ``nodes``, series and totals are grouped by those nodes."""
    if total is not None and not isinstance(total, list | int | float):
        raise TargetError(f"asPercent: total must be a number, a series list or None: {total!r}")
    normalized = normalize(seriesList)
    consolidated = dict(zip(map(id, seriesList), normalized.values, strict=True))
    x_files_factor = call.render.x_files_factor
    if nodes:
        return _percent_by_nodes(call, seriesList, total, nodes)
    if total is None:
        total_values = _safe_sum(normalized.values)
        total_text = f"sumSeries({format_path_expressions(seriesList)})"
    elif isinstance(total, list):
        if len(total) not in (1, len(seriesList)):
            raise TargetError(
                "asPercent second argument must be missing, a single digit, reference exactly 1"
                " series or reference the same number of series as the first argument"
            )
        if len(total) == 1:
            both = normalize([*seriesList, *total])
            consolidated = dict(zip(map(id, seriesList), both.values, strict=False))
            total_values = both.values[-1]
            total_text = total[0].name
    else:
        total_values = np.full(len(seriesList[0].values), float(total))
        total_text = str(total)
    if isinstance(total, list) and len(total) == len(seriesList):
        pairs = zip(
            sorted(seriesList, key=lambda s: s.name),
            sorted(total, key=lambda s: s.name),
            strict=True,
        )
        return [_part_of_whole(part, whole, x_files_factor) for part, whole in pairs]
    return [
        make_series(
            f"asPercent({series.name},{total_text or series.path_expression})",
            series.start,
            graphite_end(series),
            series.step,
            _percent(consolidated[id(series)], total_values),
            x_files_factor,
        )
        for series in seriesList
    ]


def _grouped(
    series_list: Sequence[TimeSeries], nodes: Sequence[int | float | str]
) -> dict[str, list[TimeSeries]]:
    groups: dict[str, list[TimeSeries]] = {}
    for series in series_list:
        groups.setdefault(node_key(series, nodes), []).append(series)
    return groups


def _group_total(members: Sequence[TimeSeries], x_files_factor: float) -> TimeSeries:
    if len(members) == 1:
        return members[0]
    normalized = normalize(members)
    return make_series(
        f"sumSeries({format_path_expressions(members)})",
        normalized.start,
        normalized.end,
        normalized.step,
        _safe_sum(normalized.values),
        x_files_factor,
    )


def _percent_by_nodes(
    call: CallContext, seriesList: SeriesList, total: Any, nodes: Sequence[int | float | str]
) -> SeriesList:
    x_files_factor = call.render.x_files_factor
    groups = _grouped(seriesList, nodes)
    keys = list(groups)
    if total is None:
        totals = {key: _group_total(members, x_files_factor) for key, members in groups.items()}
    elif isinstance(total, list):
        total_groups = _grouped(total, nodes)
        keys += [key for key in total_groups if key not in groups]
        totals = {
            key: _group_total(members, x_files_factor) for key, members in total_groups.items()
        }
    else:
        raise TargetError("total must be None or a seriesList")
    results = []
    for key in keys:
        if key not in groups:
            whole = totals[key]
            results.append(
                make_series(
                    f"asPercent(MISSING,{whole.name})",
                    whole.start,
                    graphite_end(whole),
                    whole.step,
                    np.full(len(whole.values), np.nan),
                    x_files_factor,
                )
            )
            continue
        for part in groups[key]:
            if key not in totals:
                results.append(
                    make_series(
                        f"asPercent({part.name},MISSING)",
                        part.start,
                        graphite_end(part),
                        part.step,
                        np.full(len(part.values), np.nan),
                        x_files_factor,
                    )
                )
                continue
            results.append(_part_of_whole(part, totals[key], x_files_factor))
    return results


#: The series functions groupByNode may name as its callback (graphite's aggregators).
GROUP_CALLBACKS: Mapping[str, Callable[..., SeriesList]] = {
    "sumSeries": sumSeries,
    "sum": sumSeries,
    "averageSeries": averageSeries,
    "avg": averageSeries,
    "maxSeries": maxSeries,
    "minSeries": minSeries,
    "asPercent": lambda call, series_list: asPercent(call, series_list, None),
}


def _combine_group(call: CallContext, members: SeriesList, callback: str) -> SeriesList:
    """One group of series combined by ``callback``: a function name, as
    groupByNode and groupByTags take it, or an aggregation."""
    if callback in GROUP_CALLBACKS:
        return GROUP_CALLBACKS[callback](call, members)
    try:
        canonical_aggregation(callback)
    except ValueError:
        raise TargetError(f"Unsupported aggregation function: {callback}") from None
    return aggregate(call, members, callback)


def groupByNode(
    call: CallContext, seriesList: SeriesList, nodeNum: int | float | str, callback: str
) -> SeriesList:
    """One series per value of the chosen node (or tag), combined by ``callback``
    (an aggregation such as ``sum`` or an aggregating function such as ``sumSeries``)
    and named by that value."""
    results = []
    for key, members in _grouped(seriesList, [nodeNum]).items():
        combined = _combine_group(call, members, callback)
        if combined:
            results.append(_renamed(combined[0], key))
    return results


def _renamed(series: TimeSeries, name: str) -> TimeSeries:
    return attrs.evolve(series, name=name)


def groupByTags(call: CallContext, seriesList: SeriesList, callback: str, *tags: str) -> SeriesList:
    """One series per combination of the values of ``tags``, combined by ``callback``
    and named ``name;tag=value;...`` (the series' common name, else the callback)."""
    if not tags:
        raise TargetError("groupByTags(): no tags specified")
    if "name" not in tags:
        names = {series.tags.get("name", "") for series in seriesList}
        common = names.pop() if len(names) == 1 else callback
    groups: dict[str, list[TimeSeries]] = {}
    for series in seriesList:
        name = series.tags.get("name", "") if "name" in tags else common
        pairs = sorted(f"{tag}={series.tags.get(tag, '')}" for tag in tags if tag != "name")
        groups.setdefault(";".join([name, *pairs]), []).append(series)
    results = []
    for key, members in groups.items():
        combined = _combine_group(call, members, callback)
        if not combined:
            continue
        key_tag_values = key_tags(key) if ";" in key else {"name": key}
        if key_tag_values is None:
            # graphite-web cannot read such a name back as tags, and fails the request.
            raise TargetError(f"groupByTags(): cannot read {key!r} as a tagged name")
        results.append(
            attrs.evolve(combined[0], name=key, path_expression=key, tags=key_tag_values)
        )
    return results
