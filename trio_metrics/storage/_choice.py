"""Which store a server runs on, as settings, and opening it.

A server's storage is one of :class:`MemoryStorage`, :class:`DataDirStorage`,
:class:`RedisStorage` or :class:`ExistingStore`. Each is a frozen, validated
value; :func:`open_storage` turns it into a running store for the length of
an ``async with`` block. A new kind of storage is one more class here and one
more branch in :func:`open_storage`; the server only sees the :class:`OpenedStorage` it yields.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeAlias

import attrs
import trio

from ._durable import DEFAULT_COMPACT_MIN_BYTES, FsyncPolicy, open_durable_store
from ._retention import RetentionRules
from ._store import MetricStore, Store
from ._tiers import RollUpFigures, TieredStore, roll_up_forever

__all__ = [
    "DEFAULT_REDIS_CONNECTIONS",
    "DEFAULT_REDIS_TIMEOUT",
    "REDIS_RETENTION_LIMIT",
    "DataDirStorage",
    "ExistingStore",
    "MemoryStorage",
    "OpenedStorage",
    "RedisStorage",
    "Storage",
    "open_storage",
    "parse_redis_url",
]


@attrs.frozen
class MemoryStorage:
    """Points in a new in-memory :class:`MetricStore`, lost when the server stops."""


def _non_negative(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{attribute.name} must not be negative, not {value!r}")


def _to_path(value: str | os.PathLike[str]) -> Path:
    # Checked before the conversion: Path("") is ".", the current directory.
    if not os.fspath(value).strip():
        raise ValueError("the data directory must not be empty")
    return Path(value)


@attrs.frozen
class DataDirStorage:
    """Points kept in a data directory: a write-ahead log and snapshots.

    ``fsync`` is ``always``, ``everysec`` or ``never`` (a
    :class:`FsyncPolicy` or its value); ``repair`` lets recovery cut a
    damaged file; the log is compacted into a snapshot once it is larger
    than ``compact_min_bytes`` and twice the snapshot (docs/durability.md).
    Raises :exc:`ValueError` for a bad value.
    """

    directory: Path = attrs.field(converter=_to_path)
    fsync: FsyncPolicy = attrs.field(default=FsyncPolicy.EVERYSEC, converter=FsyncPolicy)
    repair: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    compact_min_bytes: int = attrs.field(default=DEFAULT_COMPACT_MIN_BYTES, validator=_non_negative)


#: Seconds a Redis operation may take, retries included.
DEFAULT_REDIS_TIMEOUT = 5.0

#: Connections to Redis a server may hold at once (to each master of a cluster).
DEFAULT_REDIS_CONNECTIONS = 64

#: The schemes of :class:`RedisStorage`'s URL.
REDIS_SCHEMES = ("redis-cluster", "redis")


def parse_redis_url(url: str) -> tuple[bool, tuple[tuple[str, int], ...]]:
    """``redis-cluster://host:port[,host:port...]`` or ``redis://host:port``:
    whether it is a cluster, and its nodes. Raises :exc:`ValueError` naming the mistake."""
    if not isinstance(url, str):
        raise TypeError(f"a Redis URL must be a string, not {url!r}")
    scheme, separator, rest = url.partition("://")
    if not separator or scheme not in REDIS_SCHEMES:
        raise ValueError(
            f"bad store URL {url!r}: use redis-cluster://host:port[,host:port...]"
            " or redis://host:port"
        )
    cluster = scheme == "redis-cluster"
    nodes = []
    for node in rest.split(","):
        host, colon, port = node.strip().rpartition(":")
        host = host.strip("[]")
        if not colon or not host or not port.isdigit() or not 0 < int(port) <= 65535:
            raise ValueError(f"bad store URL {url!r}: {node.strip()!r} is not host:port")
        nodes.append((host, int(port)))
    if not cluster and len(nodes) != 1:
        raise ValueError(
            f"bad store URL {url!r}: redis:// names one server (a cluster: redis-cluster://)"
        )
    return cluster, tuple(nodes)


def _positive(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name} must be a whole number from 1, not {value!r}")


def _positive_seconds(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{attribute.name} must be a positive number of seconds, not {value!r}")


@attrs.frozen
class RedisStorage:
    """Points in Redis, shared by every server that names it (docs/redis.md).

    ``url`` is ``redis-cluster://host:port[,host:port...]`` (a Redis Cluster:
    any of its nodes) or ``redis://host:port`` (one server).
    ``wait_replicas``: a put is acknowledged only once that many replicas of
    each master written to have it (``WAIT``). ``timeout``: seconds an
    operation may take, retries included, before it fails.
    ``max_connections``: the connection pool's size (per master of a
    cluster); a request waits for a free connection within ``timeout``.
    Raises :exc:`ValueError` for a bad value.
    """

    url: str = attrs.field()
    wait_replicas: int = attrs.field(default=0, validator=_non_negative)
    timeout: float = attrs.field(default=DEFAULT_REDIS_TIMEOUT, validator=_positive_seconds)
    max_connections: int = attrs.field(default=DEFAULT_REDIS_CONNECTIONS, validator=_positive)

    @url.validator
    def _check_url(self, attribute: attrs.Attribute[str], url: str) -> None:
        parse_redis_url(url)

    @property
    def cluster(self) -> bool:
        """A Redis Cluster (not one server)."""
        return parse_redis_url(self.url)[0]

    @property
    def nodes(self) -> tuple[tuple[str, int], ...]:
        """The nodes the URL names, as ``(host, port)``."""
        return parse_redis_url(self.url)[1]

    def describe(self) -> str:
        """A few words for the banner and the log: the kind and its nodes."""
        kind = "Redis Cluster" if self.cluster else "Redis"
        return f"{kind} {', '.join(f'{host}:{port}' for host, port in self.nodes)}"


@attrs.frozen
class ExistingStore:
    """A store the caller made (any :class:`Store`); the server neither opens nor closes it."""

    store: Store = attrs.field()

    @store.validator
    def _check_store(self, attribute: attrs.Attribute[Store], store: object) -> None:
        missing = [name for name in _STORE_METHODS if not callable(getattr(store, name, None))]
        if missing:
            raise TypeError(f"{store!r} is no Store: it lacks {', '.join(missing)}")


_STORE_METHODS = ("put_batch", "query", "counts", "list_keys")

#: The storage a server can run on.
Storage: TypeAlias = MemoryStorage | DataDirStorage | RedisStorage | ExistingStore


#: What retention rules do with a Redis store, said when such a server starts.
REDIS_RETENTION_LIMIT = (
    "retention rules with Redis only expire points (no downsampling): each key"
    " keeps its points at full precision until its longest archive's span,"
    " then Redis deletes them by its own clock (docs/redis.md)"
)


@attrs.frozen
class OpenedStorage:
    """A running store, and what the server needs to know of it."""

    store: Store
    #: The in-memory store whose changes invalidate cached answers; ``None``
    #: when the store does not report its changes.
    watched: MetricStore | None
    #: More counters for ``stats`` and ``/metrics`` (a data directory's log
    #: figures), or ``None``.
    figures: Callable[[], dict[str, int]] | None
    #: A few words for the start-up log.
    description: str
    #: The in-memory store that reads may copy from directly, within a copy
    #: budget: set for the stores opened here, never for a caller's own
    #: store (whose ``query`` may do more than copy).
    reads: MetricStore | None = None


@asynccontextmanager
async def open_storage(
    storage: Storage,
    retention: RetentionRules | None = None,
    *,
    clock: Callable[[], float] = time.time,
) -> AsyncIterator[OpenedStorage]:
    """Open ``storage`` for the length of the block.

    A data directory is locked and recovered first, and at the end of the
    block (cancellation included) its log is written, fsynced and unlocked:
    see :func:`open_durable_store`, whose errors
    (:exc:`~trio_metrics.DataDirError`, :exc:`OSError`) this raises.

    With ``retention`` rules, the memory store (alone, or recovered from
    and logged to the data directory) is a :class:`TieredStore` whose
    roll-up runs in the background for the length of the block. A Redis
    store gives its hashes an expiry instead (no downsampling). Rules for
    a caller's own store are a :exc:`ValueError`.

    ``clock`` gives the unix time that the rules go by (the server's wall
    clock): tests and benchmarks drive it, to see days of retention pass
    in seconds.
    """
    tiered = _tiered_store(storage, retention, clock)
    if tiered is not None and isinstance(storage, MemoryStorage):
        async with _rolling_up(tiered, None) as figures:
            yield OpenedStorage(
                tiered,
                tiered,
                lambda: tiered.figures(figures),
                f"memory, {_describe_rules(tiered.rules)}",
                reads=tiered,
            )
    elif isinstance(storage, DataDirStorage):
        async with open_durable_store(
            storage.directory,
            fsync=storage.fsync,
            repair=storage.repair,
            compact_min_bytes=storage.compact_min_bytes,
            memory=tiered,
        ) as durable:
            description = f"{storage.directory}, fsync {storage.fsync.value}"
            if tiered is None:
                yield OpenedStorage(
                    durable,
                    durable.memory,
                    durable.figures_as_dict,
                    description,
                    reads=durable.memory,
                )
            else:
                async with _rolling_up(tiered, durable.roll_up) as figures:
                    yield OpenedStorage(
                        durable,
                        durable.memory,
                        lambda: {**durable.figures_as_dict(), **tiered.figures(figures)},
                        f"{description}, {_describe_rules(tiered.rules)}",
                        reads=durable.memory,
                    )
    elif isinstance(storage, RedisStorage):
        # Imported here: only a server on Redis loads its client library.
        from ._redis import open_redis_store

        async with open_redis_store(
            storage.nodes,
            cluster=storage.cluster,
            wait_replicas=storage.wait_replicas,
            operation_timeout=storage.timeout,
            max_connections=storage.max_connections,
            retention=retention,
            clock=clock,
        ) as redis:
            description = storage.describe()
            if retention is not None and not retention.keeps_everything:
                description += f", {_describe_rules(retention)}, expiry only"
            # No watched store: another server may change the points at any
            # time, so no answer may be cached here.
            yield OpenedStorage(redis, None, redis.figures_as_dict, description)
    elif isinstance(storage, ExistingStore):
        store = storage.store
        watched = store if isinstance(store, MetricStore) else None
        yield OpenedStorage(store, watched, None, type(store).__name__)
    elif isinstance(storage, MemoryStorage):
        # The warning that the points live in memory only is the server's to
        # log once it listens: a start that fails prints its error alone.
        memory = MetricStore()
        yield OpenedStorage(memory, memory, None, "MetricStore", reads=memory)
    else:
        # A new kind of storage must get its own branch, never fall back.
        raise TypeError(f"unknown storage {storage!r}")


def _tiered_store(
    storage: Storage, retention: RetentionRules | None, clock: Callable[[], float]
) -> TieredStore | None:
    if retention is None or retention.keeps_everything:
        return None
    if isinstance(storage, ExistingStore):
        raise ValueError(
            "retention rules work with the memory store or a data directory:"
            " a store of your own keeps its points as it likes"
        )
    if isinstance(storage, RedisStorage):
        # Mapped onto Redis' own expiry by the Redis store: no tiers here.
        return None
    return TieredStore(retention, clock=clock)


@asynccontextmanager
async def _rolling_up(
    tiered: TieredStore, log: Callable[[list[tuple[str, list[int]]]], Awaitable[None]] | None
) -> AsyncIterator[RollUpFigures]:
    """Run the roll-up task for the length of the block."""
    figures = RollUpFigures()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(functools.partial(roll_up_forever, tiered, figures, log=log))
        yield figures
        nursery.cancel_scope.cancel()


def _describe_rules(retention: RetentionRules) -> str:
    parts = []
    if retention.schemas:
        parts.append(f"{len(retention.schemas)} schema rules")
    if retention.default is not None:
        parts.append(f"default {retention.default}")
    return ", ".join(parts)
