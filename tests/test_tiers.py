"""Retention tiers: the cascade of steps a key keeps, against a simple model."""

from __future__ import annotations

import math
from array import array

import hypothesis.strategies as st
from hypothesis import given, settings
from test_blocks import hourly_averages_of_minute_averages

from trio_metrics.storage import (
    Aggregation,
    RetentionPolicy,
    RetentionRules,
    TieredStore,
    parse_retention,
)

# Three tiers on small numbers, so that examples cross every boundary.
RULE = "1s:10s,5s:30s,15s:90s"
# For the model: a finest step of 2 s, so that points share its slots.
MODEL_RULE = "2s:10s,10s:30s,30s:90s"
STEPS = (2, 10, 30)
SPANS = (10, 30, 90)


class Clock:
    """A settable unix clock."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> float:
        return float(self.now)


def store_with(
    rule: str, clock: Clock, method: str = "average", factor: float = 0.5
) -> TieredStore:
    rules = RetentionRules(default=parse_retention(rule))
    store = TieredStore(rules, clock=clock)
    # One aggregation for every key, as a storage-aggregation section would give.
    policy = RetentionPolicy(parse_retention(rule), Aggregation(method, factor))
    store.policy_for = lambda key: policy  # type: ignore[method-assign]
    return store


def roll_all(store: TieredStore, points_per_step: int = 4096) -> None:
    """Roll up until no key has anything left to roll, then compress what may be."""
    changed_in_round = 0
    while True:
        changed, wrapped = store.roll_up(keys_per_step=3, points_per_step=points_per_step)
        changed_in_round += changed
        if wrapped:
            if not changed_in_round:
                break
            changed_in_round = 0
    while store.freeze(max_blocks=2):
        pass


def visible(store: TieredStore, key: str) -> list[tuple[int, float]]:
    found = store.series(key)
    return list(zip(found[0].timestamps, found[0].values, strict=True)) if found else []


# --- the model: whisper's arithmetic written out plainly --------------------


def model_aggregate(method: str, known: list[float], slots: int) -> float:
    if method == "average":
        return sum(known) / len(known)
    if method == "sum":
        return sum(known)
    if method == "last":
        return known[-1]
    if method == "max":
        return max(known)
    if method == "min":
        return min(known)
    if method == "avg_zero":
        return sum(known) / slots
    if method == "absmax":
        return max(known, key=abs)
    return min(known, key=abs)


def model_tier(
    finer: dict[int, float], finer_step: int, step: int, method: str, factor: float
) -> dict[int, float]:
    """Tier values on ``step`` from finer values (on ``finer_step`` slots, last one wins)."""
    slots: dict[int, float] = {}
    for stamp in sorted(finer):
        slots[stamp - stamp % finer_step] = finer[stamp]
    out: dict[int, float] = {}
    for start in sorted({slot - slot % step for slot in slots}):
        known = [slots[s] for s in range(start, start + step) if s in slots]
        if known and len(known) / (step // finer_step) >= factor:
            out[start] = model_aggregate(method, known, step // finer_step)
    return out


def model_visible(
    points: dict[int, float], now: int, method: str, factor: float
) -> list[tuple[int, float]]:
    """What the cascade should show at ``now``: each tier for the time it owns."""
    # Floors, from the documented rule: tier k begins where its span ends,
    # aligned down to the next tier's step; the last keeps steps that reach
    # into its span.
    f0 = (now - SPANS[0]) // STEPS[1] * STEPS[1]
    f1 = (now - SPANS[1]) // STEPS[2] * STEPS[2]
    f2 = math.ceil((now - SPANS[2] - STEPS[2] + 1) / STEPS[2]) * STEPS[2]
    tier1 = model_tier(points, STEPS[0], STEPS[1], method, factor)
    tier2 = model_tier(tier1, STEPS[1], STEPS[2], method, factor)
    shown = [(s, v) for s, v in tier2.items() if f2 <= s < f1]
    shown += [(s, v) for s, v in tier1.items() if f1 <= s < f0]
    shown += [(s, v) for s, v in points.items() if s >= f0]
    return sorted(shown)


methods = st.sampled_from(["average", "sum", "last", "max", "min", "avg_zero", "absmax", "absmin"])
values = st.floats(-1e6, 1e6, allow_nan=False).map(lambda v: float(round(v, 3)))


@settings(max_examples=300, deadline=None)
@given(
    puts=st.lists(st.tuples(st.integers(900, 1000), values), max_size=60),
    later=st.lists(st.integers(0, 150), min_size=1, max_size=3),
    # A small budget rolls a tier in several goes; the end is the same.
    budget=st.sampled_from([1, 2, 7, 4096]),
    method=methods,
    # 0.2, 0.4 and 1/3: exactly one or two of five slots, one of three.
    factor=st.sampled_from([0.0, 0.2, 0.4, 1 / 3, 0.5, 1.0]),
)
def test_any_puts_read_back_through_the_tiers_as_the_model(
    puts: list[tuple[int, float]], later: list[int], budget: int, method: str, factor: float
) -> None:
    clock = Clock(1000)
    store = store_with(MODEL_RULE, clock, method, factor)
    store.block_points = 2  # compressed blocks on these few points too
    store.put_columns(["k"] * len(puts), [v for _, v in puts], [t for t, _ in puts])
    model: dict[int, float] = {}
    for stamp, value in puts:
        if stamp >= 1000 - SPANS[-1]:
            model[stamp] = value
    assert store.expired_points == sum(1 for stamp, _ in puts if stamp < 1000 - SPANS[-1])
    # Rolling up at several times on the way equals rolling up once at the end.
    for step in sorted(later):
        clock.now = 1000 + step
        roll_all(store, budget)
    got = visible(store, "k")
    want = model_visible(model, clock.now, method, factor)
    assert [s for s, _ in got] == [s for s, _ in want]
    for (_, a), (_, b) in zip(got, want, strict=True):
        assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)


def test_expiry_is_to_the_second() -> None:
    clock = Clock(10_000)
    store = store_with("10s:1h", clock)
    store.put_columns(["a", "a", "a"], [1.0, 2.0, 3.0], [10_000 - 3600 - 1, 10_000 - 3600, 9_999])
    assert store.expired_points == 1
    assert visible(store, "a") == [(6400, 2.0), (9999, 3.0)]
    clock.now += 1
    roll_all(store)
    assert visible(store, "a") == [(9999, 3.0)]
    assert store.expired_steps == 1
    clock.now = 9999 + 3600
    roll_all(store)
    assert visible(store, "a") == [(9999, 3.0)]
    clock.now += 1
    roll_all(store)
    assert visible(store, "a") == []
    assert store.keys() == []


def test_a_late_put_overwrites_the_coarser_step_that_holds_its_time() -> None:
    clock = Clock(1000)
    store = store_with(RULE, clock)
    store.put_columns(["k"] * 5, [1.0, 2.0, 3.0, 4.0, 5.0], [975, 976, 977, 978, 979])
    roll_all(store)  # 975..979 is older than the finest tier's 10 s: one 5 s step
    assert visible(store, "k") == [(975, 3.0)]
    store.put_columns(["k"], [9.0], [977])  # as whisper: written into the tier that covers it
    assert visible(store, "k") == [(975, 9.0)]


def test_x_files_factor_leaves_a_thin_step_empty() -> None:
    clock = Clock(1000)
    store = store_with(RULE, clock, "sum", 0.5)
    # 970..974: two of five slots known (0.4 < 0.5); 975..979: three (0.6).
    store.put_columns(["k"] * 5, [1.0, 2.0, 3.0, 4.0, 5.0], [970, 972, 975, 976, 977])
    roll_all(store)
    assert visible(store, "k") == [(975, 12.0)]


def test_range_reads_pick_the_finest_tier_that_covers_the_range() -> None:
    clock = Clock(1000)
    store = store_with(RULE, clock)
    stamps = list(range(930, 1000))
    store.put_columns(["k"] * len(stamps), [float(s) for s in stamps], stamps)
    roll_all(store)
    recent = store.tier_between("k", 995, 1000)
    assert recent.step == 0 and recent.series is not None
    assert list(recent.series.timestamps) == [995, 996, 997, 998, 999]
    # From 980: only tier 1 (5 s) reaches back so far; the finest tier's
    # points are aggregated onto 5 s steps as they are read.
    middle = store.tier_between("k", 980, 1000)
    assert middle.step == 5 and middle.series is not None
    assert list(middle.series.timestamps) == [980, 985, 990, 995]
    assert list(middle.series.values) == [982.0, 987.0, 992.0, 997.0]
    old = store.tier_between("k", 931, 999)
    assert old.step == 15 and old.series is not None
    assert list(old.series.timestamps) == [930, 945, 960, 975, 990]
    assert list(old.series.values) == [937.0, 952.0, 967.0, 982.0, 994.5]


def test_keys_without_a_rule_keep_every_point() -> None:
    clock = Clock(1000)
    store = TieredStore(RetentionRules(), clock=clock)
    store.put_columns(["x"] * 3, [1.0, 2.0, 3.0], [1, 2, 3])
    clock.now = 10**9
    roll_all(store)
    assert visible(store, "x") == [(1, 1.0), (2, 2.0), (3, 3.0)]
    assert store.expired_points == 0


def test_changed_rules_keep_old_steps_until_the_new_horizon_passes_them() -> None:
    clock = Clock(100_000)
    before = store_with("1s:10s,5s:100s", clock, "max")
    stamps = list(range(100_000 - 60, 100_000))
    before.put_columns(["k"] * len(stamps), [float(s % 7) for s in stamps], stamps)
    roll_all(before)
    rolled = visible(before, "k")
    floors = before.floors_of("k")
    assert floors is not None and rolled[0][0] == 100_000 - 60  # 5 s steps from here
    # Restarted with three tiers and a shorter horizon: what was rolled stays as it
    # was, newer points follow the new rules, and the new horizon drops the oldest.
    after = store_with("1s:10s,10s:40s,20s:80s", clock, "max")
    series = before.series("k")[0]
    after.restore_series("k", array("q", series.timestamps), array("d", series.values))
    after.restore_floors("k", floors)
    assert after.floors_of("k") == [floors[0]] * 3
    roll_all(after)
    got = visible(after, "k")
    assert got[0][0] >= 100_000 - 80 - 19  # older than the new horizon: gone
    old_steps = [p for p in rolled if p[0] < floors[0] and p[0] >= got[0][0]]
    assert [p for p in got if p[0] < floors[0]] == old_steps  # kept as they were
    # Floors never move back: the coarser tiers begin where the old data ends.
    target = after.target_floors(store_policy(after), clock.now)
    assert after.floors_of("k") == [max(floors[0], floor) for floor in target]


def store_policy(store: TieredStore) -> RetentionPolicy:
    policy = store.policy_for("k")
    assert policy is not None
    return policy


def test_a_quiet_store_skips_its_rounds_until_a_floor_moves_or_keys_change() -> None:
    clock = Clock(1000)
    store = TieredStore(RetentionRules(default=parse_retention(RULE)), clock=clock)
    store.put_columns(["a", "b"], [1.0, 2.0], [999, 999])
    assert store.round_needed()  # new keys
    roll_all(store)
    assert not store.round_needed()  # nothing moved since
    clock.now += 1  # still inside the same 5 s step of tier 1
    assert not store.round_needed()
    clock.now = 1005  # the finest floor moves onto the next step
    assert store.round_needed()
    roll_all(store)
    assert not store.round_needed()
    store.put_columns(["c"], [3.0], [1005])  # a new key needs its first roll-up
    assert store.round_needed()
    roll_all(store)
    store.delete_keys(["a"])
    assert store.round_needed()


def test_a_lone_tier_is_looked_at_once_per_step() -> None:
    clock = Clock(10_000)
    store = TieredStore(RetentionRules(default=parse_retention("10s:1h")), clock=clock)
    store.put_columns(["a"], [1.0], [9_999])
    assert store.round_needed()
    roll_all(store)
    clock.now = 10_009  # its floor moved by 9 s, within the same 10 s step
    assert not store.round_needed()
    clock.now = 10_010
    assert store.round_needed()


def test_blocks_of_averages_of_averages_find_their_common_base() -> None:
    """Three tiers (1 s, 6 s, 6 min): the coarsest holds averages over 360
    slots. Values that pcodec alone compresses to about 6.5 bytes each (see
    tests/test_blocks.py) take under 3 in the store's blocks with averages,
    and stay as they are with ``max`` (which makes no averages)."""
    numbers = hourly_averages_of_minute_averages(0)
    rule = "1s:1m,6s:1h,6m:30d"
    sizes = {}
    for method in ("average", "max"):
        clock = Clock(1_800_000_000)
        store = store_with(rule, clock, method)
        store.put_columns(["k"], [1.0], [clock.now])
        roll_all(store)
        # Old steps land in the coarsest tier as put: 2,048 of them, 6 min apart.
        floor = store.floors_of("k")
        assert floor is not None
        first = floor[1] - 2048 * 360
        stamps = list(range(first, floor[1], 360))
        store.put_columns(["k"] * len(stamps), numbers + numbers, stamps)
        while store.freeze(max_blocks=4):
            pass
        blocks = store.blocks_of("k")
        assert [block.count for block in blocks] == [1024]
        assert list(blocks[0].decompress()[1]) == numbers
        sizes[method] = len(blocks[0].values) / 1024
    assert sizes["average"] < 3 < 5 < sizes["max"], sizes
