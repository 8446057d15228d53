"""``trio-metrics put``, ``get`` and ``stats``: one request each, through :class:`Client`."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from ..client import Client, Metrics
from ..server import DEFAULT_HOST, DEFAULT_PORT
from ..wire import ProtocolError, encode_put_request
from . import _argument_types as types

__all__ = ["add_client_verbs"]


def add_client_verbs(verbs: argparse._SubParsersAction[Any], parser_class: type) -> None:
    """Add ``put``, ``get`` and ``stats``, which share the connection flags."""
    connection = parser_class(add_help=False)
    connection.add_argument(
        "--host", default=DEFAULT_HOST, help="server address (default: %(default)s)"
    )
    connection.add_argument(
        "--port", type=types.port, default=DEFAULT_PORT, help="server port (default: %(default)s)"
    )
    connection.add_argument(
        "--timeout",
        type=types.positive_seconds,
        default=10.0,
        metavar="SECONDS",
        help="give up after this long (default: %(default)s)",
    )
    _add_put(verbs, connection)
    _add_get(verbs, connection)
    _add_stats(verbs, connection)


def _add_put(verbs: argparse._SubParsersAction[Any], connection: argparse.ArgumentParser) -> None:
    put = verbs.add_parser(
        "put",
        parents=[connection],
        help="store one point",
        description="Store VALUE for KEY at a timestamp (default: now).",
        epilog="A negative value in exponent form needs options first, then '--':"
        " trio-metrics put --port 8888 KEY -- -1e3",
    )
    put.add_argument("key", metavar="KEY", type=types.key, help="metric name, e.g. palm.cpu")
    put.add_argument("value", metavar="VALUE", type=types.value, help="a finite number, e.g. 10.6")
    put.add_argument(
        "--timestamp",
        type=types.timestamp,
        default=None,
        metavar="TS",
        help="unix seconds (default: now)",
    )
    put.set_defaults(run=_put, check=_check_put, put_parser=put)


def _add_get(verbs: argparse._SubParsersAction[Any], connection: argparse.ArgumentParser) -> None:
    get = verbs.add_parser(
        "get",
        parents=[connection],
        help="read the points of a key, or of all keys with '*'",
        description="Print the points of KEY ('*' for every key) as a table or JSON.",
    )
    get.add_argument(
        "key",
        metavar="KEY",
        type=types.key_or_all,
        help="metric name, or '*' (quote it in a shell) for all",
    )
    get.add_argument("--json", action="store_true", help='print {"key": [[timestamp, value], ...]}')
    get.set_defaults(run=_get)


def _add_stats(verbs: argparse._SubParsersAction[Any], connection: argparse.ArgumentParser) -> None:
    stats = verbs.add_parser(
        "stats",
        parents=[connection],
        help="show the server's counters",
        description="Show the server's counters: connections, commands by kind, errors,"
        " keys and points.",
    )
    stats.add_argument("--json", action="store_true", help='print {"name": value, ...}')
    stats.set_defaults(run=_stats)


def _check_put(args: argparse.Namespace) -> None:
    # Each argument passed its own rule; the line as a whole must still fit.
    try:
        encode_put_request(args.key, args.value, args.timestamp or 0)
    except ProtocolError as exc:
        args.put_parser.error(str(exc))


def _put(args: argparse.Namespace) -> int:
    with Client(args.host, args.port, timeout=args.timeout) as client:
        client.put(args.key, args.value, args.timestamp)
    return 0


def _get(args: argparse.Namespace) -> int:
    with Client(args.host, args.port, timeout=args.timeout) as client:
        metrics = client.get(args.key)
    if args.json:
        print(json.dumps({key: [list(p) for p in points] for key, points in metrics.items()}))
    else:
        _print_table(metrics)
    return 0


def _stats(args: argparse.Namespace) -> int:
    with Client(args.host, args.port, timeout=args.timeout) as client:
        counters = client.stats()
    if args.json:
        print(json.dumps(counters))
    else:
        width = max(map(len, counters), default=0)
        for name, value in counters.items():
            print(f"{name:<{width}}  {value}")
    return 0


def _print_table(metrics: Metrics) -> None:
    if not metrics:
        print("(no points)", file=sys.stderr)
        return
    rows = [("KEY", "TIMESTAMP", "TIME (UTC)", "VALUE")]
    for key, points in metrics.items():
        rows.extend((key, str(ts), _utc(ts), repr(value)) for ts, value in points)
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print(f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}")


def _utc(timestamp: int) -> str:
    try:
        return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, ValueError, OSError):
        return "-"
