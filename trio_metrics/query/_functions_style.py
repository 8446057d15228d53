"""Functions that only style a graph in graphite-web.

``color``, ``alpha``, ``lineWidth``, ``cactiStyle`` and ``legendValue`` change
nothing here (graphite-web's cactiStyle and legendValue append figures to the
names; docs/graphite.md says so). ``dashed``, ``drawAsInfinite`` and
``secondYAxis`` rename their series as graphite-web does, and ``stacked`` adds
each series to the running total of its stack, as graphite-web does.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from ._context import CallContext, SeriesList
from ._normalize import copy_series, with_tag

__all__ = [
    "alpha",
    "cactiStyle",
    "color",
    "dashed",
    "drawAsInfinite",
    "legendValue",
    "lineWidth",
    "secondYAxis",
    "stacked",
]


def color(call: CallContext, seriesList: SeriesList, theColor: str) -> SeriesList:
    """Unchanged (a colour for graphite's PNG)."""
    return seriesList


def alpha(call: CallContext, seriesList: SeriesList, alpha: float) -> SeriesList:
    """Unchanged (a transparency for graphite's PNG)."""
    return seriesList


def lineWidth(call: CallContext, seriesList: SeriesList, width: float) -> SeriesList:
    """Unchanged (a line width for graphite's PNG)."""
    return seriesList


def cactiStyle(
    call: CallContext, seriesList: SeriesList, system: str | None, units: str | None
) -> SeriesList:
    """Unchanged (graphite-web appends Current/Max/Min to the names)."""
    return seriesList


def legendValue(call: CallContext, seriesList: SeriesList, *valueTypes: Any) -> SeriesList:
    """Unchanged (graphite-web appends the chosen figures to the names)."""
    return seriesList


def dashed(call: CallContext, seriesList: SeriesList, dashLength: int) -> SeriesList:
    """Renamed ``dashed(name, N)``."""
    return [
        attrs.evolve(
            series,
            name=f"dashed({series.name}, {dashLength:g})",
            tags=with_tag(series, "dashed", dashLength),
        )
        for series in seriesList
    ]


def drawAsInfinite(call: CallContext, seriesList: SeriesList) -> SeriesList:
    """Renamed ``drawAsInfinite(name)``."""
    return [
        attrs.evolve(
            series,
            name=f"drawAsInfinite({series.name})",
            tags=with_tag(series, "drawAsInfinite", 1),
        )
        for series in seriesList
    ]


def secondYAxis(call: CallContext, seriesList: SeriesList) -> SeriesList:
    """Renamed ``secondYAxis(name)``."""
    return [
        attrs.evolve(
            series, name=f"secondYAxis({series.name})", tags=with_tag(series, "secondYAxis", 1)
        )
        for series in seriesList
    ]


def stacked(call: CallContext, seriesList: SeriesList, stack: str | None) -> SeriesList:
    """Each slot plus the same slot of the series stacked before it (in this request)."""
    name = "__DEFAULT__" if stack is None else stack
    total = call.stacks.get(name, np.zeros(0))
    results = []
    for series in seriesList:
        if len(total) < len(series.values):
            total = np.concatenate([total, np.zeros(len(series.values) - len(total))])
        present = ~np.isnan(series.values)
        head = total[: len(series.values)]
        head[present] += series.values[present]
        values = np.where(present, head, np.nan)
        if name == "__DEFAULT__":
            results.append(
                copy_series(
                    series,
                    f"stacked({series.name})",
                    values,
                    tags=with_tag(series, "stacked", name),
                )
            )
        else:
            results.append(copy_series(series, series.name, values))
    call.stacks[name] = total
    return results
