"""Time ranges and deletes in the stores: in memory, in the log format, across restarts."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import trio
import trio.testing

from trio_metrics.storage import (
    FormatError,
    LogFile,
    MetricStore,
    StoreUnavailableError,
    decode_batch,
    decode_deletion,
    decode_log_record,
    encode_batch,
    encode_deletion,
    open_durable_store,
    recover,
)
from trio_metrics.storage._key_index import SortedKeys
from trio_metrics.storage._log_format import (
    FRAME_HEADER_SIZE,
    LOG_MAGIC,
    is_batch_record,
    is_log_record,
    scan_records,
)

# --- in memory -------------------------------------------------------------------------


def store_with(points: list[tuple[str, float, int]]) -> MetricStore:
    store = MetricStore()
    store.put_many(points)
    return store


def test_series_between_is_inclusive_and_copies_only_the_range() -> None:
    store = store_with([("k", float(t), t) for t in (10, 20, 30, 40)])
    found = store.series_between("k", 20, 30)
    assert found is not None
    assert (found.key, list(found.timestamps), list(found.values)) == ("k", [20, 30], [20.0, 30.0])
    assert len(found.timestamps) == 2
    assert list(store.series_between("k", 0, 10).timestamps) == [10]  # type: ignore[union-attr]
    assert list(store.series_between("k", 15, 15**9).timestamps) == [20, 30, 40]  # type: ignore[union-attr]
    assert store.series_between("k", 21, 29) is None
    assert store.series_between("k", 41, 50) is None
    assert store.series_between("nothing", 0, 100) is None


async def test_query_range_is_the_store_interface() -> None:
    store = store_with([("k", 1.0, 1), ("k", 2.0, 2)])
    [series] = await store.query_range("k", 2, 2)
    assert list(series.timestamps) == [2]
    assert await store.query_range("k", 3, 4) == []


def test_delete_keys_removes_points_index_entries_and_counts() -> None:
    store = store_with([("a", 1.0, 1), ("a", 2.0, 2), ("b", 3.0, 3), ("web.c", 4.0, 4)])
    assert store.delete_keys(["a", "missing", "web.c"]) == 2
    assert store.keys() == ["b"]
    assert len(store) == 1
    assert store.sorted_keys() == ["b"]
    assert store.series("a") == []
    store.put("a", 9.0, 9)
    assert store.keys() == ["b", "a"]  # a new first store: last in "*" order
    assert [list(s.timestamps) for s in store.series("a")] == [[9]]
    assert store.delete_keys(["a", "a"]) == 1


def test_delete_tells_listeners_from_index_zero() -> None:
    store = store_with([("a", 1.0, 1), ("b", 1.0, 1)])
    heard: list[tuple[str, int]] = []
    store.add_change_listener(lambda key, index: heard.append((key, index)))
    store.delete_keys(["b", "zzz"])
    assert heard == [("b", 0)]


def test_get_star_skips_keys_deleted_while_it_runs() -> None:
    store = store_with([("a", 1.0, 1), ("b", 2.0, 2), ("c", 3.0, 3)])
    walk = store.iter_series("*")
    assert next(walk).key == "a"
    store.delete_keys(["b"])
    assert [s.key for s in walk] == ["c"]


def test_sorted_keys_remove_keeps_pages_right() -> None:
    keys = SortedKeys()
    names = [f"k{n:05d}" for n in range(5000)]
    shuffled = names[:]
    random.Random(7).shuffle(shuffled)
    for name in shuffled:
        keys.add(name)
    gone = set(shuffled[:3000])
    for name in shuffled[:3000]:
        keys.remove(name)
    left = [name for name in names if name not in gone]
    assert len(keys) == len(left)
    assert keys.page("", "", 10_000) == left
    assert keys.page("k0", left[10], 5) == left[11:16]
    for name in left:
        keys.remove(name)
    assert keys.page() == [] and len(keys) == 0
    keys.add("again")
    assert keys.page() == ["again"]


# --- the log record ----------------------------------------------------------------------


def test_deletion_record_round_trip_and_is_no_batch() -> None:
    record = encode_deletion(["a", "café.x"])
    payload = record[FRAME_HEADER_SIZE:]
    assert decode_deletion(payload) == ["a", "café.x"]
    assert decode_log_record(payload) == ["a", "café.x"]
    assert is_log_record(payload) and not is_batch_record(payload)
    with pytest.raises(FormatError):
        decode_batch(payload)  # a reader of batches alone refuses it as damage
    batch = encode_batch(["k"], [1.0], [2])[FRAME_HEADER_SIZE:]
    assert decode_deletion(batch) is None
    decoded = decode_log_record(batch)
    assert isinstance(decoded, tuple) and decoded[0] == ["k"]


@pytest.mark.parametrize("keys", [[], ["a\nb"]])
def test_deletion_record_refuses_what_it_cannot_hold(keys: list[str]) -> None:
    with pytest.raises(ValueError):
        encode_deletion(keys)


def test_bad_deletion_payloads_are_format_errors() -> None:
    good = encode_deletion(["a", "b"])[FRAME_HEADER_SIZE:]
    with pytest.raises(FormatError):
        decode_deletion(good[:4] + b"\x03\x00\x00\x00" + good[8:])  # count says 3
    with pytest.raises(FormatError):
        decode_deletion(good[:8] + b"\xff")
    assert not is_log_record(good[:8] + b"\xff")


def test_scan_reads_deletes_among_batches() -> None:
    data = LOG_MAGIC + encode_batch(["a"], [1.0], [1]) + encode_deletion(["a"])
    scan = scan_records(data, len(LOG_MAGIC), is_log_record)
    assert scan.damage is None and len(scan.payloads) == 2


# --- durable ---------------------------------------------------------------------------


def model(store: MetricStore) -> dict[str, list[tuple[int, float]]]:
    return {s.key: list(zip(s.timestamps, s.values, strict=True)) for s in store.series("*")}


async def test_delete_then_restart(tmp_path: Path) -> None:
    async with open_durable_store(tmp_path, fsync="always") as store:
        await store.put_batch(["a", "b", "a"], [1.0, 2.0, 3.0], [1, 1, 2])
        assert await store.delete(["a", "nothing"]) == 1
        assert model(store.memory) == {"b": [(1, 2.0)]}
        assert await store.keys_with_prefix("", "", 10) == ["b"]
    assert model(recover(tmp_path).store) == {"b": [(1, 2.0)]}
    async with open_durable_store(tmp_path) as store:
        assert model(store.memory) == {"b": [(1, 2.0)]}
        assert await store.counts() == (1, 1)


async def test_put_after_delete_survives_and_put_before_does_not(tmp_path: Path) -> None:
    async with open_durable_store(tmp_path, fsync="never") as store:
        await store.put_batch(["k", "k"], [1.0, 2.0], [1, 2])
        assert await store.delete(["k"]) == 1
        await store.put_batch(["k"], [3.0], [3])
        assert await store.query_range("k", 0, 10) != []
    async with open_durable_store(tmp_path) as store:
        assert model(store.memory) == {"k": [(3, 3.0)]}
        assert await store.delete(["k"]) == 1
        assert await store.delete(["k"]) == 0
    async with open_durable_store(tmp_path) as store:
        assert model(store.memory) == {}


async def test_a_snapshot_omits_deleted_keys(tmp_path: Path) -> None:
    async with open_durable_store(tmp_path, fsync="never") as store:
        await store.put_batch(["a", "b"], [1.0, 2.0], [1, 1])
        await store.delete(["a"])
        await store.compact()
        await store.put_batch(["a"], [5.0], [5])
        await store.delete(["b"])
    recovered = recover(tmp_path).store
    assert model(recovered) == {"a": [(5, 5.0)]}


async def test_deletes_keep_their_place_among_puts(tmp_path: Path) -> None:
    async with open_durable_store(tmp_path, fsync="never") as store:
        results: dict[str, int] = {}

        async def delete(name: str) -> None:
            results[name] = await store.delete(["k"])

        # Each is queued before the next starts (the writer may take any of
        # them together in one write); the log keeps that order.
        async with trio.open_nursery() as nursery:
            nursery.start_soon(store.put_batch, ["k"], [1.0], [1])
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(delete, "first")
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(store.put_batch, ["k"], [2.0], [2])
        assert results == {"first": 1}
        assert model(store.memory) == {"k": [(2, 2.0)]}
    assert model(recover(tmp_path).store) == {"k": [(2, 2.0)]}


async def test_a_delete_is_not_applied_when_the_log_fails(tmp_path: Path) -> None:
    class FailingLog(LogFile):
        def write(self, data: bytes) -> None:
            if b"\xfe\xff\xff\xff" in data:
                raise OSError(5, "Input/output error")
            super().write(data)

    async with open_durable_store(tmp_path, fsync="never", log_file_factory=FailingLog) as store:
        await store.put_batch(["k"], [1.0], [1])
        with pytest.raises(StoreUnavailableError):
            await store.delete(["k"])
        assert model(store.memory) == {"k": [(1, 1.0)]}
