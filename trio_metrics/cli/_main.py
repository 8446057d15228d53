"""The ``trio-metrics`` command: ``serve`` a store, ``put`` and ``get`` points.

Failures print one line to stderr and exit non-zero: 1 for a failed
request or server start, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

import trio

from .. import __version__
from ..client import Client, ClientError, Metrics
from ..http._server import HttpListenError
from ..ingest._graphite import GraphiteListenError
from ..server._answer_cache import DEFAULT_ANSWER_CACHE_BYTES
from ..server._serve import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_SHUTDOWN_GRACE,
    ServerInfo,
    serve_until_signal,
)
from ..storage._data_dir import DataDirError
from ..storage._durable import DEFAULT_COMPACT_MIN_BYTES, FsyncPolicy
from ..transport._limits import (
    DEFAULT_MAX_BUFFERED_ANSWER,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_LINE_LENGTH,
)
from ..wire._protocol import (
    MAX_TIMESTAMP,
    ProtocolError,
    is_valid_key,
    parse_timestamp,
    parse_value,
)

__all__ = ["main"]

_PROG = "trio-metrics"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.run is _serve and args.data_dir is None:
        # Storage options without a data directory would be ignored, and an
        # operator would believe the points are kept.
        given = [
            flag
            for flag, value in (
                ("--fsync", args.fsync),
                ("--repair", args.repair or None),
                ("--compact-min-bytes", args.compact_min_bytes),
            )
            if value is not None
        ]
        if given:
            args.serve_parser.error(f"{', '.join(given)} needs --data-dir DIR")
    try:
        status: int = args.run(args)
    except ClientError as exc:
        _fail(str(exc))
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of our output (head, less) stopped early: not an error
        # worth a traceback. Point stdout at nothing so the exit flush is quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:
        if args.run is _serve:
            raise
        # Writing the output failed (a full disk, a closed terminal).
        _fail(f"cannot write the output: {exc.strerror or exc}")
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return status


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``trio-metrics put: error: ...`` and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=_PROG,
        description="A metrics server speaking the put/get text protocol, and its client.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    verbs = parser.add_subparsers(
        title="commands", metavar="COMMAND", required=True, parser_class=_Parser
    )

    serve = verbs.add_parser(
        "serve",
        help="run the server until Ctrl-C or SIGTERM",
        description="Run the metrics server until Ctrl-C or SIGTERM (then exit 0).",
    )
    serve.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help="address to listen on (default: %(default)s)",
    )
    serve.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help="TCP port; 0 picks a free one (default: %(default)s)",
    )
    serve.add_argument(
        "--max-line-length",
        type=_positive_int,
        default=DEFAULT_MAX_LINE_LENGTH,
        metavar="BYTES",
        help="longest command line accepted; a longer one gets the error answer"
        " (default: %(default)s)",
    )
    serve.add_argument(
        "--max-connections",
        type=_positive_int,
        default=DEFAULT_MAX_CONNECTIONS,
        metavar="N",
        help="connections served at once; more are closed at once (default: %(default)s)",
    )
    serve.add_argument(
        "--idle-timeout",
        type=_positive_seconds,
        default=None,
        metavar="SECONDS",
        help="close a connection that sends no command, or takes no answer, for this long"
        " (default: never)",
    )
    serve.add_argument(
        "--max-buffered-answer",
        type=_positive_int,
        default=DEFAULT_MAX_BUFFERED_ANSWER,
        metavar="BYTES",
        help="answer bytes held per connection before the server waits for the client"
        " to read them (default: %(default)s)",
    )
    serve.add_argument(
        "--answer-cache-bytes",
        type=_non_negative_int,
        default=DEFAULT_ANSWER_CACHE_BYTES,
        metavar="BYTES",
        help="memory for encoded get answers, reused while points are unchanged; 0 turns"
        " it off (default: %(default)s)",
    )
    storage = serve.add_argument_group("storage (default: memory only)")
    storage.add_argument(
        "--data-dir",
        metavar="DIR",
        type=_data_dir,
        default=None,
        help="keep points in DIR (created if missing): a write-ahead log and snapshots,"
        " recovered at start-up",
    )
    storage.add_argument(
        "--fsync",
        choices=[policy.value for policy in FsyncPolicy],
        default=None,
        help="when the log is fsynced: before each ok (always), once a second (everysec),"
        f" or when the system likes (never) (default: {FsyncPolicy.EVERYSEC.value})",
    )
    storage.add_argument(
        "--repair",
        action="store_true",
        help="if a log or snapshot file is damaged, keep a copy of it and cut it at the"
        " first bad record instead of refusing to start",
    )
    storage.add_argument(
        "--compact-min-bytes",
        type=_non_negative_int,
        default=None,
        metavar="BYTES",
        help="compact the log into a snapshot once it is larger than this and than twice"
        f" the snapshot (default: {DEFAULT_COMPACT_MIN_BYTES})",
    )
    serve.add_argument(
        "--shutdown-grace",
        type=_non_negative_seconds,
        default=DEFAULT_SHUTDOWN_GRACE,
        metavar="SECONDS",
        help="on Ctrl-C or SIGTERM, time given to connections to finish the commands they"
        " sent (default: %(default)s)",
    )
    serve.add_argument(
        "--graphite-port",
        type=_port,
        default=None,
        metavar="PORT",
        help="also take Graphite plaintext lines ('path value timestamp') on this TCP port"
        " of the same host, into the same store; 2003 is the usual one (default: off)",
    )
    serve.add_argument(
        "--http-port",
        type=_port,
        default=None,
        metavar="PORT",
        help="also serve the HTTP API, /metrics and the dashboard on this port of the same"
        " host; 0 picks a free one (default: off)",
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="how much the server logs to stderr (default: %(default)s)",
    )
    serve.set_defaults(run=_serve, serve_parser=serve)

    connection = _Parser(add_help=False)
    connection.add_argument(
        "--host", default=DEFAULT_HOST, help="server address (default: %(default)s)"
    )
    connection.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help="server port (default: %(default)s)",
    )
    connection.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=10.0,
        metavar="SECONDS",
        help="give up after this long (default: %(default)s)",
    )

    put = verbs.add_parser(
        "put",
        parents=[connection],
        help="store one point",
        description="Store VALUE for KEY at a timestamp (default: now).",
        epilog="A negative value in exponent form needs options first, then '--':"
        " trio-metrics put --port 8888 KEY -- -1e3",
    )
    put.add_argument("key", metavar="KEY", type=_key, help="metric name, e.g. palm.cpu")
    put.add_argument("value", metavar="VALUE", type=_value, help="a finite number, e.g. 10.6")
    put.add_argument(
        "--timestamp",
        type=_timestamp,
        default=None,
        metavar="TS",
        help="unix seconds (default: now)",
    )
    put.set_defaults(run=_put)

    get = verbs.add_parser(
        "get",
        parents=[connection],
        help="read the points of a key, or of all keys with '*'",
        description="Print the points of KEY ('*' for every key) as a table or JSON.",
    )
    get.add_argument(
        "key",
        metavar="KEY",
        type=_key_or_all,
        help="metric name, or '*' (quote it in a shell) for all",
    )
    get.add_argument("--json", action="store_true", help='print {"key": [[timestamp, value], ...]}')
    get.set_defaults(run=_get)

    stats = verbs.add_parser(
        "stats",
        parents=[connection],
        help="show the server's counters",
        description="Show the server's counters: connections, commands by kind, errors,"
        " keys and points.",
    )
    stats.add_argument("--json", action="store_true", help='print {"name": value, ...}')
    stats.set_defaults(run=_stats)
    return parser


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    where = "memory only" if args.data_dir is None else f"data in {args.data_dir}"

    def ready(info: ServerInfo) -> None:
        graphite = "" if info.graphite_port is None else f", Graphite on port {info.graphite_port}"
        print(
            f"{_PROG} {__version__} listening on {info.host}:{info.port}{graphite}"
            f" ({where}; Ctrl-C stops)",
            flush=True,
        )
        if info.http_port is not None:
            print(f"dashboard on http://{_url_host(info.host)}:{info.http_port}/", flush=True)

    options: dict[str, Any] = {
        "max_line_length": args.max_line_length,
        "max_connections": args.max_connections,
        "idle_timeout": args.idle_timeout,
        "max_buffered_answer": args.max_buffered_answer,
        "answer_cache_bytes": args.answer_cache_bytes,
        "shutdown_grace": args.shutdown_grace,
        "graphite_port": args.graphite_port,
        "http_port": args.http_port,
    }
    if args.data_dir is not None:
        options.update(
            data_dir=args.data_dir,
            fsync=args.fsync or FsyncPolicy.EVERYSEC.value,
            repair=args.repair,
            compact_min_bytes=(
                DEFAULT_COMPACT_MIN_BYTES
                if args.compact_min_bytes is None
                else args.compact_min_bytes
            ),
        )
    try:
        trio.run(serve_until_signal, args.host, args.port, ready, options)
    except DataDirError as exc:
        _fail(str(exc))
        return 1
    except HttpListenError as exc:
        _fail(f"cannot listen for HTTP on {args.host}:{args.http_port}: {exc.strerror}")
        return 1
    except GraphiteListenError as exc:
        _fail(f"cannot listen for Graphite on {args.host}:{args.graphite_port}: {exc.strerror}")
        return 1
    except OSError as exc:
        _fail(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
        return 1
    return 0


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


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


def _fail(message: str) -> None:
    print(f"{_PROG}: error: {message}", file=sys.stderr)


# argparse turns a ValueError from a type function into "invalid <name> value";
# ArgumentTypeError lets the message say what is wrong.


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port {text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is outside 0..65535")
    return port


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


_positive_int = _whole_number_at_least(1)
_non_negative_int = _whole_number_at_least(0)


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number of seconds")
    return seconds


def _key_or_all(text: str) -> str:
    return text if text == "*" else _key(text)


def _key(text: str) -> str:
    if not is_valid_key(text):
        raise argparse.ArgumentTypeError(
            f"key {text!r} must be one word of printable characters, not '*'"
        )
    return text


def _value(text: str) -> str:
    # Checked here for a clear message, but sent as typed, like Client.put does.
    try:
        parse_value(text.encode("utf-8"))
    except ProtocolError:
        raise argparse.ArgumentTypeError(f"value {text!r} is not a finite number") from None
    return text


def _timestamp(text: str) -> int:
    try:
        return parse_timestamp(text.encode("utf-8"))
    except ProtocolError:
        raise argparse.ArgumentTypeError(
            f"timestamp {text!r} must be whole unix seconds in 0..{MAX_TIMESTAMP}"
        ) from None


def _non_negative_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be zero or a positive number of seconds")
    return seconds


def _data_dir(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("the data directory must not be empty")
    return text
