"""What a render request tells its functions: the time window, ``now`` and the defaults."""

from __future__ import annotations

from typing import Any

import attrs

from ._series import TimeSeries

__all__ = ["CallContext", "RenderContext", "SeriesList"]

#: What a function takes and gives: graphite's seriesList.
SeriesList = list[TimeSeries]


@attrs.frozen
class RenderContext:
    """One render request: ``[start, end)`` in unix seconds, ``now``, the
    ``xFilesFactor`` given to fetched series (graphite's default 0) and
    ``maxDataPoints`` (None: none asked). The functions do not look at
    ``max_data_points``: it travels with the request for the render step
    (:func:`render_datapoints`)."""

    start: int
    end: int
    now: int
    max_data_points: int | None = None
    x_files_factor: float = 0.0

    def __attrs_post_init__(self) -> None:
        if self.start >= self.end:
            raise ValueError(f"empty time range: start {self.start} >= end {self.end}")

    def shifted(self, start_by: int, end_by: int = 0) -> RenderContext:
        """The same request over a moved window (movingAverage's lookback, timeShift)."""
        return attrs.evolve(self, start=self.start + start_by, end=self.end + end_by)


@attrs.frozen
class CallContext:
    """What one function call sees beyond its arguments.

    ``refetched`` is the call's first argument evaluated again over the window
    the function asked for (``movingAverage``, ``timeShift``); ``stacks`` is
    shared by the calls of one request (``stacked`` keeps its running totals there).
    """

    render: RenderContext
    refetched: list[TimeSeries] | None = None
    stacks: dict[str, Any] = attrs.field(factory=dict)
