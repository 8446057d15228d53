"""A data directory on disk: its lock, its files, and recovery at start-up.

Layout (formats in :mod:`trio_metrics.storage._log_format`)::

    LOCK                 advisory lock (flock) held by the one server using it
    snapshot.NNNNNNNN    the store as of the start of log segment NNNNNNNN
    log.NNNNNNNN         write-ahead log segments, replayed in number order

Snapshot N, if present, holds everything in segments before N, so recovery
loads the newest snapshot and replays segments N, N+1, ... A compaction
writes ``snapshot.N.tmp``, fsyncs it, renames it into place and fsyncs the
directory before it removes the older files; leftovers of an interrupted
compaction are removed here. Everything in this module is blocking file
work, meant to run in a worker thread.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import shutil
import time
from array import array
from collections.abc import Callable
from pathlib import Path

import attrs

from ._blocks import Block
from ._log_format import (
    FILE_HEADER_SIZE,
    LOG_MAGIC,
    SNAPSHOT_MAGIC,
    BlockRecord,
    Damage,
    FormatError,
    RollUpRecord,
    Scan,
    SeriesRecord,
    decode_block,
    decode_log_record,
    decode_series,
    decode_tier_state,
    decode_trailer,
    encode_tier_state,
    is_log_record,
    is_snapshot_record,
    scan_records,
    snapshot_pieces,
)
from ._store import MetricStore
from ._tiers import TieredStore

__all__ = [
    "DamagedFileError",
    "DataDirError",
    "DataDirLock",
    "DataDirLockedError",
    "Recovery",
    "fsync_directory",
    "log_path",
    "recover",
    "snapshot_path",
    "write_snapshot_file",
]

logger = logging.getLogger("trio_metrics.durability")

_NAME = re.compile(r"(log|snapshot)\.([0-9]{8})")
_PROGRESS_EVERY = 1.0


class DataDirError(Exception):
    """The data directory cannot be used; the message says why and what to do."""


class DataDirLockedError(DataDirError):
    """Another process holds the data directory's lock."""


class DamagedFileError(DataDirError):
    """A file holds a bad record before its end: damage, not a torn write."""

    def __init__(self, path: Path, offset: int, reason: str) -> None:
        self.path = path
        self.offset = offset
        self.reason = reason
        super().__init__(
            f"{path} is damaged at byte {offset} ({reason}); refusing to start. "
            "Start with --repair to keep a copy of the file and cut it at that byte "
            "(the points after it are lost)."
        )


def log_path(directory: Path, number: int) -> Path:
    """The path of log segment ``number``."""
    return directory / f"log.{number:08d}"


def snapshot_path(directory: Path, number: int) -> Path:
    """The path of the snapshot taken at the start of segment ``number``."""
    return directory / f"snapshot.{number:08d}"


def fsync_directory(directory: Path) -> None:
    """Make renames and new files in ``directory`` survive a crash."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DataDirLock:
    """An exclusive advisory lock on a data directory, held while the server runs."""

    def __init__(self, directory: Path) -> None:
        path = directory / "LOCK"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise DataDirLockedError(
                    f"data directory {directory} is in use by another trio-metrics server "
                    f"(pid {holder}); stop it or choose another --data-dir"
                ) from None
            raise
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            os.close(fd)
            raise
        self._fd: int | None = fd

    def release(self) -> None:
        """Give the lock up (closing its file does); safe to call twice."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@attrs.define
class Recovery:
    """What recovery found and did, and where appending goes on."""

    store: MetricStore
    #: The segment to append to (it exists, with a good end, after recovery).
    segment: int
    #: The newest snapshot's number, or None without one.
    snapshot: int | None
    snapshot_bytes: int = 0
    #: Bytes of the segments replayed.
    log_bytes: int = 0
    records: int = 0
    points_replayed: int = 0
    torn_bytes_dropped: int = 0
    repaired: list[str] = attrs.field(factory=list)
    seconds: float = 0.0
    #: Records of the segment appended to, as replayed (log positions count on from them).
    applied_in_segment: int = 0
    #: For each key the snapshot copied with its tier state: the log position
    #: ``(segment, applied)`` that copy reflects; replay skips those records for it.
    skip: dict[str, tuple[int, int]] = attrs.field(factory=dict)


def _numbered(directory: Path, kind: str) -> list[int]:
    numbers = []
    for entry in directory.iterdir():
        match = _NAME.fullmatch(entry.name)
        if match and match.group(1) == kind:
            numbers.append(int(match.group(2)))
    return sorted(numbers)


def recover(
    directory: Path,
    *,
    repair: bool = False,
    store: MetricStore | None = None,
    progress: Callable[[str], None] | None = None,
) -> Recovery:
    """Load the newest snapshot and replay the log after it into ``store``.

    Creates the directory's first segment when there is none. A torn tail
    of the last segment is cut off (with a warning saying how many bytes);
    a bad record anywhere else raises :exc:`DamagedFileError` unless
    ``repair``, which keeps ``<file>.damaged-<time>`` and cuts the file there.
    ``progress`` is called with a line about every second of long work.
    """
    started = time.monotonic()
    say = progress or logger.info
    store = MetricStore() if store is None else store
    recovery = Recovery(store=store, segment=1, snapshot=None)
    _drop_temporary_files(directory)
    _load_newest_snapshot(directory, recovery, repair, say)
    _drop_files_before(directory, recovery.snapshot)
    segments = _numbered(directory, "log")
    _replay_segments(directory, segments, recovery, repair, say)
    appending_to = log_path(directory, recovery.segment)
    if not segments or appending_to.stat().st_size < FILE_HEADER_SIZE:
        _write_empty_segment(appending_to)
    fsync_directory(directory)
    recovery.seconds = time.monotonic() - started
    return recovery


def _drop_temporary_files(directory: Path) -> None:
    # Files an interrupted compaction or repair was still writing.
    for leftover in directory.glob("*.tmp"):
        leftover.unlink()


def _load_newest_snapshot(
    directory: Path, recovery: Recovery, repair: bool, say: Callable[[str], None]
) -> None:
    """Load the newest usable snapshot; note its number as the first segment to replay.

    With ``repair``, a damaged snapshot is set aside when older files may
    hold its points, and the next older one is tried; when nothing older
    exists, what is readable in it is kept.
    """
    store = recovery.store
    snapshots = _numbered(directory, "snapshot")
    while snapshots:
        newest = snapshots[-1]
        recovery.snapshot = recovery.segment = newest
        path = snapshot_path(directory, newest)
        try:
            recovery.snapshot_bytes = _load_snapshot(path, store, False, recovery, say)
            return
        except DamagedFileError as damage:
            if not repair:
                raise
            older_files = snapshots[:-1] or any(n < newest for n in _numbered(directory, "log"))
            recovery.skip.clear()
            if not older_files:
                # Nothing older holds these points: keep what is readable.
                store.clear()
                recovery.snapshot_bytes = _load_snapshot(path, store, True, recovery, say)
                return
            # Older files may hold what the damaged snapshot should have:
            # set it aside and recover from them instead, losing nothing.
            _set_aside(path, damage, recovery)
            store.clear()
            snapshots.pop()
    recovery.snapshot, recovery.segment = None, 1


def _set_aside(path: Path, damage: DamagedFileError, recovery: Recovery) -> None:
    copy = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
    os.replace(path, copy)
    fsync_directory(path.parent)
    logger.warning(
        "--repair: %s; set it aside as %s and recovered from the older files",
        damage,
        copy.name,
    )
    recovery.repaired.append(f"{path.name} set aside as {copy.name} ({damage.reason})")


def _drop_files_before(directory: Path, snapshot: int | None) -> None:
    # Files an interrupted compaction left behind: the snapshot holds them.
    if snapshot is None:
        return
    for kind, path_of in (("snapshot", snapshot_path), ("log", log_path)):
        for number in _numbered(directory, kind):
            if number < snapshot:
                path_of(directory, number).unlink()


@attrs.define
class _ReplayProgress:
    """Says how far the replay of the log has come, about once a second."""

    say: Callable[[str], None]
    total: int
    #: Bytes of the segments replayed before the current one.
    done_before: int = 0
    last_said: float = attrs.field(factory=time.monotonic)

    def reached(self, offset: int) -> None:
        now = time.monotonic()
        if now - self.last_said >= _PROGRESS_EVERY:
            self.last_said = now
            at = self.done_before + offset
            total = self.total
            self.say(f"recovery: replayed {at} of {total} log bytes ({100 * at // max(total, 1)}%)")


def _replay_segments(
    directory: Path,
    segments: list[int],
    recovery: Recovery,
    repair: bool,
    say: Callable[[str], None],
) -> None:
    progress = _ReplayProgress(say, sum(log_path(directory, n).stat().st_size for n in segments))
    for position, number in enumerate(segments):
        is_last = position == len(segments) - 1
        path = log_path(directory, number)
        progress.done_before += _replay_segment(path, is_last, recovery, repair, progress)
        recovery.segment = number


def _replay_segment(
    path: Path, is_last: bool, recovery: Recovery, repair: bool, progress: _ReplayProgress
) -> int:
    """Replay one segment into the store; return how many of its bytes were read.

    A bad record with nothing readable after it in the last segment is a
    torn tail and is cut off; any other is damage (:func:`_damaged`).
    """
    data = _read_segment(path, is_last, recovery, repair)
    recovery.applied_in_segment = 0
    if data:
        scan = scan_records(data, FILE_HEADER_SIZE, is_log_record)
        if _replay_records(path, scan, recovery, repair, progress) and scan.damage is not None:
            if scan.damage is Damage.TORN_TAIL and is_last:
                _cut_torn_tail(path, len(data), scan.good_end, scan.reason, recovery)
            else:
                _damaged(path, scan.good_end, scan.reason, repair, recovery)
    recovery.log_bytes += path.stat().st_size if path.exists() else 0
    return len(data)


def _read_segment(path: Path, is_last: bool, recovery: Recovery, repair: bool) -> bytes:
    """The segment's bytes, or none if its header is torn or wrong (then mended or refused)."""
    data = path.read_bytes()
    if data[:FILE_HEADER_SIZE] == LOG_MAGIC:
        return data
    if is_last and len(data) < FILE_HEADER_SIZE and LOG_MAGIC.startswith(data):
        # Created, and the crash came before its header was written.
        logger.warning("%s: cut a torn header of %d bytes", path, len(data))
        recovery.torn_bytes_dropped += len(data)
        _cut_at(path, 0)
    else:
        # A segment without its header would be refused again at the next start.
        def mend(path: Path, offset: int) -> None:
            _write_empty_segment(path)

        _damaged(path, 0, "not a trio-metrics log file", repair, recovery, mend)
    return b""


def _replay_records(
    path: Path, scan: Scan, recovery: Recovery, repair: bool, progress: _ReplayProgress
) -> bool:
    """Put the scanned records into the store; False if one could not be decoded."""
    store = recovery.store
    segment = _segment_number(path)
    for offset, payload in zip(scan.offsets, scan.payloads, strict=True):
        try:
            record = decode_log_record(payload)
        except FormatError as exc:
            # A good checksum over a bad record: written wrong, not torn.
            _damaged(path, offset, str(exc), repair, recovery)
            return False
        recovery.applied_in_segment += 1
        position = (segment, recovery.applied_in_segment)
        skip = recovery.skip
        if isinstance(record, list):
            # A delete, in its place among the puts: later puts of its keys stay.
            # A delete that a key's copy already holds is skipped like its puts:
            # replayed, it would remove puts that followed it, which are skipped.
            store.delete_keys([key for key in record if skip.get(key, _NOWHERE) < position])
        elif isinstance(record, RollUpRecord):
            # Skipped too when the key's copy holds it: after a delete and new puts
            # the copy has no floors, and the roll-up would roll points it never saw.
            if isinstance(store, TieredStore) and skip.get(record.key, _NOWHERE) < position:
                store.roll_key_to(record.key, record.floors)
        else:
            keys, values, stamps = record
            if skip:
                # Keys whose snapshot copy already holds this batch: replayed
                # after a roll-up that copy holds, a point below the new
                # floor would overwrite a coarser step instead of joining it.
                kept = [i for i, key in enumerate(keys) if skip.get(key, _NOWHERE) < position]
                if len(kept) < len(keys):
                    keys = [keys[i] for i in kept]
                    values = array("d", (values[i] for i in kept))
                    stamps = array("q", (stamps[i] for i in kept))
            store.store_admitted(keys, values, stamps)
            recovery.points_replayed += len(keys)
        recovery.records += 1
        progress.reached(offset)
    return True


_NOWHERE = (-1, -1)


def _segment_number(path: Path) -> int:
    match = _NAME.fullmatch(path.name)
    assert match is not None, path  # only numbered segments are replayed
    return int(match.group(2))


def _cut_torn_tail(path: Path, size: int, good_end: int, reason: str, recovery: Recovery) -> None:
    dropped = size - good_end
    logger.warning(
        "%s: cut a torn tail of %d bytes at byte %d (%s): a write the crash "
        "interrupted, never acknowledged under --fsync always",
        path,
        dropped,
        good_end,
        reason,
    )
    recovery.torn_bytes_dropped += dropped
    _cut_at(path, good_end)


def _write_empty_segment(path: Path) -> None:
    """Make ``path`` a segment holding only its header, fsynced."""
    with open(path, "wb") as segment:
        segment.write(LOG_MAGIC)
        segment.flush()
        os.fsync(segment.fileno())


def _load_snapshot(
    path: Path,
    store: MetricStore,
    repair: bool,
    recovery: Recovery,
    say: Callable[[str], None],
) -> int:
    data = path.read_bytes()

    def rewrite(path: Path, offset: int) -> None:
        # A snapshot must end with its trailer: write what was good anew.
        write_snapshot_file(path, store, recovery.skip)

    if data[:FILE_HEADER_SIZE] != SNAPSHOT_MAGIC:
        _damaged(path, 0, "not a trio-metrics snapshot file", repair, recovery, rewrite)
        return 0
    scan = scan_records(data, FILE_HEADER_SIZE, is_snapshot_record)
    trailer = None
    series = _SeriesJoiner(store)
    for offset, payload in zip(scan.offsets, scan.payloads, strict=True):
        trailer = decode_trailer(payload)
        if trailer is not None:
            break
        try:
            state = decode_tier_state(payload)
            if state is not None:
                series.flush()
                recovery.skip[state.key] = (state.segment, state.applied)
                if state.floors and isinstance(store, TieredStore):
                    store.restore_floors(state.key, state.floors)
                continue
            block = decode_block(payload)
            if block is not None:
                series.add_block(block)
                continue
            series.add(decode_series(payload))
        except FormatError as exc:
            series.flush()
            _damaged(path, offset, str(exc), repair, recovery, rewrite)
            return len(data)
    series.flush()
    if scan.damage is not None:
        # A snapshot is renamed into place only when complete: any bad
        # record in it, even at its end, is damage.
        _damaged(path, scan.good_end, scan.reason, repair, recovery, rewrite)
    elif trailer is None:
        _damaged(path, len(data), "snapshot ends without its trailer", repair, recovery, rewrite)
    say(f"recovery: loaded snapshot {path.name}: {len(store.keys())} keys, {len(store)} points")
    return len(data)


@attrs.define
class _SeriesJoiner:
    """Restores a snapshot's keys into a store: the compressed blocks of a key,
    then its series, joining the consecutive records of one key (a series
    over the largest record is written so).

    A :class:`TieredStore` takes the blocks as they are; any other store (a
    server started without rules, ``resize``) gets their points.
    """

    store: MetricStore
    key: str | None = None
    blocks: list[BlockRecord] = attrs.field(factory=list)
    pending: SeriesRecord | None = None

    def add_block(self, record: BlockRecord) -> None:
        """Hold one of a key's blocks (they come before the key's series)."""
        if record.key != self.key:
            self.flush()
            self.key = record.key
        elif self.pending is not None:
            raise FormatError(f"a block of {record.key!r} after its series")
        elif self.blocks and record.first <= self.blocks[-1].last:
            raise FormatError(f"the blocks of {record.key!r} out of order")
        self.blocks.append(record)

    def add(self, record: SeriesRecord) -> None:
        """Hold a record of a key's series (joined to the one before of the same key)."""
        if record.key != self.key:
            self.flush()
            self.key = record.key
        pending = self.pending
        if pending is not None:
            pending.timestamps.extend(record.timestamps)
            pending.values.extend(record.values)
            return
        if self.blocks and record.timestamps[0] <= self.blocks[-1].last:
            raise FormatError(f"the series of {record.key!r} overlaps its blocks")
        self.pending = record

    def flush(self) -> None:
        """Restore the key read so far."""
        key, blocks, pending = self.key, self.blocks, self.pending
        self.key, self.blocks, self.pending = None, [], None
        if key is None:
            return
        store = self.store
        made = [Block(b.first, b.last, b.count, b.stamps, b.values) for b in blocks]
        if isinstance(store, TieredStore):
            if pending is not None:
                store.restore_series(key, pending.timestamps, pending.values)
            store.restore_blocks(key, made)
            return
        if not made and pending is not None:
            store.restore_series(key, pending.timestamps, pending.values)
            return
        stamps: array[int] = array("q")
        values: array[float] = array("d")
        for block in made:
            block_stamps, block_values = block.decompress()
            stamps.extend(block_stamps)
            values.extend(block_values)
        if pending is not None:
            stamps.extend(pending.timestamps)
            values.extend(pending.values)
        store.restore_series(key, stamps, values)


def _damaged(
    path: Path,
    offset: int,
    reason: str,
    repair: bool,
    recovery: Recovery,
    mend: Callable[[Path, int], None] | None = None,
) -> None:
    if not repair:
        raise DamagedFileError(path, offset, reason)
    copy = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
    shutil.copyfile(path, copy)
    logger.warning(
        "--repair: %s was damaged at byte %d (%s); kept a copy as %s and cut the file there",
        path,
        offset,
        reason,
        copy.name,
    )
    recovery.repaired.append(f"{path.name} at byte {offset} ({reason}); copy {copy.name}")
    (mend or _cut_at)(path, offset)


def _cut_at(path: Path, offset: int) -> None:
    with open(path, "r+b") as damaged:
        damaged.truncate(offset)
        damaged.flush()
        os.fsync(damaged.fileno())


def write_snapshot_file(
    path: Path, store: MetricStore, positions: dict[str, tuple[int, int]] | None = None
) -> int:
    """Write ``store`` as a complete snapshot at ``path`` (via a fsynced ``.tmp``
    and a rename); return its size. Blocking; used by ``--repair``.

    A :class:`TieredStore`'s keys get their tier state, with the log
    position each copy reflects from ``positions`` (what the snapshot read
    said; none: before any record).

    Written in pieces of about a MiB, as a compaction writes it. Raises
    :exc:`OSError` (the ``.tmp`` file may be left; the next start deletes it).
    """
    temporary = path.with_name(path.name + ".tmp")
    size = 0
    with open(temporary, "wb") as snapshot:
        after_key = None
        if isinstance(store, TieredStore):
            known = positions or {}

            def after_key(key: str) -> bytes | None:
                return tier_state_record(store, key, *known.get(key, (0, 0)))

        series = store.iter_series("*")
        blocks_of = None
        if isinstance(store, TieredStore):
            series, blocks_of = store.iter_uncompressed("*"), store.blocks_of
        for piece in snapshot_pieces(series, after_key=after_key, blocks_of=blocks_of):
            size += snapshot.write(b"".join(piece))
        snapshot.flush()
        os.fsync(snapshot.fileno())
    os.replace(temporary, path)
    fsync_directory(path.parent)
    return size


def tier_state_record(store: TieredStore, key: str, segment: int, applied: int) -> bytes | None:
    """The snapshot record of ``key``'s floors and the log position its copy
    reflects, or None for a key without retention rules."""
    if store.policy_for(key) is None:
        return None
    return encode_tier_state(key, segment, applied, store.floors_of(key) or ())
