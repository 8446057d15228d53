"""Tests for trio_metrics.storage._store.MetricStore: last write wins, ordering, snapshots.

Expected series are written out literally or come from a reference model
(``dict[str, dict[int, float]]`` plus the list of first-seen keys).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from trio_metrics.storage._store import MetricStore, Series

Plain = tuple[str, list[int], list[float]]


def plain(series: Iterable[Series]) -> list[Plain]:
    """Series as plain lists, for comparison with literal expectations."""
    return [(s.key, list(s.timestamps), list(s.values)) for s in series]


class Model:
    """Reference model: points per key, and keys in first-stored order."""

    def __init__(self) -> None:
        self.points: dict[str, dict[int, float]] = {}
        self.order: list[str] = []

    def put(self, key: str, value: float, timestamp: int) -> None:
        if key not in self.points:
            self.points[key] = {}
            self.order.append(key)
        self.points[key][timestamp] = value

    def series(self, key: str) -> list[Plain]:
        keys = self.order if key == "*" else [k for k in self.order if k == key]
        return [
            (k, sorted(self.points[k]), [self.points[k][t] for t in sorted(self.points[k])])
            for k in keys
        ]

    def __len__(self) -> int:
        return sum(len(p) for p in self.points.values())


def bits(values: list[float]) -> list[bytes]:
    return [struct.pack("<d", v) for v in values]


# --- basics ---------------------------------------------------------------------------


def test_empty_store() -> None:
    store = MetricStore()
    assert len(store) == 0
    assert store.keys() == []
    assert store.series("*") == []
    assert store.series("k") == []


def test_single_point() -> None:
    store = MetricStore()
    store.put("palm.cpu", 10.6, 1501864247)
    assert plain(store.series("palm.cpu")) == [("palm.cpu", [1501864247], [10.6])]
    assert len(store) == 1


def test_series_fields() -> None:
    store = MetricStore()
    store.put("k", 1.5, 3)
    [series] = store.series("k")
    assert series.key == "k"
    assert list(series.timestamps) == [3]
    assert list(series.values) == [1.5]


def test_unknown_key_gives_empty_list() -> None:
    store = MetricStore()
    store.put("known", 1.0, 1)
    assert store.series("unknown") == []
    assert store.series("Known") == []


def test_integer_value_is_stored_as_float() -> None:
    store = MetricStore()
    store.put("k", 10, 1)
    [series] = store.series("k")
    assert list(series.values) == [10.0]
    assert type(series.values[0]) is float
    assert type(series.timestamps[0]) is int


def test_extreme_timestamps_and_values() -> None:
    store = MetricStore()
    store.put("k", -0.0, 2**63 - 1)
    store.put("k", 5e-324, 0)
    store.put("k", 1.7976931348623157e308, 1)
    [series] = store.series("k")
    assert list(series.timestamps) == [0, 1, 2**63 - 1]
    assert bits(list(series.values)) == bits([5e-324, 1.7976931348623157e308, -0.0])
    assert math.copysign(1.0, series.values[2]) == -1.0


# --- last write wins and ordering --------------------------------------------------------


def test_last_write_wins_for_same_key_and_second() -> None:
    store = MetricStore()
    store.put("k", 1.0, 10)
    store.put("k", 2.0, 10)
    store.put("k", 3.0, 10)
    assert plain(store.series("k")) == [("k", [10], [3.0])]
    assert len(store) == 1


def test_same_second_on_different_keys_is_kept_apart() -> None:
    store = MetricStore()
    store.put("a", 1.0, 10)
    store.put("b", 2.0, 10)
    store.put("A", 3.0, 10)
    assert plain(store.series("*")) == [("a", [10], [1.0]), ("b", [10], [2.0]), ("A", [10], [3.0])]
    assert len(store) == 3


def test_points_are_read_in_ascending_time() -> None:
    store = MetricStore()
    for timestamp in (1, 2, 3, 4):
        store.put("k", float(timestamp * 10), timestamp)
    assert plain(store.series("k")) == [("k", [1, 2, 3, 4], [10.0, 20.0, 30.0, 40.0])]


def test_out_of_order_inserts_are_sorted() -> None:
    store = MetricStore()
    for value, timestamp in [(5.0, 50), (1.0, 10), (3.0, 30), (2.0, 20), (6.0, 60), (4.0, 40)]:
        store.put("k", value, timestamp)
    assert plain(store.series("k")) == [
        ("k", [10, 20, 30, 40, 50, 60], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    ]
    assert len(store) == 6


def test_reverse_order_inserts() -> None:
    store = MetricStore()
    for timestamp in (9, 7, 5, 3, 1, 0):
        store.put("k", float(timestamp), timestamp)
    assert plain(store.series("k")) == [("k", [0, 1, 3, 5, 7, 9], [0.0, 1.0, 3.0, 5.0, 7.0, 9.0])]


@pytest.mark.parametrize(
    ("timestamp", "expected_values"),
    [
        (10, [-1.0, 2.0, 3.0, 4.0]),  # first
        (20, [1.0, -1.0, 3.0, 4.0]),  # middle
        (30, [1.0, 2.0, -1.0, 4.0]),  # middle
        (40, [1.0, 2.0, 3.0, -1.0]),  # last
    ],
)
def test_overwrite_existing_point(timestamp: int, expected_values: list[float]) -> None:
    store = MetricStore()
    for value, ts in [(1.0, 10), (2.0, 20), (3.0, 30), (4.0, 40)]:
        store.put("k", value, ts)
    store.put("k", -1.0, timestamp)
    assert plain(store.series("k")) == [("k", [10, 20, 30, 40], expected_values)]
    assert len(store) == 4


def test_overwrite_after_out_of_order_insert() -> None:
    store = MetricStore()
    store.put("k", 1.0, 30)
    store.put("k", 2.0, 10)
    store.put("k", 3.0, 20)
    store.put("k", 4.0, 10)
    store.put("k", 5.0, 20)
    store.put("k", 6.0, 30)
    assert plain(store.series("k")) == [("k", [10, 20, 30], [4.0, 5.0, 6.0])]
    assert len(store) == 3


# --- keys and "*" ---------------------------------------------------------------------------


def test_star_returns_keys_in_first_stored_order_not_sorted() -> None:
    store = MetricStore()
    store.put("zeta", 1.0, 2)
    store.put("alpha", 2.0, 1)
    store.put("mid", 3.0, 5)
    store.put("alpha", 4.0, 0)
    store.put("zeta", 5.0, 1)
    assert store.keys() == ["zeta", "alpha", "mid"]
    assert plain(store.series("*")) == [
        ("zeta", [1, 2], [5.0, 1.0]),
        ("alpha", [0, 1], [4.0, 2.0]),
        ("mid", [5], [3.0]),
    ]


def test_len_counts_distinct_points_over_all_keys() -> None:
    store = MetricStore()
    store.put("a", 1.0, 1)
    store.put("a", 1.0, 2)
    store.put("a", 9.0, 1)
    store.put("b", 1.0, 1)
    store.put("b", 1.0, 0)
    store.put("b", 2.0, 0)
    assert len(store) == 4


def test_keys_returns_a_copy() -> None:
    store = MetricStore()
    store.put("a", 1.0, 1)
    keys = store.keys()
    keys.append("b")
    assert store.keys() == ["a"]


def test_put_many_stores_in_order() -> None:
    store = MetricStore()
    store.put_many([("a", 1.0, 5), ("b", 2.0, 1), ("a", 3.0, 5), ("a", 4.0, 2)])
    assert plain(store.series("*")) == [("a", [2, 5], [4.0, 3.0]), ("b", [1], [2.0])]
    assert len(store) == 3


# --- snapshots ---------------------------------------------------------------------------------


def test_snapshot_does_not_change_after_later_puts() -> None:
    store = MetricStore()
    store.put("k", 1.0, 10)
    store.put("k", 2.0, 20)
    [snapshot] = store.series("k")
    store.put("k", 3.0, 30)  # append
    store.put("k", 9.0, 20)  # overwrite last-but-one
    store.put("k", 8.0, 30)  # overwrite last
    store.put("k", 0.5, 5)  # insert before first
    assert list(snapshot.timestamps) == [10, 20]
    assert list(snapshot.values) == [1.0, 2.0]
    assert plain(store.series("k")) == [("k", [5, 10, 20, 30], [0.5, 1.0, 9.0, 8.0])]


def test_star_snapshot_does_not_change_after_later_puts() -> None:
    store = MetricStore()
    store.put("a", 1.0, 1)
    snapshot = store.series("*")
    store.put("a", 2.0, 1)
    store.put("a", 3.0, 2)
    store.put("b", 4.0, 1)
    assert plain(snapshot) == [("a", [1], [1.0])]


def test_overwrite_of_single_point_does_not_change_snapshot() -> None:
    store = MetricStore()
    store.put("k", 1.0, 1)
    [snapshot] = store.series("k")
    store.put("k", 2.0, 1)
    assert list(snapshot.values) == [1.0]


# --- async Store interface ----------------------------------------------------------------------


async def test_async_put_batch_and_query() -> None:
    store = MetricStore()
    await store.put_batch(["a", "a", "b", "a"], [1.0, 2.0, 3.0, 4.0], [2, 2, 1, 1])
    assert plain(await store.query("a")) == [("a", [1, 2], [4.0, 2.0])]
    assert plain(await store.query("b")) == [("b", [1], [3.0])]
    assert plain(await store.query("*")) == [("a", [1, 2], [4.0, 2.0]), ("b", [1], [3.0])]
    assert await store.query("missing") == []
    assert len(store) == 3


async def test_async_empty_batch_and_query_on_empty_store() -> None:
    store = MetricStore()
    await store.put_batch([], [], [])
    assert list(await store.query("*")) == []
    assert len(store) == 0


async def test_async_query_returns_snapshot() -> None:
    store = MetricStore()
    await store.put_batch(["k"], [1.0], [1])
    result = await store.query("k")
    await store.put_batch(["k", "k"], [2.0, 3.0], [1, 0])
    assert plain(result) == [("k", [1], [1.0])]
    assert plain(await store.query("k")) == [("k", [0, 1], [3.0, 2.0])]


# --- properties ---------------------------------------------------------------------------------

small_keys = st.sampled_from(["a", "b", "c", "palm.cpu", "café"])
floats = st.floats(allow_nan=False, allow_infinity=False)
small_timestamps = st.integers(0, 12) | st.sampled_from([0, 2**63 - 1, 1501864247])


@settings(max_examples=200)
@given(points=st.lists(st.tuples(small_keys, floats, small_timestamps), max_size=40))
def test_put_many_matches_reference_model(points: list[tuple[str, float, int]]) -> None:
    store = MetricStore()
    model = Model()
    store.put_many(points)
    for key, value, timestamp in points:
        model.put(key, value, timestamp)
    assert store.keys() == model.order
    assert len(store) == len(model)
    assert plain(store.series("*")) == model.series("*")
    for key in ["a", "b", "c", "palm.cpu", "café", "zzz"]:
        assert plain(store.series(key)) == model.series(key)


# Many keys, each with a few timestamps: batches hold repeats, seconds out of
# order and keys new and old, as a pipelined or Graphite read can.
many_keys = st.integers(0, 60).map(lambda n: f"host{n}.cpu")
batch_points = st.lists(st.tuples(many_keys, floats, st.integers(0, 30)), max_size=200)


@settings(max_examples=200, deadline=None)
@given(batches=st.lists(batch_points, min_size=1, max_size=4))
def test_put_columns_of_whole_batches_matches_one_point_at_a_time(
    batches: list[list[tuple[str, float, int]]],
) -> None:
    batched, single = MetricStore(), MetricStore()
    model = Model()
    heard: tuple[list[tuple[str, int]], list[tuple[str, int]]] = ([], [])
    batched.add_change_listener(lambda key, index: heard[0].append((key, index)))
    single.add_change_listener(lambda key, index: heard[1].append((key, index)))
    for points in batches:
        keys = [key for key, _, _ in points]
        values = [value for _, value, _ in points]
        stamps = [timestamp for _, _, timestamp in points]
        batched.put_columns(keys, values, stamps)
        for key, value, timestamp in points:
            single.put(key, value, timestamp)
            model.put(key, value, timestamp)
    assert batched.keys() == single.keys() == model.order
    assert len(batched) == len(single) == len(model)
    for (key, stamps, values), (_, want_stamps, want_values) in zip(
        plain(batched.series("*")), model.series("*"), strict=True
    ):
        # Last write wins, to the bit (-0.0 is not 0.0).
        assert (key, stamps, bits(values)) == (key, want_stamps, bits(want_values))
    assert heard[0] == heard[1]


class StoreMachine(RuleBasedStateMachine):
    """Random puts against the model; snapshots must never change."""

    def __init__(self) -> None:
        super().__init__()
        self.store = MetricStore()
        self.model = Model()
        self.snapshots: list[tuple[list[Series], list[Plain]]] = []

    @rule(key=small_keys, value=floats, timestamp=small_timestamps)
    def put(self, key: str, value: float, timestamp: int) -> None:
        self.store.put(key, value, timestamp)
        self.model.put(key, value, timestamp)

    @rule(points=st.lists(st.tuples(small_keys, floats, small_timestamps), max_size=5))
    def put_many(self, points: list[tuple[str, float, int]]) -> None:
        self.store.put_many(points)
        for point in points:
            self.model.put(*point)

    @rule(key=small_keys | st.just("*"))
    def take_snapshot(self, key: str) -> None:
        self.snapshots.append((self.store.series(key), self.model.series(key)))

    @invariant()
    def matches_model(self) -> None:
        assert self.store.keys() == self.model.order
        assert len(self.store) == len(self.model)
        assert plain(self.store.series("*")) == self.model.series("*")

    @invariant()
    def snapshots_unchanged(self) -> None:
        for snapshot, expected in self.snapshots:
            assert plain(snapshot) == expected

    @invariant()
    def timestamps_strictly_ascending(self) -> None:
        for series in self.store.series("*"):
            timestamps = list(series.timestamps)
            assert all(a < b for a, b in pairwise(timestamps))


StoreMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30)
test_store_state_machine = StoreMachine.TestCase


def test_iter_series_copies_each_key_when_it_is_reached() -> None:
    store = MetricStore()
    store.put_many([("a", 1.0, 1), ("b", 2.0, 1)])
    lazy = store.iter_series("*")
    first = next(lazy)
    store.put("b", 3.0, 2)  # before "b" is reached: part of its copy
    store.put("c", 4.0, 1)  # stored after the call: not included
    store.put("a", 5.0, 2)  # after "a" was copied: not in its copy
    assert plain([first, *lazy]) == [("a", [1], [1.0]), ("b", [1, 2], [2.0, 3.0])]


async def test_list_keys_in_first_stored_order() -> None:
    store = MetricStore()
    await store.put_batch(["b", "a", "b"], [1.0, 2.0, 3.0], [10, 10, 11])
    assert await store.list_keys() == ["b", "a"]


# --- keys in sorted order, page by page ---------------------------------------


def _all_pages(store: MetricStore, prefix: str, limit: int) -> list[str]:
    found: list[str] = []
    while page := store.sorted_keys(prefix, found[-1] if found else "", limit):
        assert len(page) <= limit
        found += page
    return found


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.text("ab.é", min_size=1, max_size=6), max_size=300),
    st.text("ab.", max_size=3),
    st.integers(1, 7),
)
def test_sorted_keys_pages_through_the_keys_with_a_prefix(
    keys: list[str], prefix: str, limit: int
) -> None:
    store = MetricStore()
    store.put_columns(keys, [1.0] * len(keys), [1] * len(keys))
    expected = sorted(key for key in set(keys) if key.startswith(prefix))
    assert _all_pages(store, prefix, limit) == expected
    # "after" may be any string, stored or not.
    for after in ("", "a", "ab", "b.", "zz"):
        assert store.sorted_keys(prefix, after, 10_000) == [k for k in expected if k > after]


def test_sorted_keys_across_many_blocks_and_after_clear_and_restore() -> None:
    from array import array

    store = MetricStore()
    keys = [f"k{(i * 7919) % 5000:05d}" for i in range(5000)]  # every one, shuffled
    store.put_columns(keys, [0.5] * 5000, range(5000))
    assert _all_pages(store, "", 333) == sorted(keys)
    assert store.sorted_keys("k012", "", 1000) == [f"k012{d:02d}" for d in range(100)][:100]
    assert store.sorted_keys("k0499", "k04995", 10) == ["k04996", "k04997", "k04998", "k04999"]
    store.clear()
    assert store.sorted_keys() == []
    store.restore_series("b", array("q", [1]), array("d", [1.0]))
    store.restore_series("a", array("q", [1]), array("d", [1.0]))
    store.restore_series("b", array("q", [2]), array("d", [2.0]))
    assert store.sorted_keys() == ["a", "b"]
    with pytest.raises(ValueError, match="limit"):
        store.sorted_keys("", "", 0)


async def test_keys_with_prefix_is_the_store_interface() -> None:
    store = MetricStore()
    await store.put_batch(["web.b", "db.a", "web.a", "web"], [1.0] * 4, [1] * 4)
    assert await store.keys_with_prefix("web.", "", 10) == ["web.a", "web.b"]
    assert await store.keys_with_prefix("", "web.a", 10) == ["web.b"]
    assert await store.keys_with_prefix("", "", 2) == ["db.a", "web"]
