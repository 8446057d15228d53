"""The load generator's bookkeeping: warm-up requests built late match those built early,
what a warm-up stored is known exactly, and the fixed-rate schedule keeps its rate."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import loadgen
import openloop
from loadgen import ConnectionPlan


@pytest.mark.parametrize(
    "plan",
    [
        ConnectionPlan(("a",), 30),
        ConnectionPlan(("a", "b", "c"), 20, batch=4),
        ConnectionPlan(("a",), 40, batch=10, overwrite=False),
    ],
)
def test_requests_built_when_due_are_those_built_in_advance(plan: ConnectionPlan) -> None:
    for index, pair in enumerate(plan.requests()):
        assert loadgen.request_at(plan, index) == pair


def test_warm_up_plans_are_whole_batches_on_their_own_keys() -> None:
    plans = [ConnectionPlan((f"k{i}",), 1000, batch=1000) for i in range(4)]
    for warm in loadgen.warm_up_plans(plans, 0.01):
        assert warm.keys[0].endswith(loadgen.WARM_SUFFIX)
        assert warm.puts % warm.batch == 0 and warm.puts > 0
    assert loadgen.warm_up_plans(plans, 0) == []


def test_warm_pairs_go_on_past_those_built_in_advance() -> None:
    (warm,) = loadgen.warm_up_plans([ConnectionPlan(("k",), 10)], 0.0001)
    pairs = loadgen._WarmPairs(warm)
    built = len(warm.requests())
    assert len(pairs) == built * loadgen.WARM_LIMIT
    longer = ConnectionPlan(warm.keys, warm.puts_per_key * 3)
    for index in range(built * 3):
        assert pairs[index] == longer.requests()[index]


@pytest.mark.parametrize(("requests", "expected"), [(0, [0, 0]), (1, [2, 1]), (3, [5, 4])])
def test_stored_by_counts_round_robin_puts_per_key(requests: int, expected: list[int]) -> None:
    plan = ConnectionPlan(("a", "b"), 100, batch=3)
    stored = loadgen.stored_by(plan, requests)
    assert [p.keys for p in stored] == [("a",), ("b",)]
    assert [p.puts_per_key for p in stored] == expected


def test_schedule_interleaves_connections_evenly_at_the_rate() -> None:
    schedule = openloop.schedule_for(2000, 4, warmup=0.5, seconds=1.0)
    assert (schedule.warm, schedule.timed) == (250, 500)
    assert schedule.warm_seconds == pytest.approx(0.5)
    due = sorted(schedule.due(0.0, c, k) for c in range(schedule.connections) for k in range(3))
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(due)}
    assert gaps == {round(1 / 2000, 9)}
    # The first timed request of every connection is due at or after the warm-up's end.
    assert min(schedule.due(0.0, c, schedule.warm) for c in range(4)) == pytest.approx(0.5)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert openloop.percentile(values, 0.5) == 50
    assert openloop.percentile(values, 0.99) == 99
    assert openloop.percentile([7.0], 0.99) == 7
