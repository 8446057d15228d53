"""The write-ahead log's open segment and the blocking work on it.

:class:`LogFile` appends to one segment of a data directory at a time:
writes, fsyncs, the switch to the next segment, closing. It is plain
blocking code; :class:`~trio_metrics.storage.DurableStore` runs each call in
a worker thread and keeps the rules (what to write when, what to
acknowledge), so a test can hand the store a log file that fails.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import BinaryIO

from ._data_dir import fsync_directory, log_path
from ._log_format import LOG_MAGIC

__all__ = ["LogFile", "NewSegmentError"]


class NewSegmentError(OSError):
    """The next segment could not be made; the current one is fsynced and still open."""


class LogFile:
    """The segment of a data directory's log being appended to.

    Every method blocks on the disk, so the store calls them from a worker
    thread, one call at a time, never two at once. They raise
    :exc:`OSError` when the disk fails; what a failed write or fsync did to
    the file is then unknown, and the store calls only :meth:`close` after
    it. The counters cover the calls that succeeded.
    """

    def __init__(self, directory: Path, segment: int) -> None:
        """Open segment ``segment`` of ``directory`` (recovery made it) for appending."""
        self.directory = directory
        self.segment = segment
        #: ``write`` calls and their bytes, fsyncs and their total time.
        self.writes = 0
        self.bytes_written = 0
        self.fsyncs = 0
        self.fsync_seconds = 0.0
        # Unbuffered: bytes of a failed write must not sit in a buffer that
        # a later flush or close would still put in the file.
        self._file: BinaryIO | None = open(  # noqa: SIM115
            log_path(directory, segment), "ab", buffering=0
        )

    def write(self, data: bytes) -> None:
        """Append all of ``data`` to the segment (not fsynced)."""
        file = self._open_file()
        view = memoryview(data)
        while view:
            # An unbuffered write may take only part of the data.
            written = file.write(view)
            view = view[written or 0 :]
        self.writes += 1
        self.bytes_written += len(data)

    def fsync(self) -> None:
        """Make what was written to the segment survive a crash of the machine."""
        file = self._open_file()
        started = time.monotonic()
        os.fsync(file.fileno())
        self.fsyncs += 1
        self.fsync_seconds += time.monotonic() - started

    def switch_segment(self, number: int) -> None:
        """Fsync this segment, then append to a new segment ``number``.

        The new segment is created with its header and fsynced, and so is
        the directory, before this one is closed. Raises :exc:`OSError` if
        the fsync fails (what was written may be lost), and
        :exc:`NewSegmentError` if the new segment cannot be made (none is
        left behind; this one stays open and appending goes on in it).
        """
        self.fsync()
        path = log_path(self.directory, number)
        try:
            new = _create_segment(path)
        except OSError as exc:
            raise NewSegmentError(f"cannot start {path.name}") from exc
        old, self._file, self.segment = self._open_file(), new, number
        old.close()

    def close(self) -> None:
        """Close the segment's file (nothing is fsynced here); calling it again does nothing."""
        file, self._file = self._file, None
        if file is not None:
            file.close()

    def _open_file(self) -> BinaryIO:
        if self._file is None:
            raise ValueError("the log file is closed")
        return self._file


def _create_segment(path: Path) -> BinaryIO:
    new = open(path, "xb", buffering=0)  # noqa: SIM115
    try:
        new.write(LOG_MAGIC)
        os.fsync(new.fileno())
        fsync_directory(path.parent)
    except BaseException:
        new.close()
        path.unlink()
        raise
    return new
