"""Which store a server runs on, as settings, and opening it.

A server's storage is one of :class:`MemoryStorage`, :class:`DataDirStorage`
or :class:`ExistingStore`. Each is a frozen, validated value; :func:`open_storage`
turns it into a running store for the length of an ``async with`` block. A
new kind of storage is one more class here and one more branch in
:func:`open_storage`; the server only sees the :class:`OpenedStorage` it yields.
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
    "DataDirStorage",
    "ExistingStore",
    "MemoryStorage",
    "OpenedStorage",
    "Storage",
    "open_storage",
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
Storage: TypeAlias = MemoryStorage | DataDirStorage | ExistingStore


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
    roll-up runs in the background for the length of the block. Rules for
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
