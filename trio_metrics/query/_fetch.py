"""From the store to fixed-step series: :func:`fetch_series`, the query layer's only read.

The store keeps points at whatever seconds they arrived; graphite's
functions want each series on a fixed step. The rule, the same for every
answer (our own render and graphite-web's cluster fetch), so that both see
the same series:

- the points are those stored with ``start <= timestamp <= end``, from the
  finest retention tier that covers the range (:func:`storage.query_tier
  <trio_metrics.storage.query_tier>`, whisper's rule);
- the step is that tier's step when the range reaches into a rolled-up
  tier; otherwise (the points as put) the lower median of the gaps between
  consecutive stored timestamps in the range, at least 1 s; a series with
  fewer than two points there gets :data:`DEFAULT_STEP`;
- slots are aligned as whisper aligns them: a point at ``ts`` goes to the
  slot starting at ``ts - ts % step``, the last point wins within a slot,
  and a slot without a point is NaN;
- the first slot is the one holding ``start``, the last the one holding
  ``end``, so ``series.end`` (``start + len(values) * step``) is past ``end``.

A ``seriesByTag(...)`` call's text stands for the tagged keys its
expressions match (:func:`~._tagged.find_tagged`), as graphite-web's store
reads it; every series carries graphite-web's tags of its name
(:func:`~._tag_expressions.series_tags`).

The median, not the smallest gap: one late point would otherwise shrink
the step of a whole series and multiply its slots, mostly empty.
"""

from __future__ import annotations

from typing import Final

import attrs
import numpy as np
import numpy.typing as npt
import trio

from ..storage import Store, query_tier
from ._find import DEFAULT_MAX_FIND_NODES, find_nodes
from ._grammar import Call, String, TargetError, parse_target
from ._series import TimeSeries, Values
from ._tag_expressions import TAG_QUERY_CALL, TagExpressionError, TagQuery, series_tags
from ._tagged import find_tagged

#: Stored timestamps, ascending.
Stamps = npt.NDArray[np.int64]

__all__ = [
    "DEFAULT_MAX_FETCH_POINTS",
    "DEFAULT_MAX_FETCH_SERIES",
    "DEFAULT_STEP",
    "FetchBudget",
    "FetchLimitError",
    "fetch_series",
    "step_of",
    "tag_query_of",
]

#: The step of a series with fewer than two points in the range, in seconds.
DEFAULT_STEP: Final = 60
#: The most series one request may fetch, by default.
DEFAULT_MAX_FETCH_SERIES: Final = 10_000
#: The most slots (points and gaps) one request may fetch, by default.
DEFAULT_MAX_FETCH_POINTS: Final = 10_000_000


class FetchLimitError(ValueError):
    """A request that would fetch more series or slots than allowed; the message says which."""


@attrs.define
class FetchBudget:
    """What one request may still fetch, over all its path expressions."""

    max_series: int = DEFAULT_MAX_FETCH_SERIES
    max_points: int = DEFAULT_MAX_FETCH_POINTS
    max_find_nodes: int = DEFAULT_MAX_FIND_NODES
    #: None: :data:`~._tagged.DEFAULT_MAX_TAG_SCAN`.
    max_tag_scan: int | None = None
    series: int = 0
    points: int = 0

    def charge(self, series: int, points: int) -> None:
        """Count ``series`` and ``points`` more; raise :exc:`FetchLimitError` past a limit."""
        self.series += series
        self.points += points
        if self.series > self.max_series:
            raise FetchLimitError(
                f"the targets match over {self.max_series} series, the limit per request:"
                " narrow the globs"
            )
        if self.points > self.max_points:
            raise FetchLimitError(
                f"the answer would hold over {self.max_points} points, the limit per request:"
                " ask for a shorter range"
            )


def step_of(timestamps: Stamps) -> int:
    """The step of a series stored at ``timestamps`` (ascending, distinct): see the module."""
    return _step_and_regularity(timestamps)[0]


def _step_and_regularity(timestamps: Stamps) -> tuple[int, bool]:
    """The step, and whether every gap is that step (then each point has a slot of its
    own, the next one's: the common case, copied without computing slots)."""
    if len(timestamps) < 2:
        return DEFAULT_STEP, False
    gaps = np.diff(timestamps)
    smallest, largest = int(gaps.min()), int(gaps.max())
    if smallest == largest:
        return max(1, smallest), True
    middle = (len(gaps) - 1) // 2
    return max(1, int(np.partition(gaps, middle)[middle])), False


async def fetch_series(
    store: Store,
    path_expression: str,
    start: int,
    end: int,
    *,
    budget: FetchBudget | None = None,
) -> list[TimeSeries]:
    """The series of every stored key ``path_expression`` matches, within ``start..end``.

    ``path_expression`` is a graphite glob; each series is named after its
    key and carries the pattern as given. Keys come sorted. Raises
    :exc:`~trio_metrics.wire.GlobError` for a malformed glob and
    :exc:`FetchLimitError` (or :exc:`FindLimitError`) past ``budget``'s
    limits. Other tasks run between keys.
    """
    if budget is None:
        budget = FetchBudget()
    if end < start:
        raise ValueError(f"the range ends ({end}) before it starts ({start})")
    if path_expression.startswith(TAG_QUERY_CALL + "("):
        query = tag_query_of(path_expression)
        keys = await find_tagged(store, query, max_keys=budget.max_tag_scan)
    else:
        leaves = await find_nodes(
            store, path_expression, leaves_only=True, max_nodes=budget.max_find_nodes
        )
        keys = [leaf.path for leaf in leaves]
    budget.charge(len(keys), 0)
    found: list[TimeSeries] = []
    for key in keys:
        tier_step, stored = await query_tier(store, key, start, end)
        if stored is None:
            timestamps = np.empty(0, dtype=np.int64)
            values = np.empty(0, dtype=np.float64)
        else:
            timestamps = np.asarray(stored.timestamps, dtype=np.int64)
            values = np.asarray(stored.values, dtype=np.float64)
        step, regular = _step_and_regularity(timestamps)
        if tier_step:
            regular = regular and step == tier_step
            step = tier_step
        first = start - start % step
        slots = (end - first) // step + 1
        budget.charge(0, slots)
        if regular:
            aligned = np.full(slots, np.nan, dtype=np.float64)
            offset = (int(timestamps[0]) - first) // step
            aligned[offset : offset + len(values)] = values
        else:
            aligned = _aligned(timestamps, values, first, step, slots)
        found.append(
            TimeSeries(
                name=key,
                start=first,
                step=step,
                values=aligned,
                path_expression=path_expression,
                tags=series_tags(key),
            )
        )
        await trio.lowlevel.checkpoint()
    return found


def tag_query_of(call_text: str) -> TagQuery:
    """The tag query of a ``seriesByTag('tag=value', ...)`` call's text (its string
    arguments, as graphite-web's store reads them); :exc:`TargetError` if it is not one."""
    expression = parse_target(call_text)
    if not isinstance(expression, Call) or expression.name != TAG_QUERY_CALL:
        raise TargetError(f"not a {TAG_QUERY_CALL} call: {call_text!r}")
    texts = [arg.value for arg in expression.args if isinstance(arg, String)]
    try:
        return TagQuery.parse(texts)
    except TagExpressionError as error:
        raise TargetError(f"{TAG_QUERY_CALL}: {error}") from None


def _aligned(timestamps: Stamps, values: Values, first: int, step: int, slots: int) -> Values:
    """``values`` in slots of ``step`` from ``first``; the last point of a slot wins."""
    aligned = np.full(slots, np.nan, dtype=np.float64)
    if len(timestamps):
        indexes = (timestamps - first) // step
        # Timestamps ascend, so the last of each run of equal indexes is the latest point.
        last_of_slot = np.append(indexes[1:] != indexes[:-1], True)
        aligned[indexes[last_of_slot]] = values[last_of_slot]
    return aligned
