"""Queries over stored series: time ranges, consolidation, and the Graphite
target grammar and functions.

Pure functions over :class:`TimeSeries`: no HTTP, no sockets. Reading the
store is the caller's, through the async fetch function it passes in. This
package loads numpy and pyparsing, so nothing imports it when
``trio_metrics`` is imported: the HTTP API loads it on the first Graphite
request.
"""

from __future__ import annotations

from ._fetch import FetchBudget, FetchLimitError, fetch_series
from ._find import FindLimitError, Node, find_nodes
from ._series import CONSOLIDATIONS, TimeSeries, Values

__all__ = [
    "CONSOLIDATIONS",
    "FetchBudget",
    "FetchLimitError",
    "FindLimitError",
    "Node",
    "TimeSeries",
    "Values",
    "fetch_series",
    "find_nodes",
]
