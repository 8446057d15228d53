"""``/graphite/render``: the series of targets over a time range, as JSON or as a pickle.

- ``format=json`` (Grafana): ``[{"target", "tags", "datapoints": [[value or null, ts], ...]}]``;
- ``format=pickle`` (graphite-web's cluster fetch, with ``local=1``): a pickled
  list of ``{'name', 'start', 'end', 'step', 'values', 'pathExpression'}``,
  ``values`` one slot per step with ``None`` for a gap, ``end = start +
  len(values) * step``, ``pathExpression`` the target exactly as sent.

Parameters as graphite-web takes them: repeated ``target``, ``from`` (default
``-1d``), ``until`` (default ``now``), ``now``, ``format``, ``maxDataPoints``,
``noNullPoints``; ``cacheTimeout``, ``noCache`` and ``local`` change nothing.
The series come from the store through :func:`trio_metrics.query.fetch_series`
(its step rule), within the request's budget of series and points.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Final

import attrs

from ..storage import Store
from ..wire import GlobError
from ._graphite_params import (
    PICKLE_CONTENT_TYPE,
    GraphiteInputError,
    GraphiteParams,
    load_query_package,
    off_the_loop,
    parse_time,
    plain_pickle,
)
from ._limits import HttpLimits
from ._messages import Response

if TYPE_CHECKING:
    from ..query import TimeSeries, Values

__all__ = ["DEFAULT_FROM", "RenderContext", "render_response"]

#: graphite-web's default start of a render: a day ago.
DEFAULT_FROM: Final = "-1d"
_FORMATS: Final = frozenset({"json", "pickle"})
# Points encoded per piece of a JSON answer (about 100 KiB of text).
_SLICE_POINTS: Final = 4096
_POINT_TEXT: Final = "[{},{}]"

Fetch = Callable[[str, int, int], Awaitable[list["TimeSeries"]]]


@attrs.frozen
class RenderContext:
    """What a render asks for besides its targets: the range, ``now``, ``maxDataPoints``."""

    start: int
    end: int
    now: int
    max_data_points: int | None


async def render_response(
    store: Store, params: GraphiteParams, limits: HttpLimits, wallclock: int
) -> Response:
    """The answer to a render; raises :exc:`GraphiteInputError` for bad input or a
    request over the limits (``limits.max_points`` slots in all)."""
    await load_query_package()
    from ..query import FetchBudget, FetchLimitError, FindLimitError, fetch_series

    answer_format = "pickle" if params.has("pickle") else params.get("format")
    if answer_format not in _FORMATS:
        raise GraphiteInputError(
            f"Invalid value {answer_format!r} for param format: json and pickle are served"
        )
    targets = [target for target in params.all("target") if target.strip()]
    now_text = params.get("now")
    now = wallclock if not now_text else parse_time(now_text, wallclock, "now")
    start = parse_time(params.get("from") or DEFAULT_FROM, now, "from")
    end = parse_time(params.get("until") or "now", now, "until")
    if start >= end:
        raise GraphiteInputError("Invalid empty time range")
    max_data_points = params.whole("maxDataPoints", 0, minimum=1) or None
    context = RenderContext(start, end, now, max_data_points)
    budget = FetchBudget(max_points=limits.max_points)
    fetch: Fetch = partial(fetch_series, store, budget=budget)
    try:
        series = await _evaluate(targets, context, fetch)
    except GlobError as exc:
        raise GraphiteInputError(f"Invalid target: {exc}") from None
    except (FetchLimitError, FindLimitError) as exc:
        raise GraphiteInputError(str(exc)) from None
    if answer_format == "pickle":
        slots = sum(len(each.values) for each in series)
        return Response(
            200, await off_the_loop(slots, partial(_pickled, series)), PICKLE_CONTENT_TYPE
        )
    return Response.streamed(_json(series, drop_nulls=params.has("noNullPoints")))


async def _evaluate(
    targets: Sequence[str], context: RenderContext, fetch: Fetch
) -> list[TimeSeries]:
    """The series of every target, in order: path expressions (globs) only, for now.

    The one place where target expressions are evaluated; the query
    package's evaluator, with its functions, takes its place.
    """
    found: list[TimeSeries] = []
    for target in targets:
        if any(char in target for char in "()\"'"):
            raise GraphiteInputError(
                f"Invalid target {target!r}: only path expressions are rendered"
            )
        found += await fetch(target, context.start, context.end)
    return found


def _plain(value: float) -> float | None:
    """A slot's value for an answer: None for a gap (NaN), and for an infinity, which
    neither JSON nor graphite-web's charts can hold."""
    return value if math.isfinite(value) else None


def _plain_values(values: Values) -> list[float | None]:
    """The slots as Python floats, None for a gap or an infinity (see :func:`_plain`),
    converted in numpy rather than a call per slot."""
    import numpy as np  # loaded with the query package, on the first Graphite query

    finite = np.isfinite(values)
    if finite.all():
        plain: list[float | None] = values.tolist()
        return plain
    boxed = values.astype(object)
    boxed[~finite] = None
    mixed: list[float | None] = boxed.tolist()
    return mixed


def _pickled(series: list[TimeSeries]) -> bytes:
    document = [
        {
            "name": each.name,
            "start": int(each.start),
            "end": int(each.end),
            "step": int(each.step),
            "values": _plain_values(each.values),
            "pathExpression": each.path_expression,
        }
        for each in series
    ]
    return plain_pickle(document)


async def _json(series: list[TimeSeries], *, drop_nulls: bool) -> AsyncGenerator[bytes, None]:
    """The JSON answer in slices of :data:`_SLICE_POINTS` points: the sender lets other
    tasks run after each (encoding a million points at once would hold the loop for a
    second, and in a worker thread the GIL would still keep the loop waiting)."""
    opening = b"["
    for each in series:
        head = json.dumps({"target": each.name, "tags": dict(each.tags)}, separators=(",", ":"))
        # The object without its closing brace, then the datapoints.
        head_bytes = head[:-1].encode() + b',"datapoints":['
        values = each.values.tolist()
        separator = b""
        started = False
        for low in range(0, len(values), _SLICE_POINTS):
            stamps = range(each.start + low * each.step, each.end, each.step)
            pieces = [
                _POINT_TEXT.format("null" if value is None else repr(value), stamp)
                for value, stamp in zip(
                    map(_plain, values[low : low + _SLICE_POINTS]), stamps, strict=False
                )
                if value is not None or not drop_nulls
            ]
            if not pieces:
                continue
            text = ",".join(pieces).encode()
            if not started:
                yield opening + head_bytes + text
                opening = b","
                started = True
            else:
                yield separator + text
            separator = b","
        if started:
            yield b"]}"
        elif not drop_nulls:
            yield opening + head_bytes + b"]}"
            opening = b","
    yield b"[]" if opening == b"[" else b"]"
