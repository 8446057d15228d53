"""A store that keeps its points on disk: a write-ahead log, snapshots, compaction.

:func:`open_durable_store` recovers a data directory (see
:mod:`trio_metrics.storage._data_dir`) into memory and yields a
:class:`DurableStore`. Every batch of puts is queued for the log; once it is
written to the log file (``never``, ``everysec``) or written and fsynced
(``always``) it is stored in memory, where reads see it, and ``put_batch``
returns, so the server sends the ``ok`` answers. One writer task writes
everything queued since its last write at once: a single write, and under
``always`` a single fsync, covers the batches of every connection that came
in meanwhile (group commit).

The store holds these rules and the trio tasks and does no file work on the
event loop. The log's file is a :class:`~trio_metrics.storage.LogFile`,
whose blocking methods the writer calls in a worker thread, one call per
step; a test can hand the store one that fails.

Compaction runs beside it when the log outgrows the live data: the writer
closes the current segment at a point between two batches and starts the
next; the compaction task then copies the store key by key into
``snapshot.N.tmp`` (the other tasks run between pieces of about a MiB),
fsyncs, renames it into place, fsyncs the directory and deletes the older
files. The copy may hold points that came after the switch; replaying
segment N over it stores them again with the same values, which changes
nothing (a put only ever sets a value), so the snapshot plus segment N
always give the live data.
"""

from __future__ import annotations

import enum
import errno
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import BinaryIO, TypeVarTuple

import attrs
import trio

from ._data_dir import (
    DataDirError,
    DataDirLock,
    Recovery,
    fsync_directory,
    recover,
    snapshot_path,
    tier_state_record,
)
from ._log_file import LogFile, NewSegmentError
from ._log_format import (
    LOG_MAGIC,
    SNAPSHOT_PIECE_BYTES,
    encode_batch,
    encode_deletion,
    encode_roll_up,
    snapshot_pieces,
)
from ._store import MetricStore, Series, StoreUnavailableError, TierRange
from ._tiers import TieredStore

__all__ = [
    "DEFAULT_COMPACT_MIN_BYTES",
    "DurableStore",
    "FsyncPolicy",
    "open_durable_store",
]

logger = logging.getLogger("trio_metrics.durability")

#: The log is compacted once it is larger than this and than twice the snapshot.
DEFAULT_COMPACT_MIN_BYTES = 64 * 1024 * 1024
_EVERYSEC = 1.0
_COMPACTION_RETRY = 60.0
# How long closing may take to write and fsync what is queued.
_CLOSE_TIMEOUT = 30.0

_Ts = TypeVarTuple("_Ts")


class FsyncPolicy(enum.Enum):
    """When the log is fsynced, and so what a crash of the machine can lose.

    A crash of the server process alone loses nothing acknowledged under
    any policy: every ``ok`` follows the write to the log file.
    """

    #: Fsync before the ``ok``: nothing acknowledged is lost.
    ALWAYS = "always"
    #: Fsync once a second: a machine crash loses about a second.
    EVERYSEC = "everysec"
    #: Leave it to the operating system (Linux: up to ~30 s).
    NEVER = "never"


_Columns = tuple[Sequence[str], Sequence[float], Sequence[int]]


@attrs.define
class _Deletion:
    """Keys to remove once the log holds their delete record, and how many were stored."""

    keys: Sequence[str]
    removed: int = 0


@attrs.define
class _RollUp:
    """A key's new retention floors, applied once the log holds the record."""

    key: str
    floors: Sequence[int]


@attrs.define
class _Commit:
    """Batches that go to the log in one write, and how that write went."""

    records: list[bytes] = attrs.field(factory=list)
    #: The same batches as columns (or deletes), applied in memory in
    #: order once the log holds them, so that reads show only what the log holds.
    batches: list[_Columns | _Deletion | _RollUp] = attrs.field(factory=list)
    done: trio.Event = attrs.field(factory=trio.Event)
    error: BaseException | None = None

    def add(self, keys: Sequence[str], values: Sequence[float], timestamps: Sequence[int]) -> None:
        # Raises ValueError for columns the log could not hold (before
        # anything is queued): unequal lengths, a key with a newline.
        self.records.append(encode_batch(keys, values, timestamps))
        self.batches.append((keys, values, timestamps))

    def add_deletion(self, keys: Sequence[str]) -> _Deletion:
        # Raises ValueError for keys the log could not hold (nothing queued).
        self.records.append(encode_deletion(keys))
        deletion = _Deletion(keys)
        self.batches.append(deletion)
        return deletion

    def add_roll_up(self, key: str, floors: Sequence[int]) -> None:
        self.records.append(encode_roll_up(key, floors))
        self.batches.append(_RollUp(key, floors))

    def data(self) -> bytes:
        return b"".join(self.records)


@attrs.define
class _Rotation:
    """A compaction's request that the writer start the next segment, and the outcome."""

    done: trio.Event = attrs.field(factory=trio.Event)
    #: The new segment's number and the keys in memory as it started; None
    #: if it could not be started.
    started: tuple[int, list[str]] | None = None


@attrs.define
class DurabilityFigures:
    """Counters of the log and compaction, for ``stats`` and ``/metrics``."""

    log_records: int = 0
    log_bytes_written: int = 0
    log_writes: int = 0
    fsyncs: int = 0
    #: Time spent in fsync, in total.
    fsync_ms: int = 0
    compactions: int = 0
    compaction_failures: int = 0
    last_compaction_ms: int = 0
    #: Bytes of the segments since the snapshot, and of the snapshot.
    log_bytes: int = 0
    snapshot_bytes: int = 0
    recovery_ms: int = 0
    recovered_points: int = 0


class DurableStore:
    """A :class:`~trio_metrics.storage.Store` backed by a data directory.

    Made by :func:`open_durable_store`, which runs its writer and compaction
    tasks. Reads are served from memory (:attr:`memory`). The store decides
    what is written when and what is acknowledged; ``log_file`` does the
    file work, each call in a worker thread.
    """

    def __init__(
        self,
        directory: Path,
        recovery: Recovery,
        policy: FsyncPolicy,
        compact_min_bytes: int,
        log_file: LogFile,
    ) -> None:
        self.directory = directory
        self.memory: MetricStore = recovery.store
        self.policy = policy
        self.compact_min_bytes = compact_min_bytes
        self.recovery = recovery
        self.figures = DurabilityFigures(
            log_bytes=recovery.log_bytes,
            snapshot_bytes=recovery.snapshot_bytes,
            recovery_ms=round(recovery.seconds * 1000),
            recovered_points=len(recovery.store),
        )
        #: Bytes per piece of a snapshot written by a compaction (other tasks
        #: run between pieces).
        self.snapshot_piece_bytes = SNAPSHOT_PIECE_BYTES
        #: Called with each compaction step's name once it is done (tests
        #: copy the directory there to check that a crash at that step recovers).
        self.compaction_step_hook: Callable[[str], None] | None = None
        self._log = log_file
        # Batches waiting for the writer, and the ones it took but has not
        # yet written: closing writes those.
        self._queued = _Commit()
        self._writing: _Commit | None = None
        self._wakeup = trio.Event()
        # Written since the last fsync, and when that was, on trio's clock
        # (which the fsync deadline is on; it is not time.monotonic()).
        self._unsynced = False
        self._last_sync = trio.current_time()
        self._error: BaseException | None = None
        self._closed = False
        self._rotation: _Rotation | None = None
        self._compaction_wanted = trio.Event()
        self._compacting = False
        self._compaction_lock = trio.Lock()
        # The log position of the last record applied in memory: the
        # segment, and how many of its records (a snapshot's tier states
        # name it, so that replay skips what a key's copy already holds).
        self._segment = recovery.segment
        self._applied = recovery.applied_in_segment

    # -- the Store interface -------------------------------------------------

    async def put_batch(
        self, keys: Sequence[str], values: Sequence[float], timestamps: Sequence[int]
    ) -> None:
        """Store the points; return once the log holds them as the policy promises.

        Raises :exc:`StoreUnavailableError` if the log cannot be written
        (the error is kept: every later put fails the same way, and the
        batch is not stored) or the store is closed, and :exc:`ValueError`
        for columns the log cannot hold (nothing is queued then). Cancelled
        while waiting, the batch is still logged and stored; only the
        caller stops waiting.
        """
        if self._error is not None or self._closed:
            raise self._unavailable()
        # Retention rules drop points past their span here, so that the
        # log holds only what is stored (replay then needs no clock).
        keys, values, timestamps = self.memory.admit(keys, values, timestamps)
        if not keys and not values and not timestamps:
            return
        commit = self._queued
        commit.add(keys, values, timestamps)
        self.figures.log_records += 1
        self._wakeup.set()
        await commit.done.wait()
        if commit.error is not None:
            raise self._unavailable() from commit.error

    async def query(self, key: str) -> Iterable[Series]:
        """:class:`Store` interface: read from memory."""
        return await self.memory.query(key)

    async def query_range(self, key: str, start: int, end: int) -> Iterable[Series]:
        """:class:`Store` interface: read from memory."""
        return await self.memory.query_range(key, start, end)

    async def query_tier(self, key: str, start: int, end: int) -> TierRange:
        """Read from memory: the finest retention tier that covers the range."""
        return await self.memory.query_tier(key, start, end)

    async def delete(self, keys: Sequence[str]) -> int:
        """Remove ``keys``; return once the log holds the delete as the policy promises.

        Returns how many of the keys were stored when the delete was
        applied, in log order with the puts around it. Errors and
        cancellation as for :meth:`put_batch`: raises
        :exc:`StoreUnavailableError` if the log fails (nothing is removed)
        or the store is closed; cancelled while waiting, the delete still
        happens.
        """
        if self._error is not None or self._closed:
            raise self._unavailable()
        if not keys:
            return 0
        commit = self._queued
        deletion = commit.add_deletion(keys)
        self.figures.log_records += 1
        self._wakeup.set()
        await commit.done.wait()
        if commit.error is not None:
            raise self._unavailable() from commit.error
        return deletion.removed

    async def counts(self) -> tuple[int, int]:
        """:class:`Store` interface: read from memory."""
        return await self.memory.counts()

    async def list_keys(self) -> list[str]:
        """:class:`Store` interface: read from memory."""
        return self.memory.keys()

    def figures_as_dict(self) -> dict[str, int]:
        """The log's counters by name (``log_records``, ``fsyncs``, ``compactions`` ...)."""
        figures: dict[str, int] = attrs.asdict(self.figures)
        return figures

    def _unavailable(self) -> StoreUnavailableError:
        if self._error is not None:
            return StoreUnavailableError(
                f"the write-ahead log in {self.directory} failed ({self._error}); "
                "points are no longer accepted"
            )
        return StoreUnavailableError("the store is closed")

    # -- the writer ----------------------------------------------------------

    async def _write_forever(self) -> None:
        while True:
            with trio.move_on_at(self._fsync_deadline()):
                await self._wakeup.wait()
            self._wakeup = trio.Event()
            if self._error is not None:
                return
            if self._rotation is not None:
                rotation, self._rotation = self._rotation, None
                await self._rotate(rotation)
            else:
                await self._write_queued()
            if self._fsync_deadline() <= trio.current_time():
                await self._fsync()
            self._maybe_want_compaction()

    def _fsync_deadline(self) -> float:
        if self._unsynced and self.policy is FsyncPolicy.EVERYSEC:
            return self._last_sync + _EVERYSEC
        return math.inf

    async def _write_queued(self) -> None:
        sync = self.policy is FsyncPolicy.ALWAYS
        while self._queued.records and self._error is None:
            commit = self._take_queued()
            try:
                await self._in_thread(_append, self._log, commit.data(), sync)
            except OSError as exc:
                self._fail(exc, commit)
                return
            self._written(commit, synced=sync)

    def _take_queued(self) -> _Commit:
        # Until _written clears it, closing writes it (to_thread ignores
        # cancellation once the thread runs, but not before).
        commit, self._queued = self._queued, _Commit()
        self._writing = commit
        return commit

    async def roll_up(self, due: Sequence[tuple[str, Sequence[int]]]) -> None:
        """Log the keys' new retention floors, then apply them in log order
        (:meth:`TieredStore.roll_key_to`), so that replay rebuilds the same tiers.

        Errors as for :meth:`put_batch`.
        """
        if self._error is not None or self._closed:
            raise self._unavailable()
        if not due:
            return
        commit = self._queued
        for key, floors in due:
            commit.add_roll_up(key, floors)
        self.figures.log_records += len(due)
        self._wakeup.set()
        await commit.done.wait()
        if commit.error is not None:
            raise self._unavailable() from commit.error

    def _written(self, commit: _Commit, *, synced: bool) -> None:
        self._writing = None
        if synced:
            self._synced()
        else:
            self._unsynced = True
        memory = self.memory
        for batch in commit.batches:
            if isinstance(batch, _Deletion):
                batch.removed = memory.delete_keys(batch.keys)
            elif isinstance(batch, _RollUp):
                if isinstance(memory, TieredStore):
                    memory.roll_key_to(batch.key, batch.floors)
            else:
                memory.store_admitted(*batch)
        self._applied += len(commit.batches)
        commit.done.set()

    async def _fsync(self) -> None:
        try:
            await self._in_thread(self._log.fsync)
        except OSError as exc:
            self._fail(exc, self._queued)
            return
        self._synced()

    def _synced(self) -> None:
        self._unsynced = False
        self._last_sync = trio.current_time()

    async def _in_thread(self, work: Callable[[*_Ts], None], *args: *_Ts) -> None:
        try:
            await trio.to_thread.run_sync(work, *args)
        finally:
            # Also after a failure: a write may have succeeded before an
            # fsync failed, and the figures show it.
            self._count_file_work()

    def _count_file_work(self) -> None:
        log, figures = self._log, self.figures
        figures.log_bytes += log.bytes_written - figures.log_bytes_written
        figures.log_bytes_written = log.bytes_written
        figures.log_writes = log.writes
        figures.fsyncs = log.fsyncs
        figures.fsync_ms = round(log.fsync_seconds * 1000)

    def _fail(self, exc: OSError, commit: _Commit) -> None:
        logger.error(
            "cannot write the log in %s: %s; no more points are accepted until restart",
            self.directory,
            exc,
        )
        self._error = exc
        self._writing = None
        for each in (commit, self._queued):
            each.error = exc
            each.done.set()
        if self._rotation is not None:
            self._rotation.done.set()  # a compaction waiting for it gives up

    # -- compaction ----------------------------------------------------------

    def _maybe_want_compaction(self) -> None:
        figures = self.figures
        if self._compacting or self._error is not None:
            return
        if figures.log_bytes > max(self.compact_min_bytes, 2 * figures.snapshot_bytes):
            self._compaction_wanted.set()

    async def _rotate(self, rotation: _Rotation) -> None:
        """Close the segment between two batches and start the next one."""
        commit = self._take_queued()
        number = self._log.segment + 1
        try:
            await self._in_thread(_append_and_switch, self._log, commit.data(), number)
        except NewSegmentError as exc:
            # The batches are written and fsynced in the old segment; only
            # the new one could not be made: appending goes on in the old
            # one, and the compaction gives up.
            logger.error("cannot start log segment %d: %s", number, exc.__cause__)
            self._written(commit, synced=True)
        except OSError as exc:
            self._fail(exc, commit)
            rotation.done.set()
            return
        else:
            self.figures.log_bytes = len(LOG_MAGIC)
            self._step("rotated")
            self._written(commit, synced=True)
            self._segment, self._applied = number, 0
            # Taken in the same step: every key in memory now has all its
            # points up to here in this segment or before it.
            rotation.started = (number, self.memory.keys())
        rotation.done.set()

    async def _compact_forever(self) -> None:
        while True:
            await self._compaction_wanted.wait()
            self._compaction_wanted = trio.Event()
            self._compacting = True
            try:
                await self.compact()
            except OSError as exc:
                self.figures.compaction_failures += 1
                # The segments the failed attempt left all count until the next one.
                self.figures.log_bytes = await trio.to_thread.run_sync(
                    _log_bytes_on_disk, self.directory
                )
                logger.error(
                    "compaction of %s failed: %s; the log goes on growing, retrying in %gs",
                    self.directory,
                    exc,
                    _COMPACTION_RETRY,
                )
                await trio.sleep(_COMPACTION_RETRY)
            finally:
                self._compacting = False

    async def compact(self) -> None:
        """Write a snapshot of the store and drop the log before it.

        Puts and gets are served throughout. Raises :exc:`OSError` if the
        log has failed or the snapshot cannot be written (the log and the
        old snapshot stay). Cancelled, it stops where it is; the data is the
        same whatever step it reached, and a ``.tmp`` file it leaves is
        deleted at the next start.
        """
        async with self._compaction_lock:
            await self._compact()

    async def _compact(self) -> None:
        started = time.monotonic()
        if self._error is not None:
            raise OSError(f"the log failed: {self._error}")
        number, keys = await self._start_next_segment()
        final = snapshot_path(self.directory, number)
        temporary = final.with_name(final.name + ".tmp")
        snapshot = await trio.to_thread.run_sync(_create, temporary)
        try:
            size = await self._write_snapshot(snapshot, keys)
        except BaseException:
            snapshot.close()
            temporary.unlink(missing_ok=True)
            raise
        self._step("snapshot written")
        await trio.to_thread.run_sync(_publish, temporary, final)
        self._step("snapshot renamed")
        await trio.to_thread.run_sync(_drop_before, self.directory, number)
        self._step("old files removed")
        self.figures.snapshot_bytes = size
        self.figures.compactions += 1
        seconds = time.monotonic() - started
        self.figures.last_compaction_ms = round(seconds * 1000)
        logger.info(
            "compacted %s: snapshot %s of %d bytes in %.2fs",
            self.directory,
            final.name,
            size,
            seconds,
        )

    async def _start_next_segment(self) -> tuple[int, list[str]]:
        rotation = self._rotation = _Rotation()
        self._wakeup.set()
        await rotation.done.wait()
        if rotation.started is None:
            raise OSError("the log could not be switched to a new segment")
        return rotation.started

    async def _write_snapshot(self, snapshot: BinaryIO, keys: list[str]) -> int:
        """Write the snapshot of ``keys`` in pieces of about a MiB, each from a worker thread.

        Other tasks run between pieces; each key is copied in one step (the
        pieces are made lazily), so each is a consistent series.
        """
        size = 0
        memory = self.memory
        after_key = blocks_of = None
        if isinstance(memory, TieredStore):
            # The compressed blocks go as they are, in front of the rest of the key.
            series = (each for key in keys for each in memory.iter_uncompressed(key))
            blocks_of = memory.blocks_of

            def after_key(key: str) -> bytes | None:
                # In the same step as the key's copy: the position it reflects.
                return tier_state_record(memory, key, self._segment, self._applied)

        else:
            series = (each for key in keys for each in memory.iter_series(key))
        pieces = snapshot_pieces(series, self.snapshot_piece_bytes, after_key, blocks_of)
        for piece in pieces:
            size += await trio.to_thread.run_sync(_write_all, snapshot, piece)
        await trio.to_thread.run_sync(_sync_and_close, snapshot)
        return size

    def _step(self, name: str) -> None:
        if self.compaction_step_hook is not None:
            self.compaction_step_hook(name)

    # -- closing -------------------------------------------------------------

    async def _close(self) -> None:
        self._closed = True
        # Batches still waiting (a caller outside the server may be) end
        # with the outcome of the closing write.
        waiting = [c for c in (self._writing, self._queued) if c is not None]
        leftover = None if self._error is not None else b"".join(c.data() for c in waiting)
        try:
            await self._in_thread(_write_and_close, self._log, leftover)
        except OSError as exc:
            logger.error("closing the log in %s failed: %s", self.directory, exc)
            for commit in waiting:
                commit.error = exc
            raise
        finally:
            if self._error is not None:
                for commit in waiting:
                    commit.error = commit.error or self._error
            for commit in waiting:
                commit.done.set()
        if self._error is not None:
            logger.warning(
                "log closed after it failed (%s): %d records, %d bytes written in this run;"
                " the puts refused since were not kept",
                self._error,
                self.figures.log_records,
                self.figures.log_bytes_written,
            )
            return
        logger.info(
            "log closed and fsynced: %d records, %d bytes written in this run",
            self.figures.log_records,
            self.figures.log_bytes_written,
        )

    async def keys_with_prefix(self, prefix: str, after: str, limit: int) -> list[str]:
        """:class:`Store` interface: read from memory."""
        return await self.memory.keys_with_prefix(prefix, after, limit)


# -- blocking work, each function one call in a worker thread -----------------


def _append(log: LogFile, data: bytes, sync: bool) -> None:
    log.write(data)
    if sync:
        log.fsync()


def _append_and_switch(log: LogFile, data: bytes, number: int) -> None:
    # An OSError other than NewSegmentError means the batches are not safe.
    log.write(data)
    log.switch_segment(number)


def _write_and_close(log: LogFile, leftover: bytes | None) -> None:
    """Write and fsync ``leftover`` (None: the log failed, write nothing), then close."""
    try:
        if leftover is not None:
            if leftover:
                log.write(leftover)
            log.fsync()
    finally:
        log.close()


def _log_bytes_on_disk(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.glob("log.[0-9]*[0-9]"))


def _make_and_lock(path: Path) -> DataDirLock:
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "it exists and is not a directory")
    path.mkdir(parents=True, exist_ok=True)
    return DataDirLock(path)


def _create(path: Path) -> BinaryIO:
    return open(path, "wb")


def _write_all(file: BinaryIO, parts: list[bytes]) -> int:
    # Joined here, in the worker thread, rather than on the event loop.
    data = b"".join(parts)
    file.write(data)
    return len(data)


def _sync_and_close(file: BinaryIO) -> None:
    try:
        file.flush()
        os.fsync(file.fileno())
    finally:
        file.close()


def _publish(temporary: Path, final: Path) -> None:
    os.replace(temporary, final)
    fsync_directory(final.parent)


def _drop_before(directory: Path, number: int) -> None:
    for entry in directory.iterdir():
        name = entry.name
        for kind in ("log.", "snapshot."):
            number_part = name[len(kind) :] if name.startswith(kind) else ""
            if number_part.isdigit() and int(number_part) < number:
                entry.unlink()
    fsync_directory(directory)


@asynccontextmanager
async def open_durable_store(
    directory: str | os.PathLike[str],
    *,
    fsync: FsyncPolicy | str = FsyncPolicy.EVERYSEC,
    repair: bool = False,
    compact_min_bytes: int = DEFAULT_COMPACT_MIN_BYTES,
    log_file_factory: Callable[[Path, int], LogFile] = LogFile,
    memory: MetricStore | None = None,
) -> AsyncIterator[DurableStore]:
    """Lock and recover ``directory`` (created if missing); yield its store.

    The writer and compaction tasks run until the block ends; then
    everything queued is written and fsynced, even if the block is left by
    cancellation, and the lock is released. Raises
    :exc:`~trio_metrics.storage.DataDirLockedError` when another server
    holds the directory, :exc:`~trio_metrics.storage.DamagedFileError`
    for damage recovery may not repair by itself, :exc:`DataDirError` when
    the directory cannot be used or read, and :exc:`OSError`.

    ``log_file_factory(directory, segment)`` opens the log's file, in a
    worker thread, once recovery is done; tests give a
    :class:`~trio_metrics.storage.LogFile` subclass whose methods fail.
    ``memory`` is the empty in-memory store to recover into (a
    :class:`TieredStore` for retention rules; default a new :class:`MetricStore`).
    """
    policy = FsyncPolicy(fsync)
    if compact_min_bytes < 0:
        raise ValueError("compact_min_bytes must not be negative")
    path = Path(directory)
    lock = await _lock(path)
    try:
        recovery = await _recover(path, repair, policy, memory)
        log_file = await trio.to_thread.run_sync(log_file_factory, path, recovery.segment)
        store = DurableStore(path, recovery, policy, compact_min_bytes, log_file)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(store._write_forever)
                nursery.start_soon(store._compact_forever)
                try:
                    yield store
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(_CLOSE_TIMEOUT):
                await store._close()
    finally:
        lock.release()


async def _lock(path: Path) -> DataDirLock:
    try:
        return await trio.to_thread.run_sync(_make_and_lock, path)
    except OSError as exc:
        raise DataDirError(f"cannot use data directory {path}: {exc.strerror or exc}") from exc


async def _recover(
    path: Path, repair: bool, policy: FsyncPolicy, memory: MetricStore | None
) -> Recovery:
    try:
        recovery = await trio.to_thread.run_sync(lambda: recover(path, repair=repair, store=memory))
    except OSError as exc:
        raise DataDirError(
            f"cannot recover data directory {path}: {exc.strerror or exc}"
            + (f" ({exc.filename})" if exc.filename else "")
        ) from exc
    logger.info(
        "recovered %s in %.2fs: %d keys, %d points (snapshot %s, %d log records, "
        "%d torn bytes dropped); fsync %s",
        path,
        recovery.seconds,
        len(recovery.store.keys()),
        len(recovery.store),
        "none" if recovery.snapshot is None else f"{recovery.snapshot:08d}",
        recovery.records,
        recovery.torn_bytes_dropped,
        policy.value,
    )
    return recovery
