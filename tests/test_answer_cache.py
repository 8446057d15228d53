"""The cache of encoded answer lines gives exactly what fresh encoding gives."""

from __future__ import annotations

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_metrics import MetricStore, ServerInfo, open_client, serve
from trio_metrics.server._answer_cache import AnswerCache
from trio_metrics.wire._protocol import (
    PIECE_BYTES,
    encode_point_lines,
    iter_point_lines,
    points_per_piece,
)

# Points per cached chunk for the key "k" that most tests use.
CHUNK = points_per_piece("k")


def cached_store(budget: int = 1 << 30) -> tuple[MetricStore, AnswerCache]:
    store = MetricStore()
    cache = AnswerCache(budget)
    store.add_change_listener(cache.invalidate)
    return store, cache


def read(store: MetricStore, cache: AnswerCache, key: str) -> bytes:
    [series] = store.series(key)
    return b"".join(cache.lines_of(*series))


def fresh(store: MetricStore, key: str) -> bytes:
    [series] = store.series(key)
    return encode_point_lines(*series)


def test_full_chunks_are_reused_and_the_tail_is_encoded() -> None:
    store, cache = cached_store()
    store.put_columns(["k"] * (2 * CHUNK + 10), [0.5] * (2 * CHUNK + 10), range(2 * CHUNK + 10))
    assert read(store, cache, "k") == fresh(store, "k")
    assert cache.points_encoded == 2 * CHUNK + 10
    assert read(store, cache, "k") == fresh(store, "k")
    assert cache.points_reused == 2 * CHUNK
    assert cache.points_encoded == 2 * CHUNK + 20


@pytest.mark.parametrize(
    ("timestamp", "chunks_kept"),
    [(3 * CHUNK - 1, 2), (CHUNK + 5, 1), (0, 0)],  # overwrite of the last, middle, first
)
def test_a_change_drops_the_chunks_from_where_it_happened(timestamp: int, chunks_kept: int) -> None:
    store, cache = cached_store()
    count = 3 * CHUNK
    store.put_columns(["k"] * count, [1.0] * count, range(count))
    read(store, cache, "k")
    store.put("k", 2.0, timestamp)
    assert read(store, cache, "k") == fresh(store, "k")
    assert cache.points_reused == chunks_kept * CHUNK


def test_an_insertion_before_the_end_shifts_and_is_seen() -> None:
    store, cache = cached_store()
    count = 2 * CHUNK
    store.put_columns(["k"] * count, [1.0] * count, range(0, 2 * count, 2))
    read(store, cache, "k")
    store.put("k", 9.0, 1)  # between the first two points
    assert read(store, cache, "k") == fresh(store, "k")


def test_a_change_while_a_read_is_under_way_is_not_cached() -> None:
    store, cache = cached_store()
    count = 3 * CHUNK
    store.put_columns(["k"] * count, [1.0] * count, range(count))
    [snapshot] = store.series("k")
    pieces = cache.lines_of(*snapshot)
    first = next(pieces)
    store.put("k", 7.0, 0)  # changes what the first chunk shows
    rest = b"".join(pieces)
    assert first + rest == encode_point_lines(*snapshot)  # the snapshot's own view
    assert read(store, cache, "k") == fresh(store, "k")  # not a stale chunk


def test_memory_stays_within_the_budget() -> None:
    per_chunk = points_per_piece("k0")  # the same for k0 to k4
    one_chunk = len(encode_point_lines("k0", range(per_chunk), [0.25] * per_chunk))
    store, cache = cached_store(budget=3 * one_chunk)
    for k in range(5):
        points = 2 * per_chunk
        store.put_columns([f"k{k}"] * points, [0.25] * points, range(points))
    for k in range(5):
        assert read(store, cache, f"k{k}") == fresh(store, f"k{k}")
        assert cache.nbytes <= cache.budget
    # The most recently read key keeps its chunks.
    before = cache.points_reused
    read(store, cache, "k4")
    assert cache.points_reused - before == 2 * per_chunk


def test_keys_with_no_full_chunk_leave_no_entries() -> None:
    store, cache = cached_store(budget=1024)
    store.put_columns([f"key.{i}" for i in range(5000)], [1.0] * 5000, [1] * 5000)
    assert b"".join(b"".join(cache.lines_of(*s)) for s in store.series("*")) == b"".join(
        encode_point_lines(*s) for s in store.series("*")
    )
    assert cache.nbytes == 0
    assert len(cache._entries) == 0


def test_a_change_after_the_snapshot_is_never_cached_as_current() -> None:
    # The snapshot is taken, the key changes, then the answer is encoded:
    # the answer shows the snapshot, and the cache does not keep it.
    store, cache = cached_store()
    count = 3 * CHUNK
    store.put_columns(["k"] * count, [1.0] * count, range(count))
    [snapshot] = store.series("k")
    pieces = cache.lines_of(*snapshot)  # the moment of the snapshot
    store.put("k", 2.0, 0)
    assert b"".join(pieces) == encode_point_lines(*snapshot)
    assert read(store, cache, "k").split(b"\n")[0] == b"k 2.0 0"


def test_a_change_while_reused_chunks_go_out_is_not_kept() -> None:
    store, cache = cached_store()
    count = 3 * CHUNK
    store.put_columns(["k"] * count, [1.0] * count, range(count))
    read(store, cache, "k")  # all three chunks cached
    store.put_columns(["k"] * CHUNK, [1.0] * CHUNK, range(count, count + CHUNK))
    [snapshot] = store.series("k")
    pieces = cache.lines_of(*snapshot)
    next(pieces)  # the first reused chunk is on its way
    store.put("k", 9.0, count + 1)  # a change in the part being encoded
    assert b"".join(pieces)  # the rest of the snapshot's answer
    assert read(store, cache, "k") == fresh(store, "k")


def test_a_long_key_makes_small_pieces() -> None:
    key = "x" * 30_000
    store = MetricStore()
    store.put_columns([key] * 100, [1.5] * 100, range(100))
    [series] = store.series(key)
    pieces = list(iter_point_lines(*series))
    assert b"".join(pieces) == encode_point_lines(*series)
    assert max(map(len, pieces)) <= PIECE_BYTES


operations = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(0, 3 * CHUNK), st.floats(-1e6, 1e6)),
        st.tuples(st.just("append"), st.integers(1, 2 * CHUNK), st.floats(-1e6, 1e6)),
        st.tuples(st.just("read"), st.just(0), st.just(0.0)),
    ),
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(operations)
def test_random_changes_and_reads_match_fresh_encoding(
    ops: list[tuple[str, int, float]],
) -> None:
    store, cache = cached_store()
    next_ts = 0
    for op, number, value in ops:
        if op == "put":
            store.put("k", value, number)
            next_ts = max(next_ts, number + 1)
        elif op == "append":
            store.put_columns(["k"] * number, [value] * number, range(next_ts, next_ts + number))
            next_ts += number
        elif store.series("k"):
            assert read(store, cache, "k") == fresh(store, "k")
    if store.series("k"):
        assert read(store, cache, "k") == fresh(store, "k")


async def test_server_answers_from_the_cache_after_changes(nursery: trio.Nursery) -> None:
    store = MetricStore()
    info: ServerInfo = await nursery.start(
        lambda task_status: serve("127.0.0.1", 0, store=store, task_status=task_status)
    )
    count = 2 * CHUNK + 3
    store.put_columns(["a"] * count, [1.5] * count, range(count))
    async with open_client("127.0.0.1", info.port) as client:
        first = await client.get("*")
        await client.put("a", 2.5, 5)  # overwrite inside the first chunk
        await client.put("a", 3.5, count + 10)  # append
        second = await client.get("*")
    assert first == {"a": [(ts, 1.5) for ts in range(count)]}
    expected = [(ts, 2.5 if ts == 5 else 1.5) for ts in range(count)] + [(count + 10, 3.5)]
    assert second == {"a": expected}
