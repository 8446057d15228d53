"""``trio-metrics put``, ``get`` and ``stats``: one request each, through :class:`Client`."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Final

from ..client._environment import (
    HOST_VARIABLE,
    PORT_VARIABLE,
    EnvironmentPortError,
    default_host,
    default_port,
)
from ..wire import ProtocolError, StreamedPoint, encode_put_request
from . import _argument_types as types
from ._command_verbs import add_command_verbs, add_range_options, run_range
from ._connection_flags import add_tls_flags, connect

__all__ = ["add_client_verbs", "resolve_address"]


def add_client_verbs(verbs: argparse._SubParsersAction[Any], parser_class: type) -> None:
    """Add ``put``, ``get`` and ``stats``, which share the connection flags."""
    connection = parser_class(add_help=False)
    connection.add_argument("--host", default=None, help=f"server address ({_host_default()})")
    connection.add_argument(
        "--port", type=types.port, default=None, help=f"server port ({_port_default()})"
    )
    connection.add_argument(
        "--timeout",
        type=types.positive_seconds,
        default=10.0,
        metavar="SECONDS",
        help="give up after this long (default: %(default)s)",
    )
    add_tls_flags(connection)
    # main() fills in a --host or --port left out, from the environment.
    connection.set_defaults(resolve_address=resolve_address)
    _add_put(verbs, connection)
    _add_get(verbs, connection)
    _add_stats(verbs, connection)
    add_command_verbs(verbs, connection)


def _host_default() -> str:
    host, variable = default_host()
    return _described(host, variable, HOST_VARIABLE)


def _port_default() -> str:
    try:
        port, variable = default_port()
    except EnvironmentPortError as exc:
        # --help still works; a request without --port will fail with this.
        return _escaped(f"default: none, {exc}")
    return _described(str(port), variable, PORT_VARIABLE)


def _described(value: str, source: str | None, variable: str) -> str:
    # Says where the default comes from, so a surprising address explains itself.
    source = f"from {source}" if source else f"{variable} is not set"
    return _escaped(f"default: {value}, {source}")


def _escaped(text: str) -> str:
    # argparse %-formats help text; a variable's value may hold a '%'.
    return text.replace("%", "%%")


def resolve_address(args: argparse.Namespace) -> None:
    """Fill in ``args.host`` and ``args.port`` left out, from the environment or the defaults.

    Raises :class:`EnvironmentPortError` for a bad ``TRIO_METRICS_PORT``.
    """
    if args.host is None:
        args.host, _ = default_host()
    if args.port is None:
        args.port, _ = default_port()


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
    add_range_options(get)
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
    with connect(args) as client:
        client.put(args.key, args.value, args.timestamp)
    return 0


def _get(args: argparse.Namespace) -> int:
    # Printed as the answer arrives: the first line shows at once, and
    # memory stays bounded whatever the answer's size.
    with connect(args) as client:
        ranged = args.start is not None or args.end is not None
        if ranged:
            metrics = run_range(args, client)
            points: Iterator[StreamedPoint] = (
                (key, ts, value) for key, series in metrics.items() for ts, value in series
            )
        else:
            points = client.iter_get(args.key)
        if args.json:
            _print_json(points)
        else:
            _print_table(points)
    return 0


def _stats(args: argparse.Namespace) -> int:
    with connect(args) as client:
        counters = client.stats()
    if args.json:
        print(json.dumps(counters))
    else:
        width = max(map(len, counters), default=0)
        for name, value in counters.items():
            print(f"{name:<{width}}  {value}")
    return 0


#: How many points set the table's column widths; later wider cells push
#: their own row's columns out rather than hold the output back.
TABLE_WIDTH_ROWS: Final = 1000


def _print_table(points: Iterator[StreamedPoint]) -> None:
    first = list(itertools.islice(points, TABLE_WIDTH_ROWS))
    if not first:
        print("(no points)", file=sys.stderr)
        return
    header = ("KEY", "TIMESTAMP", "TIME (UTC)", "VALUE")
    rows = [header, *map(_row, first)]
    widths = [max(display_width(row[i]) for row in rows) for i in range(3)]
    write = sys.stdout.write
    write("".join(_table_line(row, widths) for row in rows))
    rest = map(_row, points)
    while batch := list(itertools.islice(rest, 4096)):
        write("".join(_table_line(row, widths) for row in batch))


def _row(point: StreamedPoint) -> tuple[str, str, str, str]:
    key, timestamp, value = point
    return key, str(timestamp), _utc(timestamp), repr(value)


def _table_line(row: tuple[str, str, str, str], widths: list[int]) -> str:
    key, timestamp, time, value = row
    return f"{_pad(key, widths[0])}  {timestamp:>{widths[1]}}  {time:<{widths[2]}}  {value}\n"


def _pad(text: str, width: int) -> str:
    return text + " " * (width - display_width(text))


def display_width(text: str) -> int:
    """Columns ``text`` takes in a terminal: wide (W, F) characters 2, combining marks 0."""
    if text.isascii():
        return len(text)
    return sum(
        0 if unicodedata.combining(char) else 2 if unicodedata.east_asian_width(char) in "WF" else 1
        for char in text
    )


def _print_json(points: Iterator[StreamedPoint]) -> None:
    # One JSON document, written key by key: a get answer holds each key's
    # lines together, so a key's list closes when the next key starts.
    write = sys.stdout.write
    write("{")
    current: str | None = None
    for key, timestamp, value in points:
        if key != current:
            write("], " if current is not None else "")
            write(f"{json.dumps(key, ensure_ascii=False)}: [")
            current = key
        else:
            write(", ")
        write(f"[{timestamp}, {json.dumps(value)}]")
    write("]}\n" if current is not None else "}\n")


def _utc(timestamp: int) -> str:
    try:
        return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, ValueError, OSError):
        return "-"
