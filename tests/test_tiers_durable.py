"""Retention tiers with a data directory: recovery rebuilds the tiers of a store
that never stopped, whatever happened in between (compactions running beside
puts and roll-ups, restarts)."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import hypothesis.strategies as st
import trio
from hypothesis import given, settings

from trio_metrics.storage import (
    LOG_MAGIC,
    RetentionRules,
    TieredStore,
    encode_batch,
    encode_deletion,
    encode_roll_up,
    log_path,
    parse_retention,
    recover,
    snapshot_path,
    write_snapshot_file,
)
from trio_metrics.storage._durable import DurableStore, open_durable_store

RULE = "2s:10s,10s:30s,30s:90s"
KEYS = ("a", "b", "c")


class Clock:
    """A settable unix clock."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> float:
        return float(self.now)


def tiered(clock: Clock) -> TieredStore:
    store = TieredStore(RetentionRules(default=parse_retention(RULE)), clock=clock)
    store.block_points = 2  # compressed blocks on these few points too
    return store


def state(store: TieredStore) -> dict[str, tuple[list[int], list[float], list[int] | None]]:
    """Everything recovery must rebuild: each key's visible points and floors."""
    found = {}
    for series in store.series("*"):
        found[series.key] = (
            list(series.timestamps),
            list(series.values),
            store.floors_of(series.key),
        )
    return found


async def roll_up_round(
    durable: DurableStore, memory: TieredStore, alone: TieredStore, steps: int = 100
) -> None:
    """A round over every key (or its first ``steps`` steps of one key each),
    logged by the durable store; the same roll-ups on the store without one."""
    for _ in range(steps):
        due, wrapped = memory.due_roll_ups(keys_per_step=1)
        await durable.roll_up(due)
        for key, floors in due:
            alone.roll_key_to(key, floors)
        if wrapped:
            break
    memory.freeze(max_blocks=3)


puts = st.lists(
    st.tuples(st.sampled_from(KEYS), st.integers(-40, 0), st.integers(-100, 100)),
    min_size=1,
    max_size=8,
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("put"), puts),
        st.tuples(st.just("tick"), st.integers(1, 25)),
        # Part of a round, as a crash in the middle of one leaves it.
        st.tuples(st.just("partial"), st.integers(1, 25)),
        st.tuples(st.just("compact"), puts),
        st.tuples(st.just("delete"), st.sampled_from(KEYS)),
        st.tuples(st.just("reopen"), st.just([])),
    ),
    min_size=1,
    max_size=14,
)


@settings(max_examples=120, deadline=None)
@given(steps=steps)
def test_recovery_rebuilds_the_tiers_of_a_store_that_never_stopped(
    steps: list[tuple[str, object]],
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        trio.run(_scenario, Path(directory), steps)


def _set_on(wanted: str, event: trio.Event, step: str) -> None:
    if step == wanted:
        event.set()


async def _scenario(directory: Path, steps: list[tuple[str, object]]) -> None:
    clock = Clock(1000)
    alone = tiered(clock)  # the same operations, no data directory: the model
    steps = [*steps, ("reopen", [])]
    index = 0
    while index < len(steps):
        memory = tiered(clock)
        async with open_durable_store(directory, fsync="never", memory=memory) as durable:
            durable.snapshot_piece_bytes = 1  # a piece per key: other tasks run between keys
            assert state(memory) == state(alone), "recovered state differs"
            while index < len(steps):
                kind, argument = steps[index]
                index += 1
                if kind == "reopen":
                    break
                if kind == "delete":
                    assert isinstance(argument, str)
                    await durable.delete([argument])
                    alone.delete_keys([argument])
                    continue
                if kind in ("tick", "partial"):
                    assert isinstance(argument, int)
                    clock.now += argument
                    await roll_up_round(durable, memory, alone, 1 if kind == "partial" else 100)
                    continue
                assert isinstance(argument, list)
                keys = [key for key, _, _ in argument]
                values = [float(value) for _, _, value in argument]
                stamps = [clock.now + offset for _, offset, _ in argument]
                if kind == "put":
                    await durable.put_batch(keys, values, stamps)
                else:
                    # A compaction copying keys while puts and a roll-up go on,
                    # logged in the segment that the snapshot starts.
                    rotated = trio.Event()
                    durable.compaction_step_hook = functools.partial(_set_on, "rotated", rotated)
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(durable.compact)
                        await rotated.wait()
                        await durable.put_batch(keys, values, stamps)
                        alone.put_columns(keys, values, stamps)
                        await durable.delete([keys[0]])
                        alone.delete_keys([keys[0]])
                        await durable.put_batch(keys, values, stamps)
                        alone.put_columns(keys, values, stamps)
                        clock.now += 5
                        await roll_up_round(durable, memory, alone)
                    continue
                alone.put_columns(keys, values, stamps)
                assert state(memory) == state(alone)
    assert state(memory) == state(alone)


def test_replay_skips_what_a_snapshot_copy_holds_deletes_included(tmp_path: Path) -> None:
    """Segment 2 holds put a, delete a, put a; the snapshot's copy of a was taken
    after all three. Replaying the delete alone (its puts skipped) would lose a."""
    clock = Clock(1000)
    copied = tiered(clock)
    copied.put_columns(["a", "b"], [1.0, 2.0], [1000, 1000])
    write_snapshot_file(snapshot_path(tmp_path, 2), copied, {"a": (2, 3), "b": (2, 0)})
    with open(log_path(tmp_path, 2), "wb") as segment:
        segment.write(LOG_MAGIC)
        segment.write(encode_batch(["a"], [1.0], [1000]))
        segment.write(encode_deletion(["a"]))
        segment.write(encode_batch(["a"], [1.0], [1000]))
        segment.write(encode_deletion(["b"]))  # after b's copy: replayed
    recovered = tiered(clock)
    recover(tmp_path, store=recovered)
    assert state(recovered) == {"a": ([1000], [1.0], None)}


def test_replay_skips_a_roll_up_that_a_snapshot_copy_holds(tmp_path: Path) -> None:
    """Segment 2: roll a up, delete a, put an old point of a; a's copy was taken
    after all three, with no floors. Replaying the roll-up would roll that point."""
    clock = Clock(1000)
    copied = tiered(clock)
    copied.put_columns(["a"], [5.0], [975])  # below the finest floor of 990, not rolled
    write_snapshot_file(snapshot_path(tmp_path, 2), copied, {"a": (2, 3)})
    with open(log_path(tmp_path, 2), "wb") as segment:
        segment.write(LOG_MAGIC)
        segment.write(encode_roll_up("a", [990, 960, 900]))
        segment.write(encode_deletion(["a"]))
        segment.write(encode_batch(["a"], [5.0], [975]))
    recovered = tiered(clock)
    recover(tmp_path, store=recovered)
    assert state(recovered) == {"a": ([975], [5.0], None)}
