"""The Redis client library's own error records: rate-limited, without tracebacks."""

from __future__ import annotations

import logging

import pytest

from trio_metrics.storage._redis import _quiet_client_log, _QuietClientLog


def _fail(client_logger: logging.Logger) -> None:
    try:
        raise ConnectionError("cut off")
    except ConnectionError:
        client_logger.exception("Connection attempt failed unexpectedly!")


def test_the_client_librarys_errors_are_rate_limited_and_short(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client_logger = logging.getLogger("coredis")
    before = list(client_logger.filters)
    # A store opened by an earlier test installed one already: start afresh.
    client_logger.filters[:] = [f for f in before if not isinstance(f, _QuietClientLog)]
    try:
        _quiet_client_log()
        _quiet_client_log()  # installed once
        assert sum(isinstance(f, _QuietClientLog) for f in client_logger.filters) == 1
        with caplog.at_level(logging.INFO, logger="coredis"):
            for _ in range(5):
                _fail(client_logger)
            client_logger.error("another failure")
            client_logger.info("a note")
            client_logger.info("a note")
        messages = [record.getMessage() for record in caplog.records]
        assert messages == [
            "Connection attempt failed unexpectedly! (ConnectionError; traceback left out)",
            "another failure",
            "a note",
            "a note",
        ]
        assert "Traceback" not in caplog.text
    finally:
        client_logger.filters[:] = before
