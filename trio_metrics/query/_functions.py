"""The table of Graphite functions: name → implementation, checked against graphite-web's
own parameter descriptions (graphite_functions.json)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs

from . import _functions_alias as alias
from . import _functions_combine as combine
from . import _functions_filter as filters
from . import _functions_style as style
from . import _functions_transform as transform
from ._catalog import FunctionInfo, catalog
from ._context import CallContext, RenderContext, SeriesList

__all__ = ["FUNCTIONS", "Implementation"]


@attrs.frozen
class Implementation:
    """A function: ``run(call, *arguments in parameter order)``, and for the functions
    that look at another time window, ``window(call, arguments)``: the render context
    to evaluate their first argument again in (None: no need)."""

    run: Callable[..., SeriesList]
    info: FunctionInfo
    window: Callable[[CallContext, list[Any]], RenderContext | None] | None = None


def _fetched_by_the_evaluator(call: CallContext, *tagExpressions: str) -> SeriesList:
    raise AssertionError("seriesByTag is a fetch: the evaluator reads it from the store")


_RUN: Final[Mapping[str, Callable[..., SeriesList]]] = {
    "absolute": transform.absolute,
    "alias": alias.alias,
    "aliasByNode": alias.aliasByNode,
    "aliasByTags": alias.aliasByTags,
    "aliasSub": alias.aliasSub,
    "alpha": style.alpha,
    "asPercent": combine.asPercent,
    "averageSeries": combine.averageSeries,
    "avg": combine.averageSeries,
    "cactiStyle": style.cactiStyle,
    "color": style.color,
    "consolidateBy": transform.consolidateBy,
    "constantLine": transform.constantLine,
    "dashed": style.dashed,
    "derivative": transform.derivative,
    "divideSeries": combine.divideSeries,
    "drawAsInfinite": style.drawAsInfinite,
    "exclude": filters.exclude,
    "grep": filters.grep,
    "group": combine.group,
    "groupByNode": combine.groupByNode,
    "groupByTags": combine.groupByTags,
    "integral": transform.integral,
    "keepLastValue": transform.keepLastValue,
    "legendValue": style.legendValue,
    "lineWidth": style.lineWidth,
    "maxSeries": combine.maxSeries,
    "minSeries": combine.minSeries,
    "movingAverage": transform.movingAverage,
    "nonNegativeDerivative": transform.nonNegativeDerivative,
    "offset": transform.offset,
    "perSecond": transform.perSecond,
    "removeEmptySeries": filters.removeEmptySeries,
    "scale": transform.scale,
    "secondYAxis": style.secondYAxis,
    "seriesByTag": _fetched_by_the_evaluator,
    "stacked": style.stacked,
    "sum": combine.sumSeries,
    "sumSeries": combine.sumSeries,
    "summarize": transform.summarize,
    "timeShift": transform.timeShift,
    "transformNull": transform.transformNull,
}


_WINDOWS: Final[Mapping[str, Callable[[CallContext, list[Any]], RenderContext | None]]] = {
    "movingAverage": transform.moving_average_window,
    "timeShift": transform.time_shift_window,
}


def _table() -> dict[str, Implementation]:
    infos = catalog()
    if set(infos) != set(_RUN):
        raise RuntimeError(
            f"graphite_functions.json and the table differ: {set(infos) ^ set(_RUN)}"
        )
    return {
        name: Implementation(run, infos[name], _WINDOWS.get(name)) for name, run in _RUN.items()
    }


#: Every function a target may call, by graphite's name.
FUNCTIONS: Final = _table()
