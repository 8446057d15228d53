"""Parsers of the command line's values, each with a message that says what is wrong.

argparse turns a :exc:`ValueError` from a type function into "invalid
<name> value"; :exc:`argparse.ArgumentTypeError` lets the message say what
is wrong instead.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ..storage import Retention, RetentionError, parse_redis_url, parse_retention
from ..wire import MAX_TIMESTAMP, ProtocolError, check_key, check_value, echo, parse_timestamp

__all__ = [
    "data_dir",
    "key",
    "key_or_all",
    "non_negative_int",
    "non_negative_seconds",
    "port",
    "positive_int",
    "positive_seconds",
    "redis_url",
    "retention",
    "timestamp",
    "value",
]


def port(text: str) -> int:
    """A TCP port, 0..65535."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port {text!r} is not a number") from None
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"port {number} is outside 0..65535")
    return number


def _whole_number_at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if number < minimum:
            raise argparse.ArgumentTypeError(f"{number} must be at least {minimum}")
        return number

    return parse


positive_int = _whole_number_at_least(1)
non_negative_int = _whole_number_at_least(0)


def _seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None


def positive_seconds(text: str) -> float:
    """A finite number of seconds, more than 0."""
    seconds = _seconds(text)
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number of seconds")
    return seconds


def non_negative_seconds(text: str) -> float:
    """A finite number of seconds, 0 or more."""
    seconds = _seconds(text)
    if not 0 <= seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be zero or a positive number of seconds")
    return seconds


def key(text: str) -> str:
    """A key the protocol can store (:func:`~trio_metrics.wire.check_key`)."""
    return _checked(check_key, text)


def key_or_all(text: str) -> str:
    """A key, or ``*`` for every key."""
    return text if text == "*" else key(text)


def value(text: str) -> str:
    """A finite number (:func:`~trio_metrics.wire.check_value`), sent as typed."""
    return _checked(check_value, text)


def _checked(check: Callable[[str], str], text: str) -> str:
    # The clients' own checks, so the CLI refuses in the same words, as
    # argparse's "error:" line (exit 2), before it connects.
    try:
        return check(text)
    except ProtocolError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def timestamp(text: str) -> int:
    """Whole unix seconds in the protocol's range."""
    try:
        return parse_timestamp(text.encode("utf-8"))
    except ProtocolError:
        raise argparse.ArgumentTypeError(
            f"timestamp {echo(text)} must be whole unix seconds in 0..{MAX_TIMESTAMP}"
        ) from None


def retention(text: str) -> Retention:
    """A retention in carbon's form, such as ``10s:1d,1m:30d``."""
    try:
        return parse_retention(text)
    except RetentionError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def redis_url(text: str) -> str:
    """A store URL: ``redis-cluster://host:port[,host:port...]`` or ``redis://host:port``."""
    try:
        parse_redis_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def data_dir(text: str) -> str:
    """A data directory's path, not empty."""
    if not text.strip():
        raise argparse.ArgumentTypeError("the data directory must not be empty")
    return text
