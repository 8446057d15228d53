"""Graphite's find and fetch over a real in-memory store: the node-by-node walk of the
key index against a regular-expression model, and the step and slot rules."""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_metrics.query import (
    FetchBudget,
    FetchLimitError,
    FindLimitError,
    Node,
    fetch_series,
    find_nodes,
)
from trio_metrics.query._fetch import DEFAULT_STEP, step_of
from trio_metrics.storage import (
    Aggregation,
    MetricStore,
    RetentionPolicy,
    RetentionRules,
    TieredStore,
    parse_retention,
)
from trio_metrics.wire import GlobError


def store_of(*keys: str) -> MetricStore:
    store = MetricStore()
    for key in keys:
        store.put(key, 1.0, 10)
    return store


def find(store: MetricStore, pattern: str, **options: object) -> list[Node]:
    async def main() -> list[Node]:
        return await find_nodes(store, pattern, **options)  # type: ignore[arg-type]

    return trio.run(main)


# --- find: examples -------------------------------------------------------------

TREE = ("p.a", "p.a-x", "p.a-x.q", "p.a.b", "p.a.c.d", "p.b.c", "q", "x.y.z")


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        # "p.a" is a leaf and a branch; "p.a-x" sorts between "p.a" and "p.a.b".
        ("p.*", [("p.a", False), ("p.a", True), ("p.a-x", False), ("p.a-x", True), ("p.b", False)]),
        ("*", [("p", False), ("q", True), ("x", False)]),
        ("p.{a,b}", [("p.a", False), ("p.a", True), ("p.b", False)]),
        ("p.a.*", [("p.a.b", True), ("p.a.c", False)]),
        (
            "*.*.*",
            [
                ("p.a-x.q", True),
                ("p.a.b", True),
                ("p.a.c", False),
                ("p.b.c", True),
                ("x.y.z", True),
            ],
        ),
        ("p.[!a].c", [("p.b.c", True)]),
        ("p.a?x.q", [("p.a-x.q", True)]),
        ("p.a-x.q", [("p.a-x.q", True)]),
        ("nope.*", []),
        ("p.a.b.*", []),
    ],
)
def test_find_examples(pattern: str, expected: list[tuple[str, bool]]) -> None:
    found = find(store_of(*TREE), pattern)
    assert [(node.path, node.is_leaf) for node in found] == expected


def test_leaves_only_leaves_out_branches() -> None:
    found = find(store_of(*TREE), "p.*", leaves_only=True)
    assert [node.path for node in found] == ["p.a", "p.a-x"]
    assert all(node.is_leaf for node in found)


def test_a_bad_glob_is_refused_before_any_lookup() -> None:
    with pytest.raises(GlobError):
        find(store_of(*TREE), "p.{a")


def test_a_walk_over_its_node_limit_is_refused() -> None:
    store = store_of(*(f"h{i}.cpu" for i in range(50)))
    assert len(find(store, "*.cpu", max_nodes=100)) == 50
    with pytest.raises(FindLimitError, match="over 20 nodes"):
        find(store, "*.cpu", max_nodes=20)


def test_a_branch_with_many_children_costs_one_lookup_to_pass() -> None:
    """The walk skips a branch's keys with one bisection: it never reads them."""
    store = store_of(*(f"big.k{i}" for i in range(5000)), "small.k")
    pages: list[tuple[str, str]] = []
    original = store.keys_with_prefix

    async def counting(prefix: str, after: str, limit: int) -> list[str]:
        pages.append((prefix, after))
        return await original(prefix, after, limit)

    store.keys_with_prefix = counting  # type: ignore[method-assign]
    assert [node.path for node in find(store, "*")] == ["big", "small"]
    assert len(pages) <= 2


# --- find: against a model --------------------------------------------------------


def glob_regex(node_pattern: str) -> str:
    """A regular expression for one node of a graphite glob."""
    out = []
    index = 0
    while index < len(node_pattern):
        char = node_pattern[index]
        if char == "*":
            out.append("[^.]*")
        elif char == "?":
            out.append("[^.]")
        elif char == "[":
            end = node_pattern.index("]", index + 2)
            body = node_pattern[index + 1 : end]
            negated = body.startswith("!")
            members = body[1:] if negated else body
            out.append("[" + ("^" if negated else "") + members + "]")
            index = end
        elif char == "{":
            end = node_pattern.index("}", index)
            choices = node_pattern[index + 1 : end].split(",")
            out.append("(?:" + "|".join(glob_regex(choice) for choice in choices) + ")")
            index = end
        else:
            out.append(re.escape(char))
        index += 1
    return "".join(out)


def model_find(keys: set[str], pattern: str) -> list[tuple[str, bool]]:
    """Every (path, is_leaf) that a whisper tree of ``keys`` would answer ``pattern`` with."""
    nodes = pattern.split(".")
    regex = re.compile(r"\.".join(glob_regex(node) for node in nodes))
    found: set[tuple[str, bool]] = set()
    for key in keys:
        parts = key.split(".")
        if len(parts) >= len(nodes):
            path = ".".join(parts[: len(nodes)])
            if regex.fullmatch(path):
                found.add((path, len(parts) == len(nodes)))
    return sorted(found)


_NAMES = st.text(alphabet="ab-", min_size=1, max_size=3)
_KEYS = st.lists(_NAMES, min_size=1, max_size=4).map(".".join)
_NODE_PIECES = st.sampled_from(["a", "b", "-", "*", "?", "[ab]", "[!a]", "{a,b-}", "{b,}"])
_NODE_PATTERNS = st.lists(_NODE_PIECES, min_size=1, max_size=3).map("".join)
_PATTERNS = st.lists(_NODE_PATTERNS, min_size=1, max_size=3).map(".".join)


@settings(max_examples=300, deadline=None)
@given(keys=st.sets(_KEYS, min_size=1, max_size=40), pattern=_PATTERNS)
def test_find_answers_what_the_model_does(keys: set[str], pattern: str) -> None:
    found = find(store_of(*keys), pattern)
    assert [(node.path, node.is_leaf) for node in found] == model_find(keys, pattern)


# --- fetch: steps and slots -------------------------------------------------------


def fetch(store: MetricStore, pattern: str, start: int, end: int, **options: object) -> list:  # type: ignore[type-arg]
    async def main() -> list:  # type: ignore[type-arg]
        return await fetch_series(store, pattern, start, end, **options)  # type: ignore[arg-type]

    return trio.run(main)


@pytest.mark.parametrize(
    ("stamps", "step"),
    [
        ([], DEFAULT_STEP),
        ([100], DEFAULT_STEP),
        ([0, 10, 20, 30], 10),
        ([0, 10, 20, 21, 30, 40], 10),  # one early point does not shrink the step
        ([0, 60, 120, 130], 60),
        ([5, 6], 1),
    ],
)
def test_the_step_is_the_lower_median_gap(stamps: list[int], step: int) -> None:
    assert step_of(np.array(stamps, dtype=np.int64)) == step


def test_points_land_in_whisper_slots_the_last_one_winning() -> None:
    store = MetricStore()
    for timestamp, value in [(10, 1.0), (20, 2.0), (35, 3.0), (39, 4.0), (70, 7.0)]:
        store.put("a.b", value, timestamp)
    (series,) = fetch(store, "a.b", 5, 55)
    # gaps 10, 15, 4 in range: the lower median is 10; 70 is past the range.
    assert (series.name, series.path_expression, series.start, series.step) == ("a.b", "a.b", 0, 10)
    assert series.end == 60
    assert [None if math.isnan(v) else v for v in series.values] == [
        None,
        1.0,
        2.0,
        4.0,
        None,
        None,
    ]


def test_a_glob_fetches_each_matching_key_sorted_with_the_pattern_as_given() -> None:
    store = MetricStore()
    for key in ["h2.cpu", "h1.cpu", "h1.mem", "h1.cpu.user"]:
        for timestamp in range(0, 100, 10):
            store.put(key, float(timestamp), timestamp)
    found = fetch(store, "h*.cpu", 0, 99)
    assert [(s.name, s.path_expression) for s in found] == [
        ("h1.cpu", "h*.cpu"),
        ("h2.cpu", "h*.cpu"),
    ]
    assert all(len(s.values) == 10 and s.end == 100 for s in found)


def test_a_key_without_points_in_range_is_a_series_of_gaps() -> None:
    store = MetricStore()
    store.put("a", 1.0, 1000)
    (series,) = fetch(store, "a", 0, 300)
    assert series.step == DEFAULT_STEP
    assert series.start == 0 and series.end == 360
    assert np.isnan(series.values).all()


def test_the_budget_bounds_series_and_slots_over_a_request() -> None:
    store = MetricStore()
    for host in range(5):
        store.put(f"h{host}.cpu", 1.0, 0)
        store.put(f"h{host}.cpu", 2.0, 1)
    with pytest.raises(FetchLimitError, match="over 4 series"):
        fetch(store, "*.cpu", 0, 10, budget=FetchBudget(max_series=4))
    with pytest.raises(FetchLimitError, match="over 50 points"):
        # step 1 over 0..10: 11 slots a series, 55 in all.
        fetch(store, "*.cpu", 0, 10, budget=FetchBudget(max_points=50))
    assert len(fetch(store, "*.cpu", 0, 10, budget=FetchBudget(max_points=55))) == 5


def test_regular_points_off_the_slot_boundaries_each_keep_their_slot() -> None:
    store = MetricStore()
    for timestamp in (105, 115, 125):
        store.put("a", float(timestamp), timestamp)
    (series,) = fetch(store, "a", 100, 140)
    assert (series.start, series.step) == (100, 10)
    assert [None if math.isnan(v) else v for v in series.values] == [
        105.0,
        115.0,
        125.0,
        None,
        None,
    ]


@settings(max_examples=200, deadline=None)
@given(
    points=st.dictionaries(st.integers(0, 400), st.floats(-1e6, 1e6), min_size=1, max_size=60),
    start=st.integers(0, 200),
    length=st.integers(0, 300),
)
def test_fetch_matches_a_direct_computation(
    points: dict[int, float], start: int, length: int
) -> None:
    """Slot by slot, against the rule written out plainly: the points in range, the
    lower median gap, whisper's slots, the last point of a slot wins."""
    store = MetricStore()
    for timestamp, value in sorted(points.items()):
        store.put("k", value, timestamp)
    end = start + length
    (series,) = fetch(store, "k", start, end)
    inside = sorted(stamp for stamp in points if start <= stamp <= end)
    gaps = sorted(b - a for a, b in itertools.pairwise(inside))
    step = max(1, gaps[(len(gaps) - 1) // 2]) if gaps else DEFAULT_STEP
    first = start - start % step
    expected: dict[int, float] = {}
    for stamp in inside:
        expected[stamp - stamp % step] = points[stamp]
    slots = range(first, end - end % step + 1, step)
    assert (series.start, series.step, series.end) == (first, step, slots[-1] + step)
    got = [None if math.isnan(v) else v for v in series.values]
    assert got == [expected.get(slot) for slot in slots]


def test_a_range_in_a_rolled_up_tier_takes_that_tiers_step() -> None:
    """Retention 1s:10s,5s:30s,15s:90s at t=1000: from 931 only the 15 s tier reaches back."""
    clock_now = 1000
    rules = RetentionRules(default=parse_retention("1s:10s,5s:30s,15s:90s"))
    store = TieredStore(rules, clock=lambda: float(clock_now))
    policy = RetentionPolicy(parse_retention("1s:10s,5s:30s,15s:90s"), Aggregation("average", 0.5))
    store.policy_for = lambda key: policy  # type: ignore[method-assign]
    stamps = list(range(930, 1000))
    store.put_columns(["k"] * len(stamps), [float(s) for s in stamps], stamps)
    while not store.roll_up(keys_per_step=3)[1]:
        pass
    (old,) = fetch(store, "k", 931, 999)
    assert (old.start, old.step, old.end) == (930, 15, 1005)
    # Each 15 s step averages the seconds it holds (the last one, 990..999, ten of them).
    assert list(old.values) == [937.0, 952.0, 967.0, 982.0, 994.5]
    (recent,) = fetch(store, "k", 995, 999)
    assert (recent.start, recent.step) == (995, 1)
    assert list(recent.values) == [995.0, 996.0, 997.0, 998.0, 999.0]
