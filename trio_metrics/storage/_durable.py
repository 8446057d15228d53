"""A store that keeps its points on disk: a write-ahead log, snapshots, compaction.

:func:`open_durable_store` recovers a data directory (see
:mod:`trio_metrics.data_dir`) into memory and yields a :class:`DurableStore`.
Every batch of puts is queued for the log; once it is written to the log
file (``never``, ``everysec``) or written and fsynced (``always``) it is
stored in memory, where reads see it, and ``put_batch`` returns, so the
server sends the ``ok`` answers. One writer task does all log I/O in a
worker thread, so the event loop never waits on the disk, and it writes
everything queued since its last write at once: a single write, and under
``always`` a single fsync, covers the batches of every connection that came
in meanwhile (group commit).

Compaction runs beside it when the log outgrows the live data: the writer
closes the current segment at a point between two batches and starts the
next; the compaction task then copies the store key by key (the other
tasks run between keys) into ``snapshot.N.tmp``, fsyncs, renames it into
place, fsyncs the directory and deletes the older files. The copy may hold
points that came after the switch; replaying segment N over it stores them
again with the same values, which changes nothing (a put only ever sets a
value), so the snapshot plus segment N always give the live data.
"""

from __future__ import annotations

import enum
import errno
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import BinaryIO

import attrs
import trio

from ._data_dir import (
    DataDirError,
    DataDirLock,
    Recovery,
    fsync_directory,
    log_path,
    recover,
    snapshot_path,
)
from ._log_format import LOG_MAGIC, SNAPSHOT_MAGIC, encode_batch, encode_series, encode_trailer
from ._store import MetricStore, Series, StoreUnavailableError

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
# A snapshot is written in pieces of about this many points, one thread call each.
_SNAPSHOT_PIECE_POINTS = 1 << 16
_COMPACTION_RETRY = 60.0
# How long closing may take to write and fsync what is queued.
_CLOSE_TIMEOUT = 30.0


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
class _Commit:
    """The batches queued between two writes, and how their write went."""

    done: trio.Event = attrs.field(factory=trio.Event)
    error: BaseException | None = None


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
    """A :class:`~trio_metrics.store.Store` backed by a data directory.

    Made by :func:`open_durable_store`, which runs its writer and compaction
    tasks. Reads are served from memory (:attr:`memory`).
    """

    def __init__(
        self,
        directory: Path,
        recovery: Recovery,
        policy: FsyncPolicy,
        compact_min_bytes: int,
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
        self._segment = recovery.segment
        # Unbuffered: bytes of a failed write must not sit in a buffer that
        # a later flush or close would still put in the file.
        self._file: BinaryIO | None = open(  # noqa: SIM115
            log_path(directory, self._segment), "ab", buffering=0
        )
        self._pending: list[bytes] = []
        # The same batches as columns, stored in memory once they are written,
        # so that reads show only what the log holds.
        self._pending_columns: list[_Columns] = []
        self._in_flight: bytes | None = None
        # The commit whose batches are being written; closing finishes it.
        self._in_flight_commit: _Commit | None = None
        self._commit = _Commit()
        self._wakeup = trio.Event()
        self._dirty = False
        self._last_sync = time.monotonic()
        self._fsync_seconds = 0.0
        self._error: BaseException | None = None
        self._closed = False
        self._rotation_wanted: trio.Event | None = None
        self._rotated: tuple[int, list[str]] | None = None
        self._compaction_wanted = trio.Event()
        self._compacting = False
        self._compaction_lock = trio.Lock()
        #: Called with each compaction step's name once it is done (tests
        #: copy the directory there to check that a crash at that step recovers).
        self.compaction_step_hook: Callable[[str], None] | None = None

    # -- the Store interface -------------------------------------------------

    async def put_batch(
        self, keys: Sequence[str], values: Sequence[float], timestamps: Sequence[int]
    ) -> None:
        """Store the points; return once the log holds them as the policy promises.

        Raises :exc:`StoreUnavailableError` if the log cannot be written
        (the error is kept: every later put fails the same way, and the
        batch is not stored) or the store is closed. Cancelled while
        waiting, the batch is still logged and stored; only the caller
        stops waiting.
        """
        if self._error is not None or self._closed:
            raise self._unavailable()
        if not keys and not values and not timestamps:
            return
        # Raises ValueError for columns the log could not hold (before
        # anything is queued): unequal lengths, a key with a newline.
        self._pending.append(encode_batch(keys, values, timestamps))
        self._pending_columns.append((keys, values, timestamps))
        self.figures.log_records += 1
        commit = self._commit
        self._wakeup.set()
        await commit.done.wait()
        if commit.error is not None:
            raise self._unavailable() from commit.error

    async def query(self, key: str) -> Iterable[Series]:
        """:class:`Store` interface: read from memory."""
        return await self.memory.query(key)

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
            deadline = (
                self._last_sync + _EVERYSEC
                if self._dirty and self.policy is FsyncPolicy.EVERYSEC
                else float("inf")
            )
            with trio.move_on_at(deadline):
                await self._wakeup.wait()
            self._wakeup = trio.Event()
            if self._error is not None:
                return
            if self._rotation_wanted is not None:
                await self._rotate()
            else:
                await self._write_pending()
            overdue = self._dirty and time.monotonic() - self._last_sync >= _EVERYSEC
            if overdue and self.policy is FsyncPolicy.EVERYSEC:
                await self._run_file_work(self._fsync)
            self._maybe_want_compaction()

    async def _write_pending(self) -> None:
        while self._pending and self._error is None:
            data = b"".join(self._pending)
            columns = self._pending_columns
            self._pending, self._pending_columns = [], []
            commit, self._commit = self._commit, _Commit()
            # Until _write clears it, closing writes it (to_thread ignores
            # cancellation once the thread runs, but not before).
            self._in_flight, self._in_flight_commit = data, commit
            try:
                await trio.to_thread.run_sync(self._write, data, self.policy is FsyncPolicy.ALWAYS)
            except OSError as exc:
                self._fail(exc, commit)
                return
            self._in_flight_commit = None
            self._store_in_memory(columns)
            commit.done.set()

    def _store_in_memory(self, batches: list[_Columns]) -> None:
        put_columns = self.memory.put_columns
        for keys, values, timestamps in batches:
            put_columns(keys, values, timestamps)

    def _write(self, data: bytes, sync: bool) -> None:
        file = self._file
        assert file is not None
        view = memoryview(data)
        while view:
            # An unbuffered write may take only part of the data.
            written = file.write(view)
            view = view[written or 0 :]
        self._in_flight = None
        self.figures.log_writes += 1
        self.figures.log_bytes_written += len(data)
        self.figures.log_bytes += len(data)
        self._dirty = True
        if sync:
            self._fsync()

    def _fsync(self) -> None:
        file = self._file
        assert file is not None
        started = time.monotonic()
        os.fsync(file.fileno())
        self._last_sync = time.monotonic()
        self.figures.fsyncs += 1
        self._fsync_seconds += self._last_sync - started
        self.figures.fsync_ms = round(self._fsync_seconds * 1000)
        self._dirty = False

    async def _run_file_work(self, work: Callable[[], None]) -> None:
        try:
            await trio.to_thread.run_sync(work)
        except OSError as exc:
            self._fail(exc, self._commit)

    def _fail(self, exc: OSError, commit: _Commit) -> None:
        logger.error(
            "cannot write the log in %s: %s; no more points are accepted until restart",
            self.directory,
            exc,
        )
        self._error = exc
        self._in_flight_commit = None
        for each in (commit, self._commit):
            each.error = exc
            each.done.set()
        if self._rotation_wanted is not None:
            self._rotation_wanted.set()  # a compaction waiting for it gives up

    # -- compaction ----------------------------------------------------------

    def _maybe_want_compaction(self) -> None:
        figures = self.figures
        if self._compacting or self._error is not None:
            return
        if figures.log_bytes > max(self.compact_min_bytes, 2 * figures.snapshot_bytes):
            self._compaction_wanted.set()

    async def _rotate(self) -> None:
        """Close the segment between two batches and start the next one."""
        wanted = self._rotation_wanted
        assert wanted is not None
        self._rotation_wanted = None
        data = b"".join(self._pending)
        columns = self._pending_columns
        self._pending, self._pending_columns = [], []
        commit, self._commit = self._commit, _Commit()
        number = self._segment + 1
        self._in_flight, self._in_flight_commit = data, commit
        try:
            await trio.to_thread.run_sync(self._switch_segment, data, number)
        except _NewSegmentError as exc:
            # The batches are written and fsynced in the old segment; only
            # the new one could not be made: appending goes on in the old
            # one, and the compaction gives up.
            logger.error("cannot start log segment %d: %s", number, exc.__cause__)
            self._in_flight_commit = None
            self._store_in_memory(columns)
        except OSError as exc:
            self._fail(exc, commit)
            wanted.set()
            return
        else:
            self._in_flight_commit = None
            self._store_in_memory(columns)
            # Taken in the same step: every key in memory now has all its
            # points up to here in this segment or before it.
            self._rotated = (number, self.memory.keys())
        commit.done.set()
        wanted.set()

    def _switch_segment(self, data: bytes, number: int) -> None:
        # An OSError from here on means the batches are not safe.
        self._write(data, sync=True)
        old = self._file
        assert old is not None
        path = log_path(self.directory, number)
        try:
            new = open(path, "xb", buffering=0)  # noqa: SIM115
            try:
                new.write(LOG_MAGIC)
                os.fsync(new.fileno())
                fsync_directory(self.directory)
            except BaseException:
                new.close()
                path.unlink()
                raise
        except OSError as exc:
            raise _NewSegmentError from exc
        old.close()
        self._file = new
        self._segment = number
        self.figures.log_bytes = len(LOG_MAGIC)
        self._step("rotated")

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
        snapshot cannot be written (the log and the old snapshot stay).
        """
        async with self._compaction_lock:
            await self._compact()

    async def _compact(self) -> None:
        started = time.monotonic()
        if self._error is not None:
            raise OSError(f"the log failed: {self._error}")
        wanted = self._rotation_wanted = trio.Event()
        self._wakeup.set()
        await wanted.wait()
        if self._rotated is None:
            raise OSError("the log could not be switched to a new segment")
        number, keys = self._rotated
        self._rotated = None
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

    async def _write_snapshot(self, snapshot: BinaryIO, keys: list[str]) -> int:
        pieces: list[bytes] = [SNAPSHOT_MAGIC]
        points = 0
        written_keys = 0
        in_piece = 0
        size = 0
        for key in keys:
            # Each key is copied in one step, so each is a consistent snapshot.
            for series in self.memory.iter_series(key):
                stamps, numbers = series.timestamps, series.values
                pieces.append(encode_series(key, stamps, numbers))  # type: ignore[arg-type]
                points += len(stamps)
                in_piece += len(stamps)
                written_keys += 1
            if in_piece >= _SNAPSHOT_PIECE_POINTS:
                size += await trio.to_thread.run_sync(_write_all, snapshot, pieces)
                pieces, in_piece = [], 0
        pieces.append(encode_trailer(written_keys, points))
        size += await trio.to_thread.run_sync(_write_all, snapshot, pieces)
        await trio.to_thread.run_sync(_sync_and_close, snapshot)
        return size

    def _step(self, name: str) -> None:
        if self.compaction_step_hook is not None:
            self.compaction_step_hook(name)

    # -- closing -------------------------------------------------------------

    def _close_files(self) -> None:
        file = self._file
        if file is None:
            return
        try:
            leftover = (self._in_flight or b"") + b"".join(self._pending)
            self._pending = []
            if self._error is None:
                if leftover:
                    self._write(leftover, sync=False)
                self._fsync()
        finally:
            self._file = None
            file.close()

    async def _close(self) -> None:
        self._closed = True
        # Batches still waiting (a caller outside the server may be) end
        # with the outcome of the closing write.
        waiting = [c for c in (self._in_flight_commit, self._commit) if c is not None]
        try:
            await trio.to_thread.run_sync(self._close_files)
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
        logger.info(
            "log closed and fsynced: %d records, %d bytes written in this run",
            self.figures.log_records,
            self.figures.log_bytes_written,
        )

    async def keys_with_prefix(self, prefix: str, after: str, limit: int) -> list[str]:
        """:class:`Store` interface: read from memory."""
        return await self.memory.keys_with_prefix(prefix, after, limit)


class _NewSegmentError(OSError):
    """The next log segment could not be made (the old one is safe)."""


def _log_bytes_on_disk(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.glob("log.[0-9]*[0-9]"))


def _make_and_lock(path: Path) -> DataDirLock:
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "it exists and is not a directory")
    path.mkdir(parents=True, exist_ok=True)
    return DataDirLock(path)


def _create(path: Path) -> BinaryIO:
    return open(path, "wb")


def _write_all(file: BinaryIO, pieces: list[bytes]) -> int:
    data = b"".join(pieces)
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
) -> AsyncIterator[DurableStore]:
    """Lock and recover ``directory`` (created if missing); yield its store.

    The writer and compaction tasks run until the block ends; then
    everything queued is written and fsynced, even if the block is left by
    cancellation, and the lock is released. Raises
    :exc:`~trio_metrics.data_dir.DataDirLockedError` when another server
    holds the directory, :exc:`~trio_metrics.data_dir.DamagedFileError`
    for damage recovery may not repair by itself, and :exc:`OSError`.
    """
    policy = FsyncPolicy(fsync)
    if compact_min_bytes < 0:
        raise ValueError("compact_min_bytes must not be negative")
    path = Path(directory)
    try:
        lock = await trio.to_thread.run_sync(_make_and_lock, path)
    except OSError as exc:
        raise DataDirError(f"cannot use data directory {path}: {exc.strerror or exc}") from exc
    try:
        try:
            recovery = await trio.to_thread.run_sync(lambda: recover(path, repair=repair))
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
        store = DurableStore(path, recovery, policy, compact_min_bytes)
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
