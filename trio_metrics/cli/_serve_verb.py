"""``trio-metrics serve``: its flags, as a table, and the :class:`ServerConfig` they make.

A new server setting is one row in :data:`SERVE_FLAGS` and one line in
:func:`config_from_args`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import attrs
import trio

from .. import __version__
from ..http import (
    DEFAULT_BODY_BUDGET_BYTES,
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_HTTP_MAX_CONNECTIONS,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_POINTS,
    HttpLimits,
    HttpListenError,
)
from ..ingest import GraphiteListenError
from ..server import (
    DEFAULT_ANSWER_CACHE_BYTES,
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_SHUTDOWN_GRACE,
    ListenError,
    ProtectedModeError,
    ServerConfig,
    ServerInfo,
    configure_logging,
    describe_protection,
    serve_until_signal,
)
from ..storage import (
    DEFAULT_COMPACT_MIN_BYTES,
    DEFAULT_COPY_BUDGET_BYTES,
    DEFAULT_REDIS_TIMEOUT,
    AggregationRule,
    DataDirError,
    DataDirStorage,
    FsyncPolicy,
    MemoryStorage,
    RedisStorage,
    RetentionError,
    RetentionRules,
    Storage,
    StoreUnavailableError,
    load_storage_aggregation,
    load_storage_schemas,
)
from ..transport import (
    DEFAULT_AUTH_TIMEOUT,
    DEFAULT_MAX_BUFFERED_ANSWER,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_LINE_LENGTH,
    DEFAULT_MAX_UNAUTHENTICATED,
    DEFAULT_TLS_HANDSHAKE_TIMEOUT,
    AuthSettings,
    Limits,
    TlsSettings,
)
from . import _argument_types as types
from ._allocator import keep_freed_memory
from ._output import PROG, fail, silence_stdout

__all__ = [
    "RETENTION_GROUP",
    "SERVE_FLAGS",
    "add_serve_verb",
    "config_from_args",
    "retention_from_args",
]

_STORAGE_GROUP = "storage (default: memory only)"
_HTTP_GROUP = "HTTP limits (with --http-port)"
RETENTION_GROUP = "retention (default: every point kept at full precision)"
_SECURITY_GROUP = "security (see docs/security.md)"

logger = logging.getLogger("trio_metrics.server")


@attrs.frozen
class Flag:
    """One flag of ``serve``: its names, ``add_argument``'s keywords, and its group."""

    names: tuple[str, ...]
    options: dict[str, Any]
    group: str | None = None
    #: Only meaningful with ``--data-dir``: refused without it.
    needs_data_dir: bool = False
    #: Only meaningful with ``--store``: refused without it.
    needs_store: bool = False


#: Every flag of ``trio-metrics serve``, in ``--help`` order.
SERVE_FLAGS: tuple[Flag, ...] = (
    Flag(
        ("--host",),
        {"default": DEFAULT_HOST, "help": "address to listen on (default: %(default)s)"},
    ),
    Flag(
        ("--port",),
        {
            "type": types.port,
            "default": DEFAULT_PORT,
            "help": "TCP port; 0 picks a free one (default: %(default)s)",
        },
    ),
    Flag(
        ("--max-line-length",),
        {
            "type": types.positive_int,
            "default": DEFAULT_MAX_LINE_LENGTH,
            "metavar": "BYTES",
            "help": "longest command line accepted; a longer one gets the error answer"
            " (default: %(default)s)",
        },
    ),
    Flag(
        ("--max-connections",),
        {
            "type": types.positive_int,
            "default": DEFAULT_MAX_CONNECTIONS,
            "metavar": "N",
            "help": "connections served at once; more are closed at once (default: %(default)s)",
        },
    ),
    Flag(
        ("--idle-timeout",),
        {
            "type": types.positive_seconds,
            "default": None,
            "metavar": "SECONDS",
            "help": "close a connection that sends no command, or takes no answer, for this long"
            " (default: never)",
        },
    ),
    Flag(
        ("--max-buffered-answer",),
        {
            "type": types.positive_int,
            "default": DEFAULT_MAX_BUFFERED_ANSWER,
            "metavar": "BYTES",
            "help": "answer bytes held per connection before the server waits for the client"
            " to read them (default: %(default)s)",
        },
    ),
    Flag(
        ("--answer-cache-bytes",),
        {
            "type": types.non_negative_int,
            "default": DEFAULT_ANSWER_CACHE_BYTES,
            "metavar": "BYTES",
            "help": "memory for encoded get answers, reused while points are unchanged; 0 turns"
            " it off (default: %(default)s)",
        },
    ),
    Flag(
        ("--answer-copy-budget-bytes",),
        {
            "type": types.non_negative_int,
            "default": DEFAULT_COPY_BUDGET_BYTES,
            "metavar": "BYTES",
            "help": "memory for the copies of points that all connections' gets hold at once"
            " (16 bytes a point); past it a get waits for another; 0: no bound"
            " (default: %(default)s)",
        },
    ),
    Flag(
        ("--data-dir",),
        {
            "metavar": "DIR",
            "type": types.data_dir,
            "default": None,
            "help": "keep points in DIR (created if missing): a write-ahead log and snapshots,"
            " recovered at start-up",
        },
        group=_STORAGE_GROUP,
    ),
    Flag(
        ("--fsync",),
        {
            "choices": [policy.value for policy in FsyncPolicy],
            "default": None,
            "help": "when the log is fsynced: before each ok (always), once a second (everysec),"
            f" or when the system likes (never) (default: {FsyncPolicy.EVERYSEC.value})",
        },
        group=_STORAGE_GROUP,
        needs_data_dir=True,
    ),
    Flag(
        ("--repair",),
        {
            "action": "store_true",
            "default": None,
            "help": "if a log or snapshot file is damaged, keep a copy of it and cut it at the"
            " first bad record instead of refusing to start",
        },
        group=_STORAGE_GROUP,
        needs_data_dir=True,
    ),
    Flag(
        ("--compact-min-bytes",),
        {
            "type": types.non_negative_int,
            "default": None,
            "metavar": "BYTES",
            "help": "compact the log into a snapshot once it is larger than this and than twice"
            f" the snapshot (default: {DEFAULT_COMPACT_MIN_BYTES})",
        },
        group=_STORAGE_GROUP,
        needs_data_dir=True,
    ),
    Flag(
        ("--store",),
        {
            "metavar": "URL",
            "type": types.redis_url,
            "default": None,
            "help": "keep points in Redis, shared with every server that names it:"
            " redis-cluster://host:port[,host:port...] (a Redis Cluster) or redis://host:port"
            " (one Redis); not with --data-dir; retention rules only expire its points,"
            " without downsampling (docs/redis.md)",
        },
        group=_STORAGE_GROUP,
    ),
    Flag(
        ("--redis-wait-replicas",),
        {
            "type": types.non_negative_int,
            "default": None,
            "metavar": "N",
            "help": "acknowledge puts only once N replicas of every Redis master written to"
            " have them (WAIT); fewer in time fails the puts (default: 0)",
        },
        group=_STORAGE_GROUP,
        needs_store=True,
    ),
    Flag(
        ("--redis-timeout",),
        {
            "type": types.positive_seconds,
            "default": None,
            "metavar": "SECONDS",
            "help": "time a Redis operation may take, retries included, before its puts fail"
            f" (default: {DEFAULT_REDIS_TIMEOUT:g})",
        },
        group=_STORAGE_GROUP,
        needs_store=True,
    ),
    Flag(
        ("--retention",),
        {
            "type": types.retention,
            "default": None,
            "metavar": "RULE",
            "help": "tiers for every key that no --storage-schemas section matches, in carbon's"
            " form: step:span,... finest first, such as 10s:1d,1m:30d,1h:2y",
        },
        group=RETENTION_GROUP,
    ),
    Flag(
        ("--storage-schemas",),
        {
            "type": Path,
            "default": None,
            "metavar": "FILE",
            "help": "carbon's storage-schemas.conf: [sections] with pattern = and retentions =,"
            " first match wins",
        },
        group=RETENTION_GROUP,
    ),
    Flag(
        ("--storage-aggregation",),
        {
            "type": Path,
            "default": None,
            "metavar": "FILE",
            "help": "carbon's storage-aggregation.conf: pattern =, aggregationMethod = and"
            " xFilesFactor = per [section] (default: average, 0.5)",
        },
        group=RETENTION_GROUP,
    ),
    Flag(
        ("--shutdown-grace",),
        {
            "type": types.non_negative_seconds,
            "default": DEFAULT_SHUTDOWN_GRACE,
            "metavar": "SECONDS",
            "help": "on Ctrl-C or SIGTERM, time given to connections to finish the commands they"
            " sent (default: %(default)s)",
        },
    ),
    Flag(
        ("--graphite-port",),
        {
            "type": types.port,
            "default": None,
            "metavar": "PORT",
            "help": "also take Graphite plaintext lines ('path value timestamp') on this TCP port"
            " of the same host, into the same store; 2003 is the usual one (default: off)",
        },
    ),
    Flag(
        ("--http-port",),
        {
            "type": types.port,
            "default": None,
            "metavar": "PORT",
            "help": "also serve the HTTP API, /metrics and the dashboard on this port of the same"
            " host; 0 picks a free one (default: off)",
        },
    ),
    Flag(
        ("--http-max-connections",),
        {
            "type": types.positive_int,
            "default": DEFAULT_HTTP_MAX_CONNECTIONS,
            "metavar": "N",
            "help": "HTTP connections served at once; one more is answered 503 and closed"
            " (default: %(default)s)",
        },
        group=_HTTP_GROUP,
    ),
    Flag(
        ("--http-header-timeout",),
        {
            "type": types.positive_seconds,
            "default": DEFAULT_HEADER_TIMEOUT,
            "metavar": "SECONDS",
            "help": "time an HTTP connection has to send a request's headers, from its start or"
            " its previous answer; idle keep-alive connections close after it too"
            " (default: %(default)s)",
        },
        group=_HTTP_GROUP,
    ),
    Flag(
        ("--http-max-body-bytes",),
        {
            "type": types.non_negative_int,
            "default": DEFAULT_MAX_BODY_BYTES,
            "metavar": "BYTES",
            "help": "largest HTTP request body; a longer one gets 413 (default: %(default)s)",
        },
        group=_HTTP_GROUP,
    ),
    Flag(
        ("--http-body-budget-bytes",),
        {
            "type": types.non_negative_int,
            "default": DEFAULT_BODY_BUDGET_BYTES,
            "metavar": "BYTES",
            "help": "bytes of HTTP request bodies held at once over all connections; a body that"
            " would pass it gets 503 at once (default: %(default)s)",
        },
        group=_HTTP_GROUP,
    ),
    Flag(
        ("--http-body-timeout",),
        {
            "type": types.positive_seconds,
            "default": DEFAULT_BODY_TIMEOUT,
            "metavar": "SECONDS",
            "help": "time an HTTP request has to send its whole body once its headers are in;"
            " then 408 (default: %(default)s)",
        },
        group=_HTTP_GROUP,
    ),
    Flag(
        ("--http-max-points",),
        {
            "type": types.positive_int,
            "default": DEFAULT_MAX_POINTS,
            "metavar": "N",
            "help": "most points in one /api/v1/series answer; more is a 400 that asks for"
            " max_points or a narrower range (default: %(default)s)",
        },
        group=_HTTP_GROUP,
    ),
    Flag(
        ("--tls-cert",),
        {
            "metavar": "FILE",
            "default": None,
            "help": "speak TLS on every port with this PEM certificate (chain); needs --tls-key",
        },
        group=_SECURITY_GROUP,
    ),
    Flag(
        ("--tls-key",),
        {
            "metavar": "FILE",
            "default": None,
            "help": "the PEM private key of --tls-cert",
        },
        group=_SECURITY_GROUP,
    ),
    Flag(
        ("--tls-client-ca",),
        {
            "metavar": "FILE",
            "default": None,
            "help": "require client certificates signed by these PEM CAs (mutual TLS)",
        },
        group=_SECURITY_GROUP,
    ),
    Flag(
        ("--tls-handshake-timeout",),
        {
            "type": types.positive_seconds,
            "default": DEFAULT_TLS_HANDSHAKE_TIMEOUT,
            "metavar": "SECONDS",
            "help": "time a new connection has to finish its TLS handshake (default: %(default)s)",
        },
        group=_SECURITY_GROUP,
    ),
    Flag(
        ("--insecure-open",),
        {
            "action": "store_true",
            "help": "listen on a non-loopback --host with neither tokens nor client certificates:"
            " anyone who reaches the port can read and overwrite every point",
        },
        group=_SECURITY_GROUP,
    ),
    Flag(
        ("--auth-token-file",),
        {
            "metavar": "FILE",
            "default": None,
            "help": "require a token from FILE (one per line, optionally name:token; mode 600):"
            " 'auth <token>' on the main port, 'Authorization: Bearer <token>' over HTTP",
        },
        group=_SECURITY_GROUP,
    ),
    Flag(
        ("--auth-timeout",),
        {
            "type": types.positive_seconds,
            "default": DEFAULT_AUTH_TIMEOUT,
            "metavar": "SECONDS",
            "help": "with --auth-token-file, close a connection that has not authenticated"
            " in this time (default: %(default)s)",
        },
        group=_SECURITY_GROUP,
    ),
    Flag(
        ("--max-unauthenticated-connections",),
        {
            "type": types.positive_int,
            "default": DEFAULT_MAX_UNAUTHENTICATED,
            "metavar": "N",
            "help": "with --auth-token-file, connections not yet authenticated served at once,"
            " on the main port and on the HTTP port each; more are closed at once"
            " (default: %(default)s)",
        },
        group=_SECURITY_GROUP,
    ),
    Flag(
        ("--http-metrics-open",),
        {
            "action": "store_true",
            "help": "with --auth-token-file, serve /metrics without a token (/healthz always is)",
        },
        group=_SECURITY_GROUP,
    ),
    Flag(
        ("--graphite-allow-unauthenticated",),
        {
            "action": "store_true",
            "help": "with --auth-token-file, let the Graphite port take points without client"
            " certificates (its lines have no place for a token)",
        },
        group=_SECURITY_GROUP,
    ),
    Flag(
        ("--log-level",),
        {
            "default": "info",
            "choices": ["debug", "info", "warning", "error"],
            "help": "how much the server logs to stderr (default: %(default)s)",
        },
    ),
)


def add_serve_verb(verbs: argparse._SubParsersAction[Any]) -> None:
    """Add ``serve`` and its flags to the command's verbs."""
    parser = verbs.add_parser(
        "serve",
        help="run the server until Ctrl-C or SIGTERM",
        description="Run the metrics server until Ctrl-C or SIGTERM (then exit 0).",
    )
    groups: dict[str | None, Any] = {None: parser}
    for flag in SERVE_FLAGS:
        if flag.group not in groups:
            groups[flag.group] = parser.add_argument_group(flag.group)
        groups[flag.group].add_argument(*flag.names, **flag.options)
    parser.set_defaults(run=_serve, check=_check_storage_flags, serve_parser=parser)


def _check_storage_flags(args: argparse.Namespace) -> None:
    # Storage options without their storage would be ignored, and an
    # operator would believe the points are kept as they said.
    if args.data_dir is not None and args.store is not None:
        args.serve_parser.error("--store and --data-dir exclude each other: points live in one")
    if args.store is None:
        given = [
            flag.names[0]
            for flag in SERVE_FLAGS
            if flag.needs_store and getattr(args, _dest(flag)) is not None
        ]
        if given:
            args.serve_parser.error(f"{', '.join(given)} needs --store URL")
    if args.data_dir is not None:
        return
    given = [
        flag.names[0]
        for flag in SERVE_FLAGS
        if flag.needs_data_dir and getattr(args, _dest(flag)) is not None
    ]
    if given:
        args.serve_parser.error(f"{', '.join(given)} needs --data-dir DIR")


def _dest(flag: Flag) -> str:
    return flag.names[0].lstrip("-").replace("-", "_")


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """The :class:`ServerConfig` that ``serve``'s parsed flags describe."""
    storage: Storage = MemoryStorage()
    if args.store is not None:
        storage = RedisStorage(
            args.store,
            wait_replicas=args.redis_wait_replicas or 0,
            **({} if args.redis_timeout is None else {"timeout": args.redis_timeout}),
        )
    if args.data_dir is not None:
        storage = DataDirStorage(
            args.data_dir,
            fsync=args.fsync or FsyncPolicy.EVERYSEC,
            repair=bool(args.repair),
            compact_min_bytes=(
                DEFAULT_COMPACT_MIN_BYTES
                if args.compact_min_bytes is None
                else args.compact_min_bytes
            ),
        )
    return ServerConfig(
        host=args.host,
        port=args.port,
        graphite_port=args.graphite_port,
        http_port=args.http_port,
        limits=Limits(
            max_line_length=args.max_line_length,
            max_connections=args.max_connections,
            idle_timeout=args.idle_timeout,
            max_buffered_answer=args.max_buffered_answer,
        ),
        http_limits=HttpLimits(
            max_connections=args.http_max_connections,
            header_timeout=args.http_header_timeout,
            max_body_bytes=args.http_max_body_bytes,
            body_budget_bytes=args.http_body_budget_bytes,
            body_timeout=args.http_body_timeout,
            max_points=args.http_max_points,
        ),
        storage=storage,
        retention=retention_from_args(args),
        answer_cache_bytes=args.answer_cache_bytes,
        answer_copy_budget_bytes=args.answer_copy_budget_bytes,
        shutdown_grace=args.shutdown_grace,
        log_level=args.log_level,
        tls=_tls_from_args(args),
        auth=_auth_from_args(args),
        insecure_open=args.insecure_open,
    )


def _auth_from_args(args: argparse.Namespace) -> AuthSettings | None:
    if args.auth_token_file is None:
        given = [
            flag
            for flag, changed in (
                ("--auth-timeout", args.auth_timeout != DEFAULT_AUTH_TIMEOUT),
                (
                    "--max-unauthenticated-connections",
                    args.max_unauthenticated_connections != DEFAULT_MAX_UNAUTHENTICATED,
                ),
                ("--http-metrics-open", args.http_metrics_open),
                ("--graphite-allow-unauthenticated", args.graphite_allow_unauthenticated),
            )
            if changed
        ]
        if given:
            raise ValueError(f"{', '.join(given)} needs --auth-token-file FILE")
        return None
    return AuthSettings(
        args.auth_token_file,
        metrics_open=args.http_metrics_open,
        graphite_allow_unauthenticated=args.graphite_allow_unauthenticated,
        max_unauthenticated=args.max_unauthenticated_connections,
        auth_timeout=args.auth_timeout,
    )


def _tls_from_args(args: argparse.Namespace) -> TlsSettings | None:
    if args.tls_cert is None and args.tls_key is None:
        if args.tls_client_ca is not None:
            raise ValueError("--tls-client-ca needs --tls-cert and --tls-key")
        if args.tls_handshake_timeout != DEFAULT_TLS_HANDSHAKE_TIMEOUT:
            raise ValueError("--tls-handshake-timeout needs --tls-cert and --tls-key")
        return None
    if args.tls_cert is None or args.tls_key is None:
        raise ValueError("--tls-cert and --tls-key go together")
    return TlsSettings(
        args.tls_cert,
        args.tls_key,
        client_ca=args.tls_client_ca,
        handshake_timeout=args.tls_handshake_timeout,
    )


def retention_from_args(args: argparse.Namespace) -> RetentionRules:
    """The rules of ``--retention`` and carbon's files; raises :exc:`RetentionError`
    (a :exc:`ValueError`) naming the file and line of a mistake."""
    schemas = () if args.storage_schemas is None else load_storage_schemas(args.storage_schemas)
    if args.storage_aggregation is None:
        aggregations: tuple[AggregationRule, ...] = ()
    else:
        if args.retention is None and args.storage_schemas is None:
            raise RetentionError("--storage-aggregation needs --retention or --storage-schemas")
        aggregations = load_storage_aggregation(args.storage_aggregation)
    return RetentionRules(schemas, aggregations, args.retention)


def _serve(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
    except ValueError as exc:
        # Settings that are each fine but not together (a body budget below the body limit).
        args.serve_parser.error(str(exc))
    assert config.log_level is not None  # the flag has a default
    configure_logging(config.log_level)
    tuned = keep_freed_memory()
    if tuned is not None:
        logger.debug("%s", tuned)
    try:
        trio.run(serve_until_signal, config, _print_banner)
    except (DataDirError, ProtectedModeError, StoreUnavailableError) as exc:
        fail(str(exc))
    except HttpListenError as exc:
        fail(f"cannot listen for HTTP on {config.host}:{config.http_port}: {exc.strerror}")
    except GraphiteListenError as exc:
        fail(f"cannot listen for Graphite on {config.host}:{config.graphite_port}: {exc.strerror}")
    except ListenError as exc:
        fail(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}")
    except OSError as exc:
        # Not the port: a file, a directory, the terminal. Named as it is.
        where = f" ({exc.filename})" if exc.filename else ""
        fail(f"cannot start the server: {exc.strerror or exc}{where}")
    else:
        return 0
    return 1


def _print_banner(info: ServerInfo) -> None:
    try:
        _write_banner(info)
    except OSError as exc:
        # Nobody reads stdout (`serve | true`, a closed terminal): the
        # server is listening all the same, and must go on serving.
        logger.warning("cannot print the start-up banner: %s; serving on", exc.strerror or exc)
        silence_stdout()


def _write_banner(info: ServerInfo) -> None:
    storage = info.config.storage
    if isinstance(storage, DataDirStorage):
        where = f"data in {storage.directory}"
    elif isinstance(storage, RedisStorage):
        where = f"data in {storage.describe()}"
    else:
        where = "memory only"
    graphite = "" if info.graphite_port is None else f", Graphite on port {info.graphite_port}"
    print(
        f"{PROG} {__version__} listening on {info.host}:{info.port}{graphite}"
        f" ({where}; Ctrl-C stops)",
        flush=True,
    )
    if info.http_port is not None:
        print(f"dashboard on http://{_url_host(info.host)}:{info.http_port}/", flush=True)
    print(describe_protection(info.config), flush=True)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
