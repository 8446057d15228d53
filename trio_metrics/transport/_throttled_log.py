"""Warnings that repeat at most once per interval, counting what they held back."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["ThrottledLogger"]


class ThrottledLogger:
    """Logs each kind of warning at most once per ``interval`` seconds.

    A flood of identical events (a connection storm hitting the limit, a
    client sending garbage) must not flood the log in turn. The first event
    of a kind is logged at once; later ones within the interval are counted,
    and the count is reported with the next one that gets through.
    """

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        # kind -> (when it was last logged, how many were held back since)
        self._kinds: dict[str, tuple[float, int]] = {}

    def warning(self, kind: str, message: str, *args: object) -> None:
        """Log ``message % args`` unless ``kind`` was logged within the interval."""
        now = self._clock()
        last = self._kinds.get(kind)
        if last is not None and now - last[0] < self._interval:
            self._kinds[kind] = (last[0], last[1] + 1)
            return
        held_back = 0 if last is None else last[1]
        self._kinds[kind] = (now, 0)
        if held_back:
            message += " (%d more like this since the last report)"
            args = (*args, held_back)
        self._logger.warning(message, *args)
