"""The durable store and a server with a data directory: real files in tmp dirs."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import threading
import time
from array import array
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from net import NETWORK_TIMEOUT, receive_exactly

from trio_metrics import ServerInfo, serve
from trio_metrics.client._async import open_client
from trio_metrics.storage import LogFile, _data_dir, _durable, _log_format
from trio_metrics.storage._data_dir import (
    DamagedFileError,
    DataDirError,
    DataDirLockedError,
    log_path,
    recover,
    snapshot_path,
    write_snapshot_file,
)
from trio_metrics.storage._durable import DurableStore, FsyncPolicy, open_durable_store
from trio_metrics.storage._log_format import (
    FILE_HEADER_SIZE,
    LOG_MAGIC,
    SNAPSHOT_PIECE_BYTES,
    encode_batch,
    encode_series,
)
from trio_metrics.storage._store import MetricStore, StoreUnavailableError

Model = dict[str, dict[int, float]]


def contents(directory: Path) -> Model:
    """What recovery makes of a directory (a copy of it, so the original stays)."""
    copy = directory.parent / f"{directory.name}-read"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(directory, copy)
    store = recover(copy).store
    shutil.rmtree(copy)
    return model_of_series(store.series("*"))


def model_of_series(series: object) -> Model:
    model: Model = {}
    for key, stamps, values in series:  # type: ignore[attr-defined]
        model[key] = dict(zip(stamps, values, strict=True))
    return model


def apply(model: Model, keys: list[str], values: list[float], stamps: list[int]) -> None:
    for key, value, stamp in zip(keys, values, stamps, strict=True):
        model.setdefault(key, {})[stamp] = value


class BrokenDiskLog(LogFile):
    """The real log file, whose writes and fsyncs fail as a broken disk's do once told to.

    A full disk or an I/O error cannot be made here for real; the store is
    given this log file instead of a :class:`LogFile`.
    """

    def __init__(self, directory: Path, segment: int) -> None:
        super().__init__(directory, segment)
        #: Raised by every write and fsync from now on.
        self.failing: OSError | None = None
        #: Raised by the next fsync only.
        self.next_fsync_fails: OSError | None = None
        #: The segment each failed call was made on.
        self.failed_on: list[int] = []

    def write(self, data: bytes) -> None:
        self._fail(self.failing)
        super().write(data)

    def fsync(self) -> None:
        once, self.next_fsync_fails = self.next_fsync_fails, None
        self._fail(self.failing or once)
        super().fsync()

    def _fail(self, error: OSError | None) -> None:
        if error is not None:
            self.failed_on.append(self.segment)
            raise error


DISK_FULL = OSError(errno.ENOSPC, "No space left on device")


@asynccontextmanager
async def open_store_on_broken_disk(
    directory: Path, **options: Any
) -> AsyncIterator[tuple[DurableStore, BrokenDiskLog]]:
    """A durable store whose log file is a :class:`BrokenDiskLog`, and that log file."""
    opened: list[BrokenDiskLog] = []

    def open_log(directory: Path, segment: int) -> LogFile:
        opened.append(BrokenDiskLog(directory, segment))
        return opened[-1]

    async with open_durable_store(directory, log_file_factory=open_log, **options) as store:
        [log] = opened
        yield store, log


async def test_points_survive_closing_and_reopening_in_key_order(tmp_path: Path) -> None:
    async with open_durable_store(tmp_path, fsync="never") as store:
        await store.put_batch(["b", "a", "b"], [1.0, 2.0, 3.0], [5, 5, 4])
        await store.put_batch(["b", "c"], [9.5, -1.0], [5, 1])
    async with open_durable_store(tmp_path) as store:
        assert await store.list_keys() == ["b", "a", "c"]
        assert model_of_series(await store.query("*")) == {
            "b": {4: 3.0, 5: 9.5},
            "a": {5: 2.0},
            "c": {1: -1.0},
        }
        assert store.figures.recovered_points == 4


@pytest.mark.parametrize("policy", list(FsyncPolicy))
async def test_an_acknowledged_put_is_in_the_file_before_put_batch_returns(
    tmp_path: Path, policy: FsyncPolicy
) -> None:
    async with open_durable_store(tmp_path, fsync=policy) as store:
        await store.put_batch(["k"], [1.5], [10])
        # No close in between: what another process would read right now.
        assert contents(tmp_path) == {"k": {10: 1.5}}
        fsyncs = store.figures.fsyncs
    if policy is FsyncPolicy.ALWAYS:
        assert fsyncs >= 1
    else:
        assert fsyncs == 0


async def test_always_group_commits_concurrent_batches(tmp_path: Path) -> None:
    async with open_durable_store(tmp_path, fsync="always") as store:
        async with trio.open_nursery() as nursery:
            for i in range(50):
                nursery.start_soon(store.put_batch, [f"k{i}"], [float(i)], [i])
        # Every batch waited for an fsync, and far fewer fsyncs than batches ran.
        assert 1 <= store.figures.fsyncs < 25
        assert store.figures.log_records == 50
    assert len(contents(tmp_path)) == 50


async def test_everysec_fsyncs_about_a_second_after_a_write(tmp_path: Path) -> None:
    async with open_durable_store(tmp_path, fsync="everysec") as store:
        await store.put_batch(["k"], [1.0], [1])
        assert store.figures.fsyncs == 0
        with trio.fail_after(3):
            while store.figures.fsyncs == 0:  # noqa: ASYNC110 - a counter, not an event
                await trio.sleep(0.05)


class _TaskSteps(trio.abc.Instrument):
    """Counts the scheduler steps of every task but one."""

    def __init__(self, ignored: trio.lowlevel.Task) -> None:
        self.ignored = ignored
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is not self.ignored:
            self.steps += 1


async def test_everysec_waits_on_trios_clock_for_one_fsync_a_second_later(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    """The fsync deadline is on trio's clock, which is not time.monotonic().

    Here trio's clock is a million seconds ahead of it, and moves only when
    the test moves it: a deadline taken from time.monotonic() is then always
    past, and the writer loops without waiting until a real second has gone
    by, then fsyncs at once in trio's time.
    """
    fsyncs_at: list[float] = []
    fsynced = threading.Event()

    class TimedFsyncLog(LogFile):
        def fsync(self) -> None:
            fsyncs_at.append(mock_clock.current_time())
            super().fsync()
            fsynced.set()

    mock_clock.jump(time.monotonic() + 1e6)
    async with open_durable_store(
        tmp_path, fsync="everysec", log_file_factory=TimedFsyncLog
    ) as store:
        steps = _TaskSteps(trio.lowlevel.current_task())
        trio.lowlevel.add_instrument(steps)
        put_at = trio.current_time()
        await store.put_batch(["k"], [1.0], [1])
        await trio.testing.wait_all_tasks_blocked()
        mock_clock.jump(0.99)
        await trio.testing.wait_all_tasks_blocked()
        assert fsyncs_at == []
        mock_clock.jump(0.02)
        # Waited for in a thread: a real bound, whatever trio's clock does.
        assert await trio.to_thread.run_sync(fsynced.wait, 10)
        mock_clock.jump(10)
        await trio.testing.wait_all_tasks_blocked()
        trio.lowlevel.remove_instrument(steps)
        assert len(fsyncs_at) == 1
        assert 1.0 <= fsyncs_at[0] - put_at <= 1.02
        # Writing, waking at the deadline and fsyncing take a few steps;
        # a writer that loops takes thousands.
        assert steps.steps < 50, steps.steps


async def test_closing_fsyncs_under_never(tmp_path: Path) -> None:
    async with open_durable_store(tmp_path, fsync="never") as store:
        await store.put_batch(["k"], [1.0], [1])
        assert store.figures.fsyncs == 0
    assert store.figures.fsyncs == 1


async def test_a_second_owner_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    async with open_durable_store(tmp_path):
        with pytest.raises(DataDirLockedError, match=rf"in use .*pid {os.getpid()}"):
            async with open_durable_store(tmp_path):
                pass  # pragma: no cover
    async with open_durable_store(tmp_path):
        pass  # released on close: a new owner may take it


def _write_log(directory: Path, batches: int) -> list[int]:
    """A log of ``batches`` one-point records; returns each record's end offset."""
    directory.mkdir(exist_ok=True)
    data = LOG_MAGIC
    ends = []
    for i in range(batches):
        data += encode_batch([f"key{i}"], [float(i)], [i])
        ends.append(len(data))
    log_path(directory, 1).write_bytes(data)
    return ends


def test_a_torn_tail_is_cut_with_a_warning_naming_the_bytes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ends = _write_log(tmp_path, 3)
    path = log_path(tmp_path, 1)
    with path.open("ab") as log:
        log.write(encode_batch(["late"], [1.0], [1])[:-3])
    torn = path.stat().st_size - ends[-1]
    with caplog.at_level(logging.WARNING):
        recovery = recover(tmp_path)
    expected = {f"key{i}": {i: float(i)} for i in range(3)}
    assert model_of_series(recovery.store.series("*")) == expected
    assert recovery.torn_bytes_dropped == torn
    assert f"torn tail of {torn} bytes" in caplog.text
    assert path.stat().st_size == ends[-1]


def test_every_cut_of_the_log_recovers_the_records_before_it(tmp_path: Path) -> None:
    ends = _write_log(tmp_path / "whole", 4)
    data = log_path(tmp_path / "whole", 1).read_bytes()
    for cut in range(FILE_HEADER_SIZE, len(data) + 1):
        directory = tmp_path / f"cut{cut}"
        directory.mkdir()
        log_path(directory, 1).write_bytes(data[:cut])
        recovered = recover(directory).store
        whole = sum(1 for end in ends if end <= cut)
        assert recovered.keys() == [f"key{i}" for i in range(whole)], cut
        # Appending goes on after the cut, at a record boundary.
        assert log_path(directory, 1).stat().st_size == ([FILE_HEADER_SIZE, *ends][whole]), cut
        shutil.rmtree(directory)


def test_a_log_cut_inside_its_header_starts_afresh(tmp_path: Path) -> None:
    log_path(tmp_path, 1).write_bytes(LOG_MAGIC[:3])
    assert recover(tmp_path).store.keys() == []
    assert log_path(tmp_path, 1).read_bytes() == LOG_MAGIC


def test_damage_before_the_end_refuses_to_start_naming_file_and_offset(tmp_path: Path) -> None:
    ends = _write_log(tmp_path, 3)
    path = log_path(tmp_path, 1)
    damaged = bytearray(path.read_bytes())
    damaged[ends[0] + 20] ^= 0xFF  # inside the second record's payload
    path.write_bytes(bytes(damaged))
    with pytest.raises(DamagedFileError) as caught:
        recover(tmp_path)
    assert caught.value.path == path
    assert caught.value.offset == ends[0]
    assert f"{path} is damaged at byte {ends[0]}" in str(caught.value)
    assert "--repair" in str(caught.value)
    assert path.read_bytes() == bytes(damaged)  # nothing changed without --repair


def test_repair_keeps_a_copy_and_cuts_at_the_first_bad_record(tmp_path: Path) -> None:
    ends = _write_log(tmp_path, 3)
    path = log_path(tmp_path, 1)
    damaged = bytearray(path.read_bytes())
    damaged[ends[0] + 5] ^= 0xFF  # the second record's header
    path.write_bytes(bytes(damaged))
    recovery = recover(tmp_path, repair=True)
    assert recovery.store.keys() == ["key0"]
    [copy] = tmp_path.glob("log.00000001.damaged-*")
    assert copy.read_bytes() == bytes(damaged)
    assert path.stat().st_size == ends[0]
    assert recovery.repaired and "log.00000001 at byte" in recovery.repaired[0]


def test_a_file_that_is_not_a_log_is_damage(tmp_path: Path) -> None:
    log_path(tmp_path, 1).write_bytes(b"hello, this is not a log at all\n")
    with pytest.raises(DamagedFileError, match="not a trio-metrics log file"):
        recover(tmp_path)


async def test_compaction_makes_a_snapshot_and_drops_the_old_log(tmp_path: Path) -> None:
    model: Model = {}
    async with open_durable_store(tmp_path, compact_min_bytes=10**9) as store:
        for i in range(200):
            batch = ([f"k{i % 7}", "same"], [float(i), float(i)], [i // 3, 0])
            await store.put_batch(*batch)
            apply(model, *batch)
        await store.compact()
        names = sorted(os.listdir(tmp_path))
        assert names == ["LOCK", "log.00000002", "snapshot.00000002"]
        assert store.figures.compactions == 1
        assert store.figures.snapshot_bytes == (tmp_path / "snapshot.00000002").stat().st_size
        await store.put_batch(["after"], [1.0], [1])
        apply(model, ["after"], [1.0], [1])
    assert contents(tmp_path) == model
    async with open_durable_store(tmp_path) as store:
        assert await store.list_keys() == ["k0", "same", *[f"k{i}" for i in range(1, 7)], "after"]


async def test_compaction_starts_by_itself_when_the_log_outgrows_the_data(
    tmp_path: Path,
) -> None:
    async with open_durable_store(tmp_path, compact_min_bytes=2000) as store:
        # Overwriting one point: the log grows, the data does not.
        for i in range(300):
            await store.put_batch(["same"], [float(i)], [1])
        with trio.fail_after(5):
            while store.figures.compactions == 0:  # noqa: ASYNC110 - a counter
                await trio.sleep(0.01)
        # The log since the snapshot lost what came before it. It is not
        # necessarily under the threshold: puts that came while the last
        # compaction ran may have grown it past again.
        assert store.figures.log_bytes < store.figures.log_bytes_written
    assert contents(tmp_path) == {"same": {1: 299.0}}


async def test_a_crash_after_any_compaction_step_recovers_the_same_data(tmp_path: Path) -> None:
    """Copies of the directory taken right after each step stand in for crashes there.

    Puts go on while compacting; a copy must hold every batch acknowledged
    before it was taken, and may hold a few written but not yet acknowledged.
    """
    live = tmp_path / "live"
    batches: list[tuple[list[str], list[float], list[int]]] = []
    acknowledged = 0
    copies: list[tuple[str, Path, int]] = []

    def copy_at(step: str) -> None:
        copy = tmp_path / f"at-{len(copies)}-{step.replace(' ', '-')}"
        shutil.copytree(live, copy, ignore=shutil.ignore_patterns("LOCK"))
        copies.append((step, copy, acknowledged))

    async def keep_putting(store: DurableStore, stop: trio.Event) -> None:
        nonlocal acknowledged
        i = 0
        while not stop.is_set():
            batch = ([f"k{i % 13}", f"new{i}"], [float(i), 1.0], [i % 5, i])
            batches.append(batch)
            await store.put_batch(*batch)
            acknowledged = len(batches)
            i += 1

    async with open_durable_store(live, fsync="never", compact_min_bytes=10**9) as store:
        for i in range(100):
            batch = ([f"k{i % 13}"], [float(-i)], [i % 5])
            batches.append(batch)
            await store.put_batch(*batch)
        acknowledged = len(batches)
        store.compaction_step_hook = copy_at
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(keep_putting, store, stop)
            await store.compact()
            await trio.sleep(0.05)
            stop.set()
    assert [step for step, _, _ in copies] == [
        "rotated",
        "snapshot written",
        "snapshot renamed",
        "old files removed",
    ]
    for step, copy, acked in copies:
        recovered = contents(copy)
        model: Model = {}
        matches = []
        for count, batch in enumerate(batches, start=1):
            apply(model, *batch)
            if count >= acked and model == recovered:
                matches.append(count)
        assert matches, f"after {step!r}: not the data of any acknowledged prefix"


async def test_a_failing_disk_refuses_puts_and_keeps_serving_reads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_metrics.storage")
    async with open_store_on_broken_disk(tmp_path, fsync="never") as (store, log):
        await store.put_batch(["kept"], [1.0], [1])
        log.failing = DISK_FULL
        with pytest.raises(StoreUnavailableError, match="No space left"):
            await store.put_batch(["lost"], [2.0], [2])
        with pytest.raises(StoreUnavailableError):
            await store.put_batch(["later"], [3.0], [3])
        assert [s.key for s in await store.query("*")] == ["kept"]
        log.failing = None  # the disk is back for the close
    assert contents(tmp_path) == {"kept": {1: 1.0}}
    # The close does not claim a good log.
    assert "log closed after it failed ([Errno 28] No space left" in caplog.text
    assert "log closed and fsynced" not in caplog.text


# -- through the server ------------------------------------------------------


async def _raw_get_all(port: int) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"get *\n")
        answer = b""
        with trio.fail_after(NETWORK_TIMEOUT):
            while not answer.endswith(b"\n\n"):
                answer += await stream.receive_some()
    return answer


async def test_get_all_is_byte_for_byte_the_same_after_a_restart(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        info: ServerInfo = await nursery.start(
            lambda task_status: serve("127.0.0.1", 0, data_dir=tmp_path, task_status=task_status)
        )
        async with open_client("127.0.0.1", info.port) as client:
            for i in range(300):
                await client.put(f"host{i % 11}.cpu", i * 0.1, 1_500_000_000 + (i * 7919) % 97)
            await client.put("host3.cpu", 42.0, 1_500_000_000)
        before = await _raw_get_all(info.port)
        info.shutdown()
    async with trio.open_nursery() as nursery:
        info = await nursery.start(
            lambda task_status: serve("127.0.0.1", 0, data_dir=tmp_path, task_status=task_status)
        )
        after = await _raw_get_all(info.port)
        info.shutdown()
    assert before.count(b"\n") > 300
    assert after == before


async def test_the_server_refuses_a_locked_data_dir(tmp_path: Path) -> None:
    async with open_durable_store(tmp_path):
        with pytest.raises(DataDirLockedError):
            await serve("127.0.0.1", 0, data_dir=tmp_path)


async def test_store_and_data_dir_together_are_refused(tmp_path: Path) -> None:
    from trio_metrics import MetricStore

    with pytest.raises(ValueError, match="either store or data_dir"):
        await serve("127.0.0.1", 0, data_dir=tmp_path, store=MetricStore())


async def test_an_unusable_data_dir_is_a_data_dir_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(DataDirError, match="cannot use data directory"):
        await serve("127.0.0.1", 0, data_dir=blocker / "data")


async def test_stats_shows_the_log_figures(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        info: ServerInfo = await nursery.start(
            lambda task_status: serve(
                "127.0.0.1", 0, data_dir=tmp_path, fsync="always", task_status=task_status
            )
        )
        async with open_client("127.0.0.1", info.port) as client:
            await client.put("k", 1, 1)
            await client.put("k", 2, 2)
            counters = await client.stats()
        info.shutdown()
    assert counters["log_records"] == 2
    assert counters["fsyncs"] >= 2
    assert counters["puts"] == 2


async def test_graphite_points_are_logged_and_survive_a_restart(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        info: ServerInfo = await nursery.start(
            lambda task_status: serve(
                "127.0.0.1", 0, data_dir=tmp_path, graphite_port=0, task_status=task_status
            )
        )
        assert info.graphite_port is not None
        sender = await trio.open_tcp_stream("127.0.0.1", info.graphite_port)
        async with sender:
            await sender.send_all(b"web.requests 12 1500000000\nweb.requests 13 1500000060\n")
        with trio.fail_after(NETWORK_TIMEOUT):
            while info.stats.graphite_points < 2:  # noqa: ASYNC110 - a counter
                await trio.sleep(0.01)
        info.shutdown()
    assert contents(tmp_path) == {"web.requests": {1500000000: 12.0, 1500000060: 13.0}}


# -- failures inside the writer ------------------------------------------------


async def test_a_failed_fsync_at_a_segment_switch_acknowledges_nothing(tmp_path: Path) -> None:
    # The log file fails the next fsync: under never, the first one is the
    # old segment's while the segment is switched.
    async with open_store_on_broken_disk(tmp_path, fsync="never", compact_min_bytes=10**9) as (
        store,
        log,
    ):
        await store.put_batch(["before"], [1.0], [1])
        log.next_fsync_fails = OSError(errno.EIO, "Input/output error")
        during_acknowledged = False

        async def compact_and_fail() -> None:
            with pytest.raises(OSError, match="could not be switched"):
                await store.compact()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(compact_and_fail)  # asks for the switch
            try:
                await store.put_batch(["during"], [2.0], [2])
                during_acknowledged = True  # written before the switch began
            except StoreUnavailableError as exc:
                assert "Input/output error" in str(exc)
        with pytest.raises(StoreUnavailableError):
            await store.put_batch(["after"], [3.0], [3])
        with pytest.raises(OSError, match="the log failed"):
            await store.compact()
        expected = {"before": {1: 1.0}}
        if during_acknowledged:
            expected["during"] = {2: 2.0}
        assert model_of_series(store.memory.series("*")) == expected
    assert log.failed_on == [1]
    assert contents(tmp_path) == expected


async def test_batches_the_log_cannot_hold_are_refused_before_anything_is_queued(
    tmp_path: Path,
) -> None:
    async with open_durable_store(tmp_path, fsync="never") as store:
        with pytest.raises(ValueError, match="newline"):
            await store.put_batch(["a\nb"], [1.0], [1])
        with pytest.raises(ValueError, match="one length"):
            await store.put_batch(["a", "b"], [1.0], [1])
        await store.put_batch([], [], [])
        await store.put_batch(["ok"], [1.0], [1])
        assert store.figures.log_records == 1
    assert contents(tmp_path) == {"ok": {1: 1.0}}


async def test_callers_still_waiting_when_the_store_closes_are_released(tmp_path: Path) -> None:
    """Puts from tasks outside the store's block, started right up to its end.

    Some of them wait on the batch the writer was cancelled on before its
    thread started; closing writes that batch and must release them.
    """
    outcomes = {"stored": 0, "refused": 0, "hung": 0}

    async def put_one(store: DurableStore, i: int) -> None:
        with trio.move_on_after(3) as waiting:
            try:
                await store.put_batch([f"k{i}"], [1.0], [i])
            except StoreUnavailableError:
                outcomes["refused"] += 1
                return
        outcomes["hung" if waiting.cancelled_caught else "stored"] += 1

    async def feed(store: DurableStore, nursery: trio.Nursery, stopped: trio.Event) -> None:
        i = 0
        while not stopped.is_set():
            i += 1
            nursery.start_soon(put_one, store, i)
            await trio.lowlevel.checkpoint()

    for round_number in range(5):
        stopped = trio.Event()
        async with trio.open_nursery() as outside:
            async with open_durable_store(tmp_path / str(round_number), fsync="always") as store:
                outside.start_soon(feed, store, outside, stopped)
                await trio.sleep(0.1)
            stopped.set()
    assert outcomes["hung"] == 0, outcomes
    assert outcomes["stored"] > 0


def test_a_repaired_snapshot_is_complete_and_starts_without_repair(tmp_path: Path) -> None:
    async def fill() -> None:
        async with open_durable_store(tmp_path, compact_min_bytes=10**9) as store:
            for i in range(5):
                await store.put_batch([f"key{i}"], [float(i)], [i])
            await store.compact()

    trio.run(fill)
    [snapshot] = tmp_path.glob("snapshot.*")
    damaged = bytearray(snapshot.read_bytes())
    damaged[-30] ^= 0xFF  # inside the trailer's frame
    snapshot.write_bytes(bytes(damaged))
    with pytest.raises(DamagedFileError):
        recover(tmp_path)
    repaired = recover(tmp_path, repair=True).store
    assert repaired.keys() == [f"key{i}" for i in range(5)]
    again = recover(tmp_path).store  # no --repair needed any more
    assert again.keys() == repaired.keys()


def test_a_repaired_segment_header_starts_without_repair(tmp_path: Path) -> None:
    _write_log(tmp_path, 2)
    later = log_path(tmp_path, 2)
    later.write_bytes(LOG_MAGIC + encode_batch(["later"], [1.0], [1]))
    first = log_path(tmp_path, 1)
    first.write_bytes(b"XXXXXXXX" + first.read_bytes()[8:])
    with pytest.raises(DamagedFileError, match="not a trio-metrics log file"):
        recover(tmp_path)
    assert recover(tmp_path, repair=True).store.keys() == ["later"]
    assert recover(tmp_path).store.keys() == ["later"]


async def test_metrics_and_posted_points_with_a_data_dir(tmp_path: Path) -> None:
    from http_requests import post_points, request
    from prometheus_client.parser import text_string_to_metric_families

    async with trio.open_nursery() as nursery:
        info: ServerInfo = await nursery.start(
            lambda task_status: serve(
                "127.0.0.1",
                0,
                data_dir=tmp_path,
                fsync="always",
                http_port=0,
                task_status=task_status,
            )
        )
        assert info.http_port is not None
        await post_points(info.http_port, [{"key": "posted", "value": 2.5, "timestamp": 7}])
        async with open_client("127.0.0.1", info.port) as client:
            await client.put("k", 1, 1)
        _, _, body = await request(info.http_port, "GET", "/metrics")
        info.shutdown()
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }
    assert samples["trio_metrics_log_records_total"] == 2
    assert samples["trio_metrics_log_fsyncs_total"] >= 2
    assert samples["trio_metrics_log_fsync_seconds_total"] >= 0
    assert samples["trio_metrics_log_bytes"] > 8
    # The posted point went through the log like a protocol put.
    assert contents(tmp_path) == {"posted": {7: 2.5}, "k": {1: 1.0}}


def test_repair_sets_a_damaged_snapshot_aside_when_older_files_hold_the_data(
    tmp_path: Path,
) -> None:
    _write_log(tmp_path, 3)
    stray = tmp_path / "snapshot.00000009"
    stray.write_bytes(b"hi\n")
    with pytest.raises(DamagedFileError, match=r"snapshot\.00000009 is damaged at byte 0"):
        recover(tmp_path)
    recovery = recover(tmp_path, repair=True)
    assert recovery.store.keys() == ["key0", "key1", "key2"]
    assert not stray.exists()
    assert [p.read_bytes() for p in tmp_path.glob("snapshot.00000009.damaged-*")] == [b"hi\n"]
    assert recover(tmp_path).store.keys() == ["key0", "key1", "key2"]


async def test_a_failed_log_closes_graphite_senders_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        open_store_on_broken_disk(tmp_path) as (store, log),
        trio.open_nursery() as nursery,
    ):
        info: ServerInfo = await nursery.start(
            lambda task_status: serve(
                "127.0.0.1", 0, store=store, graphite_port=0, task_status=task_status
            )
        )
        assert info.graphite_port is not None
        log.failing = DISK_FULL
        for _ in range(3):
            sender = await trio.open_tcp_stream("127.0.0.1", info.graphite_port)
            async with sender:
                await sender.send_all(b"web.requests 12 1500000000\n")
                with trio.fail_after(NETWORK_TIMEOUT):
                    assert await sender.receive_some() == b""  # closed by the server
        assert info.stats.graphite_connection_failures == 3
        assert info.stats.graphite_points == 0
        assert "Traceback" not in caplog.text
        assert caplog.text.count("closed a Graphite connection") == 1  # throttled
        nursery.cancel_scope.cancel()


async def test_a_failed_log_answers_each_put_with_the_error_and_the_connection_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Puts the log could not take get the error answer, never ``ok``; answers
    stay in order around them, and the same connection still reads."""
    error = b"error\nwrong command\n\n"
    caplog.set_level(logging.INFO, logger="trio_metrics.server")
    async with (
        open_store_on_broken_disk(tmp_path) as (store, log),
        trio.open_nursery() as nursery,
    ):
        info: ServerInfo = await nursery.start(
            lambda task_status: serve("127.0.0.1", 0, store=store, task_status=task_status)
        )
        stream = await trio.open_tcp_stream("127.0.0.1", info.port)
        async with stream:
            with trio.fail_after(NETWORK_TIMEOUT):
                await stream.send_all(b"put kept 1 1\n")
                assert await receive_exactly(stream, 4) == b"ok\n\n"
                log.failing = DISK_FULL
                # The usual batch, puts only: each refused.
                await stream.send_all(b"put lost 2 2\nput lost 3 3\n")
                assert await receive_exactly(stream, 2 * len(error)) == 2 * error
                # Puts among other lines: each answered in its place.
                await stream.send_all(b"put a 1 1\nbogus\nput b 2 2\nput c 3 3\nget *\n")
                expected = 4 * error + b"ok\nkept 1.0 1\n\n"
                assert await receive_exactly(stream, len(expected)) == expected
            # A delete the log cannot take has no answer and ends the
            # connection, but the answers before it in the same read go out.
            stream = await trio.open_tcp_stream("127.0.0.1", info.port)
            async with stream:
                with trio.fail_after(NETWORK_TIMEOUT):
                    await stream.send_all(b"put x 1 1\nping\ndelete kept\nping\n")
                    expected = error + b"ok\n\n"
                    assert await receive_exactly(stream, len(expected)) == expected
                    assert await stream.receive_some() == b""
        assert info.stats.puts == 1
        assert info.stats.puts_refused == 6
        assert info.stats.errors == 7
        assert info.stats.connection_failures == 1  # the delete's
        assert "Traceback" not in caplog.text
        assert caplog.text.count("refused 2 puts (the error answer to each)") == 1
        assert "refused 3 puts" not in caplog.text  # throttled
        nursery.cancel_scope.cancel()
    # The summary at the stop tells refused puts from wrong commands.
    assert "commands, 1 wrong, 6 puts the store refused," in caplog.text


#: The CRC32 of 8 zero bytes: a timestamp column holding 0 and then this
#: holds a frame header of an empty record with a good checksum.
CRC_OF_8_ZEROS = 1696784233


async def test_a_torn_record_holding_a_frame_pattern_is_cut_as_a_torn_tail(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model: Model = {}
    async with open_durable_store(tmp_path, fsync="always") as store:
        for i in range(3):
            batch = ([f"k{i}"] * 6, [float(i)] * 6, [0, CRC_OF_8_ZEROS] * 3)
            await store.put_batch(*batch)
            apply(model, *batch)
        await store.put_batch(["late"] * 6, [9.0] * 6, [0, CRC_OF_8_ZEROS] * 3)
    path = log_path(tmp_path, 1)
    size = path.stat().st_size
    os.truncate(path, size - 4)  # a full disk or a power cut tears the last record
    with caplog.at_level(logging.WARNING):
        recovery = recover(tmp_path)
    assert model_of_series(recovery.store.series("*")) == model
    torn = size - 4 - len(LOG_MAGIC) - 3 * len(encode_batch(["k0"] * 6, [0.0] * 6, [0] * 6))
    assert recovery.torn_bytes_dropped == torn
    assert f"torn tail of {torn} bytes" in caplog.text


class RecordingWriter:
    """A file opened for writing that notes the size of every write."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "wb")  # noqa: SIM115 - closed by close()
        self.sizes: list[int] = []

    def write(self, data: bytes) -> int:
        self.sizes.append(len(data))
        return self._file.write(data)

    def flush(self) -> None:
        self._file.flush()

    def fileno(self) -> int:
        return self._file.fileno()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _long_key(number: int) -> str:
    return f"{number:05d}" + "x" * (60_000 - 5)


LONG_KEY_RECORD = len(encode_series(_long_key(0), array("q", [1, 2, 3]), array("d", [0.0] * 3)))


async def test_compaction_writes_the_snapshot_in_pieces_of_bytes_not_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writers: list[RecordingWriter] = []

    def create(path: Path) -> RecordingWriter:
        writers.append(RecordingWriter(path))
        return writers[-1]

    monkeypatch.setattr(_durable, "_create", create)
    model: Model = {}
    async with open_durable_store(tmp_path, fsync="never", compact_min_bytes=10**12) as store:
        for i in range(200):
            batch = ([_long_key(i)] * 3, [float(i)] * 3, [1, 2, 3])
            await store.put_batch(*batch)
            apply(model, *batch)
        await store.compact()
    [writer] = writers
    assert sum(writer.sizes) > 10 * SNAPSHOT_PIECE_BYTES
    assert max(writer.sizes) < SNAPSHOT_PIECE_BYTES + LONG_KEY_RECORD
    assert contents(tmp_path) == model


def test_a_snapshot_written_for_repair_is_written_in_pieces_of_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MetricStore()
    for i in range(200):
        store.put_columns([_long_key(i)] * 3, [float(i)] * 3, [1, 2, 3])
    writers: list[RecordingWriter] = []

    def recording_open(path: Path, mode: str) -> RecordingWriter:
        assert mode == "wb"
        writers.append(RecordingWriter(path))
        return writers[-1]

    monkeypatch.setattr(_data_dir, "open", recording_open, raising=False)
    write_snapshot_file(snapshot_path(tmp_path, 1), store)
    monkeypatch.undo()
    [writer] = writers
    assert max(writer.sizes) < SNAPSHOT_PIECE_BYTES + LONG_KEY_RECORD
    assert len(writer.sizes) < 20  # pieces, not a write per record
    assert contents(tmp_path) == model_of_series(store.series("*"))


async def test_a_series_over_the_largest_record_is_split_and_joined_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The largest record is 1 GiB (about 67M points); a smaller one here.
    monkeypatch.setattr(_log_format, "MAX_RECORD_SIZE", 4096)
    model: Model = {}
    async with open_durable_store(tmp_path, compact_min_bytes=10**12) as store:
        await store.put_batch(["before"], [1.0], [1])
        for start in range(0, 1000, 100):
            stamps = list(range(start, start + 100))
            batch = (["long"] * 100, [float(t) for t in stamps], stamps)
            await store.put_batch(*batch)
            apply(model, *batch)
        await store.put_batch(["after"], [2.0], [2])
        apply(model, ["before", "after"], [1.0, 2.0], [1, 2])
        await store.compact()
    assert contents(tmp_path) == model
    # --repair writes snapshots too.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_snapshot_file(snapshot_path(elsewhere, 1), recover(tmp_path).store)
    recovered = recover(elsewhere).store
    assert model_of_series(recovered.series("*")) == model
    assert len(recovered) == 1002


async def test_a_batch_over_the_largest_record_is_refused_before_it_is_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_log_format, "MAX_RECORD_SIZE", 4096)
    async with open_durable_store(tmp_path, fsync="never") as store:
        with pytest.raises(ValueError, match="maximum"):
            await store.put_batch(["k"] * 300, [1.0] * 300, list(range(300)))
        await store.put_batch(["ok"], [1.0], [1])
    assert contents(tmp_path) == {"ok": {1: 1.0}}


async def test_a_failed_log_answers_http_posts_503_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """It was a 500 with a full traceback for every POST (534 lines for 39 requests)."""
    import json

    from http_requests import request

    async with (
        open_store_on_broken_disk(tmp_path) as (store, log),
        trio.open_nursery() as nursery,
    ):
        info: ServerInfo = await nursery.start(
            lambda task_status: serve(
                "127.0.0.1", 0, store=store, http_port=0, task_status=task_status
            )
        )
        assert info.http_port is not None
        log.failing = OSError(errno.ENOSPC, "No space left on device")
        body = b'[{"key": "web.requests", "value": 12}]'
        for _ in range(5):
            code, _, answer = await request(info.http_port, "POST", "/api/v1/points", body)
            assert code == 503, answer
            assert "cannot take points" in json.loads(answer)["error"]
        code, _, _ = await request(info.http_port, "GET", "/healthz")
        assert code == 200
        assert "Traceback" not in caplog.text
        assert caplog.text.count("refused POST /api/v1/points") == 1  # throttled
        nursery.cancel_scope.cancel()


async def test_keys_with_prefix_reads_the_recovered_keys(tmp_path: Path) -> None:
    async with open_durable_store(tmp_path, fsync="never") as store:
        await store.put_batch(["web.b", "db.a", "web.a"], [1.0, 2.0, 3.0], [5, 5, 5])
    async with open_durable_store(tmp_path) as store:
        assert await store.keys_with_prefix("web.", "", 10) == ["web.a", "web.b"]
        await store.put_batch(["web.0"], [1.0], [1])
        assert await store.keys_with_prefix("web.", "", 2) == ["web.0", "web.a"]
