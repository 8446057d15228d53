"""Everything a server needs, as one validated value: :class:`ServerConfig`.

The CLI builds one from its flags; :func:`~trio_metrics.serve` takes it
whole. A new setting is one field here, one flag in the CLI and one use.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any, Final, Literal, TypedDict, get_args

import attrs

from ..http import HttpLimits
from ..storage import (
    DEFAULT_COMPACT_MIN_BYTES,
    DEFAULT_COPY_BUDGET_BYTES,
    DataDirStorage,
    ExistingStore,
    FsyncPolicy,
    MemoryStorage,
    RedisStorage,
    RetentionRules,
    Storage,
    Store,
)
from ..transport import AuthSettings, Limits, TlsSettings
from ._answer_cache import DEFAULT_ANSWER_CACHE_BYTES

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DEFAULT_SHUTDOWN_GRACE",
    "LogLevel",
    "ServeOptions",
    "ServerConfig",
]

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8888
#: Seconds a stopping server gives its connections to finish what they read.
DEFAULT_SHUTDOWN_GRACE: Final = 5.0

#: How much a server started by :func:`~trio_metrics.run_server` or the CLI logs.
LogLevel = Literal["debug", "info", "warning", "error"]


def _port(what: str, *, optional: bool = False) -> Callable[[object, Any, Any], None]:
    def check(instance: object, attribute: attrs.Attribute[Any], port: object) -> None:
        if port is None and optional:
            return
        if isinstance(port, bool) or not isinstance(port, int):
            raise TypeError(f"{what.strip()} must be a whole number, not {port!r}")
        if not 0 <= port <= 65535:
            raise ValueError(f"{what}{port} is outside 0..65535")

    return check


def _host(instance: object, attribute: attrs.Attribute[Any], host: object) -> None:
    if host is None:
        return
    if not isinstance(host, str):
        raise TypeError(f"host must be a string or None (every address), not {host!r}")
    if not host.strip():
        raise ValueError("host must not be empty (None listens on every address)")


def _non_negative_int(instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{attribute.name} must be a whole number of bytes, not {value!r}")
    if value < 0:
        raise ValueError(f"{attribute.name} must not be negative, not {value!r}")


def _non_negative_seconds(
    instance: object, attribute: attrs.Attribute[float], value: object
) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{attribute.name} must be a number of seconds, not {value!r}")
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"{attribute.name} must not be negative, not {value!r}")


def _instance_of(*kinds: type, what: str) -> Callable[[object, Any, Any], None]:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, kinds):
            raise TypeError(f"{attribute.name} must be {what}, not {value!r}")

    return check


def _log_level(instance: object, attribute: attrs.Attribute[Any], level: object) -> None:
    if level is not None and level not in get_args(LogLevel):
        choices = ", ".join(get_args(LogLevel))
        raise ValueError(f"log_level must be one of {choices} (or None), not {level!r}")


@attrs.frozen(kw_only=True)
class ServerConfig:
    """All the settings of one server, validated once, at construction.

    - ``host``, ``port``: the main protocol's listener (``host=None``: every
      local address; ``port=0``: a free port).
    - ``graphite_port``: also take Graphite plaintext lines on this port of
      the same host (``None``: off).
    - ``http_port``: also serve the HTTP API, ``/metrics`` and the
      dashboard on this port of the first listening address (``None``: off).
    - ``limits``: what each connection may use (:class:`~trio_metrics.Limits`).
    - ``http_limits``: what HTTP clients may use
      (:class:`~trio_metrics.http.HttpLimits`).
    - ``storage``: :class:`~trio_metrics.MemoryStorage` (the default),
      :class:`~trio_metrics.DataDirStorage`,
      :class:`~trio_metrics.storage.RedisStorage` (Redis Cluster or one
      Redis, shared with other servers) or :class:`~trio_metrics.ExistingStore`.
    - ``retention``: how long each key's points are kept, and at which steps
      (:class:`~trio_metrics.storage.RetentionRules`; the default keeps every
      point). Not with a store of your own (``ExistingStore``); with Redis,
      points expire at their longest span without downsampling.
    - ``answer_cache_bytes``: memory for encoded ``get`` answers (0: off).
    - ``answer_copy_budget_bytes``: memory for the copies of points that
      every connection's ``get`` holds at once (16 bytes a point); past it a
      ``get`` waits for another to finish (0: no bound).
    - ``shutdown_grace``: seconds a stopping server gives its connections.
    - ``tls``: :class:`~trio_metrics.TlsSettings` to speak TLS on every
      listener (main, Graphite, HTTP), or ``None`` (the default) for plaintext.
    - ``auth``: :class:`~trio_metrics.AuthSettings` to require a token on
      the main port (``auth <token>``) and the HTTP API (``Authorization:
      Bearer``), or ``None`` (the default) for no authentication. With a
      Graphite port, it also needs ``tls.client_ca`` (mutual TLS) or
      ``auth.graphite_allow_unauthenticated``.
    - ``insecure_open``: listen on a non-loopback address without tokens or
      client certificates; without it such a start raises
      :exc:`~trio_metrics.ProtectedModeError` (protected mode).
    - ``log_level``: applied by :func:`~trio_metrics.run_server` and the CLI
      when set; :func:`~trio_metrics.serve` leaves logging to its caller.

    Raises :exc:`ValueError` for a value out of range and :exc:`TypeError`
    for a value of the wrong kind.
    """

    host: str | None = attrs.field(default=DEFAULT_HOST, validator=_host)
    port: int = attrs.field(default=DEFAULT_PORT, validator=_port("port "))
    graphite_port: int | None = attrs.field(
        default=None, validator=_port("Graphite port ", optional=True)
    )
    http_port: int | None = attrs.field(default=None, validator=_port("HTTP port ", optional=True))
    limits: Limits = attrs.field(factory=Limits, validator=_instance_of(Limits, what="a Limits"))
    http_limits: HttpLimits = attrs.field(
        factory=HttpLimits, validator=_instance_of(HttpLimits, what="an HttpLimits")
    )
    storage: Storage = attrs.field(
        factory=MemoryStorage,
        validator=_instance_of(
            MemoryStorage,
            DataDirStorage,
            RedisStorage,
            ExistingStore,
            what="MemoryStorage(), DataDirStorage(directory), RedisStorage(url)"
            " or ExistingStore(store)",
        ),
    )
    retention: RetentionRules = attrs.field(
        factory=RetentionRules, validator=_instance_of(RetentionRules, what="a RetentionRules")
    )
    answer_cache_bytes: int = attrs.field(
        default=DEFAULT_ANSWER_CACHE_BYTES, validator=_non_negative_int
    )
    answer_copy_budget_bytes: int = attrs.field(
        default=DEFAULT_COPY_BUDGET_BYTES, validator=_non_negative_int
    )
    shutdown_grace: float = attrs.field(
        default=DEFAULT_SHUTDOWN_GRACE, validator=_non_negative_seconds
    )
    log_level: LogLevel | None = attrs.field(default=None, validator=_log_level)
    tls: TlsSettings | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(_instance_of(TlsSettings, what="a TlsSettings")),
    )
    auth: AuthSettings | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(_instance_of(AuthSettings, what="an AuthSettings")),
    )

    insecure_open: bool = attrs.field(default=False, validator=_instance_of(bool, what="a bool"))

    def __attrs_post_init__(self) -> None:
        auth = self.auth
        if (
            auth is not None
            and self.graphite_port is not None
            and not auth.graphite_allow_unauthenticated
            and (self.tls is None or self.tls.client_ca is None)
        ):
            # Graphite lines have no place for a token: an open Graphite port
            # would let anyone write what the token keeps from them.
            raise ValueError(
                "with auth on, the Graphite port takes no token: require client certificates"
                " (--tls-client-ca) or say --graphite-allow-unauthenticated"
            )
        if not self.retention.keeps_everything and isinstance(self.storage, ExistingStore):
            raise ValueError(
                "retention rules work with the memory storage or a data directory:"
                " a store of your own keeps its points as it likes"
            )

    @classmethod
    def from_options(
        cls,
        host: str | None = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        store: Store | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        fsync: FsyncPolicy | str | None = None,
        repair: bool | None = None,
        compact_min_bytes: int | None = None,
        max_line_length: int = Limits().max_line_length,
        max_connections: int = Limits().max_connections,
        idle_timeout: float | None = None,
        max_buffered_answer: int = Limits().max_buffered_answer,
        answer_cache_bytes: int = DEFAULT_ANSWER_CACHE_BYTES,
        shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE,
        graphite_port: int | None = None,
        http_port: int | None = None,
    ) -> ServerConfig:
        """A config from the flat keywords of ``serve(host, port, **options)``.

        These keywords are the ones :func:`~trio_metrics.serve` has always
        taken; newer settings are fields of :class:`ServerConfig` only.
        ``store`` and ``data_dir`` exclude each other, and ``fsync``,
        ``repair`` and ``compact_min_bytes`` need ``data_dir``
        (:exc:`ValueError`, as the CLI's flags).
        """
        storage = _storage_from_options(store, data_dir, fsync, repair, compact_min_bytes)
        return cls(
            host=host,
            port=port,
            graphite_port=graphite_port,
            http_port=http_port,
            limits=Limits(
                max_line_length=max_line_length,
                max_connections=max_connections,
                idle_timeout=idle_timeout,
                max_buffered_answer=max_buffered_answer,
            ),
            storage=storage,
            answer_cache_bytes=answer_cache_bytes,
            shutdown_grace=shutdown_grace,
        )


def _storage_from_options(
    store: Store | None,
    data_dir: str | os.PathLike[str] | None,
    fsync: FsyncPolicy | str | None,
    repair: bool | None,
    compact_min_bytes: int | None,
) -> Storage:
    if data_dir is not None and store is not None:
        raise ValueError("give either store or data_dir, not both")
    if data_dir is None:
        # Ignored without a data directory, and an operator would believe
        # the points are kept.
        given = [
            name
            for name, value in (
                ("fsync", fsync),
                ("repair", repair),
                ("compact_min_bytes", compact_min_bytes),
            )
            if value is not None
        ]
        if given:
            raise ValueError(f"{', '.join(given)} needs data_dir")
        return MemoryStorage() if store is None else ExistingStore(store)
    return DataDirStorage(
        data_dir,
        fsync=FsyncPolicy.EVERYSEC if fsync is None else FsyncPolicy(fsync),
        repair=bool(repair),
        compact_min_bytes=DEFAULT_COMPACT_MIN_BYTES
        if compact_min_bytes is None
        else compact_min_bytes,
    )


class ServeOptions(TypedDict, total=False):
    """The keywords of ``serve(host, port, **options)``: see :meth:`ServerConfig.from_options`."""

    store: Store | None
    data_dir: str | os.PathLike[str] | None
    fsync: FsyncPolicy | str | None
    repair: bool | None
    compact_min_bytes: int | None
    max_line_length: int
    max_connections: int
    idle_timeout: float | None
    max_buffered_answer: int
    answer_cache_bytes: int
    shutdown_grace: float
    graphite_port: int | None
    http_port: int | None
