"""The cache of encoded answer lines gives exactly what fresh encoding gives."""

from __future__ import annotations

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_metrics import MetricStore, ServerInfo, open_client, serve
from trio_metrics.answer_cache import AnswerCache
from trio_metrics.protocol import POINTS_PER_PIECE, encode_point_lines

CHUNK = POINTS_PER_PIECE


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
    one_chunk = len(encode_point_lines("k0", range(CHUNK), [0.25] * CHUNK))
    store, cache = cached_store(budget=3 * one_chunk)
    for k in range(5):
        store.put_columns([f"k{k}"] * (2 * CHUNK), [0.25] * (2 * CHUNK), range(2 * CHUNK))
    for k in range(5):
        assert read(store, cache, f"k{k}") == fresh(store, f"k{k}")
        assert cache.nbytes <= cache.budget
    # The most recently read key keeps its chunks.
    before = cache.points_reused
    read(store, cache, "k4")
    assert cache.points_reused - before == 2 * CHUNK


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
