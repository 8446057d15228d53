"""``/graphite/render``: the series of targets over a time range, as JSON or as a pickle.

- ``format=json`` (Grafana): ``[{"target", "tags", "datapoints": [[value or null, ts], ...]}]``;
- ``format=pickle`` (graphite-web's cluster fetch, with ``local=1``): a pickled
  list of ``{'name', 'start', 'end', 'step', 'values', 'pathExpression'}``,
  ``values`` one slot per step with ``None`` for a gap, ``end = start +
  len(values) * step``, ``pathExpression`` the target exactly as sent.

Parameters as graphite-web takes them: repeated ``target`` (an expression of
the functions :mod:`trio_metrics.query` implements), ``from`` (default
``-1d``), ``until`` (default ``now``), ``now`` (graphite's time forms),
``format``, ``maxDataPoints`` (consolidates the JSON answer as graphite-web
does; the pickle, for graphite-web to consolidate, is left whole),
``noNullPoints``; ``cacheTimeout``, ``noCache`` and ``local`` change nothing.
The series come from the store through :func:`trio_metrics.query.fetch_series`
(its step rule), within the request's budget of series and points; a bad
target, time or parameter is a 400 with graphite's message.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncGenerator
from functools import partial
from typing import TYPE_CHECKING, Final

from ..storage import Store
from ..wire import GlobError
from ._graphite_params import (
    PICKLE_CONTENT_TYPE,
    GraphiteInputError,
    GraphiteParams,
    load_query_package,
    off_the_loop,
    plain_pickle,
)
from ._limits import HttpLimits
from ._messages import Response

if TYPE_CHECKING:
    from ..query import TimeSeries, Values

__all__ = ["render_response"]

_FORMATS: Final = frozenset({"json", "pickle"})
# Points encoded per piece of a JSON answer (about 100 KiB of text).
_SLICE_POINTS: Final = 4096
_POINT_TEXT: Final = "[{},{}]"


async def render_response(
    store: Store, params: GraphiteParams, limits: HttpLimits, wallclock: int
) -> Response:
    """The answer to a render; raises :exc:`GraphiteInputError` for bad input or a
    request over the limits (``limits.max_points`` slots in all)."""
    await load_query_package()
    from ..query import (
        FetchBudget,
        FetchLimitError,
        FindLimitError,
        TagScanLimitError,
        fetch_series,
    )

    answer_format = "pickle" if params.has("pickle") else params.get("format")
    if answer_format not in _FORMATS:
        raise GraphiteInputError(
            f"Invalid value {answer_format!r} for param format: json and pickle are served"
        )
    from ..query import (
        RenderContext,
        TargetError,
        TimeFormatError,
        evaluate_targets,
        parse_time,
        render_series,
        time_range,
    )

    targets = [target for target in params.all("target") if target.strip()]
    max_data_points = params.whole("maxDataPoints", 0, minimum=1) or None
    try:
        now_text = params.get("now")
        now = wallclock if not now_text else parse_time(now_text, wallclock)
        start, end = time_range(params.get("from") or None, params.get("until") or None, now)
    except TimeFormatError as exc:
        raise GraphiteInputError(str(exc)) from None
    context = RenderContext(start, end, now, max_data_points)
    budget = FetchBudget(max_points=limits.max_points)
    try:
        series = await evaluate_targets(
            targets, context, partial(fetch_series, store, budget=budget)
        )
    except (TargetError, TimeFormatError) as exc:
        raise GraphiteInputError(str(exc)) from None
    except GlobError as exc:
        raise GraphiteInputError(f"Invalid target: {exc}") from None
    except (FetchLimitError, FindLimitError, TagScanLimitError) as exc:
        raise GraphiteInputError(str(exc)) from None
    if answer_format == "pickle":
        slots = sum(len(each.values) for each in series)
        return Response(
            200, await off_the_loop(slots, partial(_pickled, series)), PICKLE_CONTENT_TYPE
        )
    # graphite-web's JSON: consolidated for maxDataPoints, each cut at graphite's end.
    rendered = await off_the_loop(
        sum(len(each.values) for each in series), partial(render_series, series, max_data_points)
    )
    return Response.streamed(_json(rendered, drop_nulls=params.has("noNullPoints")))


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
