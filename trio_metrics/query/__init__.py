"""Queries over stored series: time ranges, consolidation, and the Graphite
target grammar and functions.

Pure functions over :class:`TimeSeries`: no HTTP, no sockets. Reading the
store is the caller's, through the async fetch function it passes in. This
package loads numpy and pyparsing, so nothing imports it when
``trio_metrics`` is imported: the HTTP API loads it on the first Graphite
request.
"""

from __future__ import annotations

from ._catalog import function_index
from ._consolidate import (
    RenderedSeries,
    consolidate_for_render,
    consolidate_values,
    render_datapoints,
    render_series,
)
from ._context import RenderContext
from ._evaluate import MAX_CALLS, Fetch, evaluate_targets
from ._fetch import FetchBudget, FetchLimitError, fetch_series, tag_query_of
from ._find import FindLimitError, Node, find_nodes
from ._grammar import (
    MAX_ARGUMENTS,
    MAX_NESTING,
    MAX_TARGET_LENGTH,
    Boolean,
    Call,
    Expression,
    NoneLiteral,
    Number,
    PathExpression,
    String,
    TargetError,
    format_expression,
    parse_target,
)
from ._series import CONSOLIDATIONS, TimeSeries, Values, graphite_end
from ._tag_expressions import TagExpression, TagExpressionError, TagQuery, key_tags, series_tags
from ._tagged import TagScanLimitError, find_tagged, tagged_keys
from ._times import TimeFormatError, parse_interval, parse_time, time_range

__all__ = [
    "CONSOLIDATIONS",
    "MAX_ARGUMENTS",
    "MAX_CALLS",
    "MAX_NESTING",
    "MAX_TARGET_LENGTH",
    "Boolean",
    "Call",
    "Expression",
    "Fetch",
    "FetchBudget",
    "FetchLimitError",
    "FindLimitError",
    "Node",
    "NoneLiteral",
    "Number",
    "PathExpression",
    "RenderContext",
    "RenderedSeries",
    "String",
    "TagExpression",
    "TagExpressionError",
    "TagQuery",
    "TagScanLimitError",
    "TargetError",
    "TimeFormatError",
    "TimeSeries",
    "Values",
    "consolidate_for_render",
    "consolidate_values",
    "evaluate_targets",
    "fetch_series",
    "find_nodes",
    "find_tagged",
    "format_expression",
    "function_index",
    "graphite_end",
    "key_tags",
    "parse_interval",
    "parse_target",
    "parse_time",
    "render_datapoints",
    "render_series",
    "series_tags",
    "tag_query_of",
    "tagged_keys",
    "time_range",
]
