"""Functions that keep some series of a list: exclude, grep, removeEmptySeries."""

from __future__ import annotations

import re

import numpy as np

from ._context import CallContext, SeriesList
from ._grammar import TargetError

__all__ = ["exclude", "grep", "removeEmptySeries"]


def _pattern(pattern: str, function: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as error:
        raise TargetError(f"{function}: invalid regular expression {pattern!r}: {error}") from None


def exclude(call: CallContext, seriesList: SeriesList, pattern: str) -> SeriesList:
    """The series whose name the regular expression does not find (``re.search``)."""
    regex = _pattern(pattern, "exclude")
    return [series for series in seriesList if not regex.search(series.name)]


def grep(call: CallContext, seriesList: SeriesList, pattern: str) -> SeriesList:
    """The series whose name the regular expression finds (``re.search``)."""
    regex = _pattern(pattern, "grep")
    return [series for series in seriesList if regex.search(series.name)]


def removeEmptySeries(
    call: CallContext, seriesList: SeriesList, xFilesFactor: float | None
) -> SeriesList:
    """The series with a value, or with at least ``xFilesFactor`` of their slots valued."""
    factor = 0.0 if xFilesFactor is None else xFilesFactor
    kept = []
    for series in seriesList:
        present = int(np.count_nonzero(~np.isnan(series.values)))
        if present and present / len(series.values) >= factor:
            kept.append(series)
    return kept
