"""The value every query step passes along: a named series on a fixed step.

It mirrors graphite-web's ``TimeSeries``: ``values[i]`` is the value of the
slot that starts at ``start + i * step``; ``end`` is ``start + len(values) *
step`` (graphite's convention, on which ``summarize`` and consolidation
depend). A gap is NaN in ``values`` and ``None`` on the way out: the store
holds finite numbers only, so NaN never stands for a stored value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import attrs
import numpy as np
import numpy.typing as npt

__all__ = ["CONSOLIDATIONS", "TimeSeries", "Values", "graphite_end"]

#: A series' slots: float64, NaN where there is no value.
Values = npt.NDArray[np.float64]

#: The functions ``consolidateBy`` and ``maxDataPoints`` may use, as graphite names them.
CONSOLIDATIONS: Final = frozenset({"average", "avg", "sum", "min", "max", "first", "last"})


def _plain_tags(series: TimeSeries) -> Mapping[str, str]:
    return {"name": series.name}


@attrs.frozen(eq=False)
class TimeSeries:
    """One series on a fixed step; functions return new ones (``attrs.evolve``).

    ``path_expression`` is the target text that fetched it (graphite's
    ``pathExpression``); ``tags`` default to ``{"name": name}``, as
    graphite-web gives a series whose name has no tags.
    """

    name: str
    start: int
    step: int
    values: Values
    path_expression: str
    consolidation: str = "average"
    x_files_factor: float = 0.0
    tags: Mapping[str, str] = attrs.field(default=attrs.Factory(_plain_tags, takes_self=True))
    #: graphite-web's ``end`` where a function left it elsewhere than ``start +
    #: len(values) * step`` (``constantLine``'s three points span the request);
    #: only :func:`graphite_end` reads it, for the arithmetic graphite bases on ``end``.
    end_override: int | None = None

    @property
    def end(self) -> int:
        """``start + len(values) * step``: one past the last slot's start."""
        return self.start + len(self.values) * self.step

    def timestamps(self) -> range:
        """The start of every slot."""
        return range(self.start, self.end, self.step)

    def datapoints(self) -> list[tuple[float | None, int]]:
        """``(value or None, timestamp)`` per slot, as graphite's JSON lists them."""
        return [
            (None if value != value else float(value), stamp)
            for value, stamp in zip(self.values.tolist(), self.timestamps(), strict=True)
        ]


def graphite_end(series: TimeSeries) -> int:
    """The ``end`` graphite-web would hold for this series (see ``end_override``)."""
    return series.end if series.end_override is None else series.end_override
