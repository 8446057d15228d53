"""Rewrite a data directory's points under new retention rules, in the spirit of
``whisper-resize``: the offline step after the rules change.

A server that starts with changed rules keeps data already rolled up at the
step it was rolled to (docs/retention.md). :func:`resize_data_dir` instead
puts every key's points again, oldest first, into a store with the new
rules whose floors are already where the rules put them at ``now``:

- points newer than a key's finest floor are kept as they are;
- an older point lands in the coarser tier that holds its time, on that
  tier's step: by default the last point of a step wins, as whisper writes
  old points into a lower archive; with ``aggregate=True`` the points of a
  step are combined with the key's aggregation method (``whisper-resize
  --aggregate``), without the xFilesFactor test, since old coarse data is
  all there is;
- points past the new longest span are dropped (and counted).

The result is written as a new snapshot, after which the older snapshot and
log segments are deleted. A crash before the new snapshot is in place leaves
the directory as it was; after, recovery finds the new snapshot. The
directory must not be in use (its lock is taken).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs

from ._data_dir import (
    DataDirLock,
    fsync_directory,
    log_path,
    recover,
    snapshot_path,
    write_snapshot_file,
)
from ._log_format import LOG_MAGIC
from ._retention import RetentionRules
from ._store import MetricStore
from ._tiers import TieredStore, aggregate_method

__all__ = ["ResizeReport", "resize_data_dir"]


@attrs.frozen
class ResizeReport:
    """What a resize did."""

    keys: int
    points_before: int
    points_after: int
    dropped: int
    snapshot: Path


def resize_data_dir(
    directory: Path,
    rules: RetentionRules,
    *,
    aggregate: bool = False,
    now: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> ResizeReport:
    """Rewrite ``directory`` under ``rules`` (see the module's docstring). Blocking.

    Raises :exc:`~trio_metrics.storage.DataDirLockedError` when a server holds
    the directory, and what recovery raises for damage.
    """
    say = progress or (lambda line: None)
    clock_now = int(time.time()) if now is None else now
    lock = DataDirLock(directory)
    try:
        recovery = recover(directory, store=MetricStore(), progress=say)
        old = recovery.store
        resized = TieredStore(rules, clock=lambda: float(clock_now))
        keys = old.keys()
        for number, key in enumerate(keys, start=1):
            series = old.series(key)[0]
            _put_again(resized, key, series.timestamps, series.values, clock_now, aggregate)
            if number % 10_000 == 0:
                say(f"resize: {number} of {len(keys)} keys")
        segment = recovery.segment + 1
        target = snapshot_path(directory, segment)
        positions = dict.fromkeys(resized.keys(), (segment, 0))
        write_snapshot_file(target, resized, positions)
        _start_segment(log_path(directory, segment))
        for kind, path_of in (("snapshot", snapshot_path), ("log", log_path)):
            for entry in sorted(directory.glob(f"{kind}.*")):
                suffix = entry.name.partition(".")[2]
                if suffix.isdigit() and int(suffix) < segment:
                    path_of(directory, int(suffix)).unlink()
        fsync_directory(directory)
        report = ResizeReport(
            keys=len(keys),
            points_before=len(old),
            points_after=len(resized),
            dropped=resized.expired_points,
            snapshot=target,
        )
        say(
            f"resize: {report.keys} keys, {report.points_before} points before,"
            f" {report.points_after} after ({report.dropped} past the new longest span)"
        )
        return report
    finally:
        lock.release()


def _put_again(
    store: TieredStore,
    key: str,
    stamps: Sequence[int],
    values: Sequence[float],
    now: int,
    aggregate: bool,
) -> None:
    policy = store.policy_for(key)
    keys = [key] * len(stamps)
    if policy is None:
        store.put_columns(keys, values, stamps)
        return
    floors = store.target_floors(policy, now)
    store.restore_floors(key, floors)
    if not aggregate:
        store.put_columns(keys, values, stamps)
        return
    # Older than the finest floor: one value per coarser step, combined.
    steps: dict[int, list[float]] = {}
    kept_stamps: list[int] = []
    kept_values: list[float] = []
    archives = policy.retention.archives
    for stamp, value in zip(stamps, values, strict=True):
        if stamp >= floors[0]:
            kept_stamps.append(stamp)
            kept_values.append(value)
            continue
        tier = next((k for k in range(1, len(floors)) if stamp >= floors[k]), None)
        if tier is None:
            kept_stamps.append(stamp)  # past the longest span: admit drops and counts it
            kept_values.append(value)
            continue
        step = archives[tier].step
        steps.setdefault(stamp - stamp % step, []).append(value)
    method = policy.aggregation.method
    combined = sorted(
        (start, aggregate_method(method, found, len(found))) for start, found in steps.items()
    )
    store.put_columns(
        [key] * (len(combined) + len(kept_stamps)),
        [value for _, value in combined] + kept_values,
        [start for start, _ in combined] + kept_stamps,
    )


def _start_segment(path: Path) -> None:
    with open(path, "wb") as segment:
        segment.write(LOG_MAGIC)
        segment.flush()
        os.fsync(segment.fileno())
