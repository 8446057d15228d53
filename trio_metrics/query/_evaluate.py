"""Evaluating targets: parse, fetch the paths, apply the functions.

Pure apart from awaiting ``fetch``, the caller's way to read series:
``fetch(path_expression, start, end)`` answers the matching series on a fixed
step (graphite's ``end`` convention, NaN for gaps). A ``seriesByTag(...)``
call is fetched as graphite-web fetches it: its text is the pattern. Everything wrong with a
target (syntax, an unknown function, wrong arguments) is a
:class:`TargetError`, never another exception.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import attrs
import numpy as np

from ._catalog import bind_arguments
from ._context import CallContext, RenderContext, SeriesList
from ._functions import FUNCTIONS
from ._grammar import (
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
from ._normalize import EmptyResult
from ._series import TimeSeries
from ._tag_expressions import TAG_QUERY_CALL

__all__ = ["MAX_CALLS", "Fetch", "evaluate_targets"]

#: ``(path_expression, start, end)`` → the matching series, each on a fixed step.
Fetch = Callable[[str, int, int], Awaitable[list[TimeSeries]]]

#: The most function calls one request evaluates. movingAverage and timeShift
#: evaluate their argument twice, so nesting them doubles the work per level.
MAX_CALLS: Final = 2_000


@attrs.define
class _Evaluation:
    fetch: Fetch
    stacks: dict[str, Any] = attrs.Factory(dict)
    fetched: dict[tuple[str, int, int], list[TimeSeries]] = attrs.Factory(dict)
    calls: int = 0

    async def series(self, path: str, context: RenderContext) -> SeriesList:
        key = (path, context.start, context.end)
        if key not in self.fetched:
            found = await self.fetch(path, context.start, context.end)
            # graphite-web gives fetched series the request's xFilesFactor and
            # orders them by name.
            self.fetched[key] = sorted(
                (_as_fetched(series, path, context.x_files_factor) for series in found),
                key=lambda series: series.name,
            )
        return list(self.fetched[key])

    async def value(self, expression: Expression, context: RenderContext) -> Any:
        match expression:
            case PathExpression(text):
                return await self.series(text, context)
            case String(value):
                return value
            case Number(value):
                return value
            case Boolean(value):
                return value
            case NoneLiteral():
                return None
            case Call():
                return await self.call(expression, context)
        raise TypeError(f"not an expression: {expression!r}")

    async def call(self, expression: Call, context: RenderContext) -> SeriesList:
        self.calls += 1
        if self.calls > MAX_CALLS:
            raise TargetError(f"the targets call more than {MAX_CALLS} functions in all")
        implementation = FUNCTIONS.get(expression.name)
        if implementation is None:
            raise TargetError(f"Received request for unknown function: {expression.name}")
        args = [await self.value(arg, context) for arg in expression.args]
        kwargs = {key: await self.value(arg, context) for key, arg in expression.kwargs}
        bound = bind_arguments(expression.name, implementation.info.params, args, kwargs)
        if expression.name == TAG_QUERY_CALL:
            # As graphite-web: the call's own text is the pattern its store fetches.
            return await self.series(expression.raw or format_expression(expression), context)
        call = CallContext(context, stacks=self.stacks)
        if implementation.window is not None:
            window = implementation.window(call, bound)
            if window is not None:
                first = _first_argument(expression, implementation.info.params[0].name)
                refetched = await self.value(first, window)
                call = attrs.evolve(call, refetched=refetched)
        try:
            # Overflow to inf and 0/0 are values here, as in graphite-web's floats.
            with np.errstate(all="ignore"):
                result: SeriesList = implementation.run(call, *bound)
        except EmptyResult:
            return []
        return result


def _as_fetched(series: TimeSeries, path: str, x_files_factor: float) -> TimeSeries:
    if series.path_expression == path and series.x_files_factor == x_files_factor:
        return series
    return attrs.evolve(series, path_expression=path, x_files_factor=x_files_factor)


def _first_argument(expression: Call, name: str) -> Expression:
    if expression.args:
        return expression.args[0]
    return dict(expression.kwargs)[name]


async def evaluate_targets(
    targets: Sequence[str], context: RenderContext, fetch: Fetch
) -> list[TimeSeries]:
    """The series of all targets, in order (blank targets are skipped, as
    graphite-web does). Every target is parsed before anything is fetched."""
    expressions = [parse_target(target) for target in targets if target.strip()]
    evaluation = _Evaluation(fetch)
    results: list[TimeSeries] = []
    for expression in expressions:
        value = await evaluation.value(expression, context)
        if not isinstance(value, list):
            raise TargetError(f"target is not a series list: {value!r}")
        results.extend(value)
    return results
