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
    Storage,
    Store,
)
from ..transport import Limits
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
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"{what}{port} is outside 0..65535")

    return check


def _non_negative_int(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{attribute.name} must not be negative, not {value!r}")


def _non_negative_seconds(
    instance: object, attribute: attrs.Attribute[float], value: float
) -> None:
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"{attribute.name} must not be negative, not {value!r}")


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
      :class:`~trio_metrics.DataDirStorage` or
      :class:`~trio_metrics.ExistingStore`.
    - ``answer_cache_bytes``: memory for encoded ``get`` answers (0: off).
    - ``answer_copy_budget_bytes``: memory for the copies of points that
      every connection's ``get`` holds at once (16 bytes a point); past it a
      ``get`` waits for another to finish (0: no bound).
    - ``shutdown_grace``: seconds a stopping server gives its connections.
    - ``log_level``: applied by :func:`~trio_metrics.run_server` and the CLI
      when set; :func:`~trio_metrics.serve` leaves logging to its caller.

    Raises :exc:`ValueError` for a value out of range.
    """

    host: str | None = DEFAULT_HOST
    port: int = attrs.field(default=DEFAULT_PORT, validator=_port("port "))
    graphite_port: int | None = attrs.field(
        default=None, validator=_port("Graphite port ", optional=True)
    )
    http_port: int | None = attrs.field(default=None, validator=_port("HTTP port ", optional=True))
    limits: Limits = attrs.field(factory=Limits)
    http_limits: HttpLimits = attrs.field(factory=HttpLimits)
    storage: Storage = attrs.field(factory=MemoryStorage)
    answer_cache_bytes: int = attrs.field(
        default=DEFAULT_ANSWER_CACHE_BYTES, validator=_non_negative_int
    )
    answer_copy_budget_bytes: int = attrs.field(
        default=DEFAULT_COPY_BUDGET_BYTES, validator=_non_negative_int
    )
    shutdown_grace: float = attrs.field(
        default=DEFAULT_SHUTDOWN_GRACE, validator=_non_negative_seconds
    )
    log_level: LogLevel | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.in_(get_args(LogLevel)))
    )

    @classmethod
    def from_options(
        cls,
        host: str | None = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        store: Store | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        fsync: FsyncPolicy | str = FsyncPolicy.EVERYSEC,
        repair: bool = False,
        compact_min_bytes: int = DEFAULT_COMPACT_MIN_BYTES,
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
        ``store`` and ``data_dir`` exclude each other (:exc:`ValueError`).
        """
        if data_dir is not None and store is not None:
            raise ValueError("give either store or data_dir, not both")
        storage: Storage
        if data_dir is not None:
            storage = DataDirStorage(
                data_dir,
                fsync=FsyncPolicy(fsync),
                repair=repair,
                compact_min_bytes=compact_min_bytes,
            )
        elif store is not None:
            storage = ExistingStore(store)
        else:
            storage = MemoryStorage()
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


class ServeOptions(TypedDict, total=False):
    """The keywords of ``serve(host, port, **options)``: see :meth:`ServerConfig.from_options`."""

    store: Store | None
    data_dir: str | os.PathLike[str] | None
    fsync: FsyncPolicy | str
    repair: bool
    compact_min_bytes: int
    max_line_length: int
    max_connections: int
    idle_timeout: float | None
    max_buffered_answer: int
    answer_cache_bytes: int
    shutdown_grace: float
    graphite_port: int | None
    http_port: int | None
