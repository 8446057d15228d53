"""Retention tiers with a data directory: recovery rebuilds the tiers of a store
that never stopped, whatever happened in between (compactions running beside
puts and roll-ups, restarts)."""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path

import hypothesis.strategies as st
import pytest
import trio
import trio.testing
from hypothesis import example, given, settings

from trio_metrics.storage import (
    LOG_MAGIC,
    DamagedFileError,
    DataDirStorage,
    RetentionRules,
    TieredStore,
    encode_batch,
    encode_deletion,
    encode_roll_up,
    encode_tier_state,
    log_path,
    open_storage,
    parse_retention,
    recover,
    resize_data_dir,
    snapshot_path,
    write_snapshot_file,
)
from trio_metrics.storage._blocks import Block, compress_block
from trio_metrics.storage._durable import DurableStore, open_durable_store
from trio_metrics.storage._log_format import snapshot_pieces

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


def blocks(store: TieredStore) -> dict[str, list[Block]]:
    """Each key's compressed blocks, bytes included."""
    found = {key: store.blocks_of(key) for key in store.keys()}  # noqa: SIM118 (a method)
    return {key: held for key, held in found.items() if held}


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
    alone.freeze(max_blocks=3)


puts = st.lists(
    st.tuples(st.sampled_from(KEYS), st.integers(-40, 0), st.integers(-100, 100)),
    min_size=1,
    max_size=8,
)
# A key's last 88 s at 2 s: enough for the coarsest tier to hold steps to compress.
history = st.sampled_from(KEYS).map(
    lambda key: [(key, offset, offset) for offset in range(-88, 1, 2)]
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("put"), puts),
        st.tuples(st.just("put"), history),
        st.tuples(st.just("tick"), st.integers(1, 25)),
        # Part of a round, as a crash in the middle of one leaves it.
        st.tuples(st.just("partial"), st.integers(1, 25)),
        st.tuples(st.just("compact"), puts),
        st.tuples(st.just("delete"), st.sampled_from(KEYS)),
        st.tuples(st.just("reopen"), st.just([])),
        # A compaction with nothing beside it, then a restart: the snapshot
        # alone must give back the blocks memory held.
        st.tuples(st.just("compact-reopen"), st.just([])),
    ),
    min_size=1,
    max_size=14,
)


# Found by CI: roll-up left "a" with blocks only (a step its xFilesFactor
# left empty took the last points); a put then, and a restart then, failed.
_BLOCKS_ONLY = [
    ("tick", 6),
    ("tick", 25),
    ("put", [("a", 0, 0)]),
    ("put", [("a", offset, offset) for offset in range(-88, 1, 2)]),
    ("tick", 19),
    ("compact", [("b", 0, 0), ("a", 0, 0)]),
    ("tick", 25),
]


@settings(max_examples=120, deadline=None)
@example(steps=[*_BLOCKS_ONLY, ("put", [("a", 0, 0)])])
@example(steps=[*_BLOCKS_ONLY, ("compact-reopen", [])])
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
    reopened = False  # a recovered store holds no blocks made after its snapshot
    alone = tiered(clock)  # the same operations, no data directory: the model
    steps = [*steps, ("reopen", [])]
    index = 0
    held_blocks: dict[str, list[Block]] | None = None
    while index < len(steps):
        memory = tiered(clock)
        async with open_durable_store(directory, fsync="never", memory=memory) as durable:
            durable.snapshot_piece_bytes = 1  # a piece per key: other tasks run between keys
            assert state(memory) == state(alone), "recovered state differs"
            if held_blocks is not None:
                assert blocks(memory) == held_blocks, "recovered blocks differ"
                held_blocks = None
            while index < len(steps):
                kind, argument = steps[index]
                index += 1
                if kind == "reopen":
                    reopened = True
                    break
                if kind == "compact-reopen":
                    await durable.compact()
                    held_blocks = blocks(memory)
                    # Frozen in step with the store, the model holds the same blocks.
                    if not reopened:
                        assert held_blocks == blocks(alone)
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


BLOCK_RULE = "1m:10m,2m:7d"
MINUTE, DAY = 60, 86400


async def _store_with_blocks(directory: Path, clock: Clock) -> TieredStore:
    """A week of one-decimal gauges a minute apart for three keys, rolled
    up into two-minute averages and compressed (three blocks of 1,024 steps a
    key), logged in ``directory``."""
    memory = TieredStore(RetentionRules(default=parse_retention(BLOCK_RULE)), clock=clock)
    async with open_durable_store(directory, fsync="never", memory=memory) as durable:
        stamps = range(clock.now - 7 * DAY + MINUTE, clock.now, MINUTE)
        for number, key in enumerate(KEYS):
            values = [round(20 + number + (stamp // MINUTE % 97) / 10, 1) for stamp in stamps]
            await durable.put_batch([key] * len(stamps), values, list(stamps))
        while True:
            due, wrapped = memory.due_roll_ups()
            await durable.roll_up(due)
            if wrapped and not due:
                break
        while memory.freeze(max_blocks=100):
            pass
        assert all(len(memory.blocks_of(key)) == 3 for key in KEYS)
        await durable.compact()
    return memory


def snapshot_size(directory: Path) -> int:
    return next(directory.glob("snapshot.*")).stat().st_size


def write_points_only(directory: Path, memory: TieredStore) -> None:
    """A data directory as the writer before blocks made it: each key's whole
    series (its blocks decompressed), then its tier state."""
    directory.mkdir()
    with open(snapshot_path(directory, 2), "wb") as file:
        for piece in snapshot_pieces(
            memory.iter_series("*"),
            after_key=lambda key: encode_tier_state(key, 2, 0, memory.floors_of(key) or ()),
        ):
            file.write(b"".join(piece))
    with open(log_path(directory, 2), "wb") as segment:
        segment.write(LOG_MAGIC)


async def test_a_snapshot_holds_the_compressed_blocks_as_memory_held_them(tmp_path: Path) -> None:
    clock = Clock(1_800_000_000)
    memory = await _store_with_blocks(tmp_path, clock)
    held = sum(len(series.timestamps) for series in memory.series("*"))
    compressed_points, compressed_bytes = memory.compressed()
    snapshot = snapshot_size(tmp_path)
    # 16 bytes a point outside the blocks, the blocks' own bytes, and headers
    # (the compressed points alone would take 16 bytes each otherwise).
    records = len(KEYS) * 5
    assert snapshot <= 16 * (held - compressed_points) + compressed_bytes + 64 * records
    assert compressed_bytes < 3 * compressed_points

    recovered = TieredStore(RetentionRules(default=parse_retention(BLOCK_RULE)), clock=clock)
    recover(tmp_path, store=recovered)
    assert blocks(recovered) == blocks(memory)
    assert state(recovered) == state(memory)
    assert recovered.compressed() == memory.compressed()
    assert len(recovered) == len(memory)
    # Nothing left to compress: the blocks came back as blocks.
    assert recovered.freeze(max_blocks=100) == 0

    # A store without rules (a server started without them, resize) gets the points.
    plain = recover(tmp_path).store
    assert [(s.key, list(s.timestamps), list(s.values)) for s in plain.series("*")] == [
        (s.key, list(s.timestamps), list(s.values)) for s in memory.series("*")
    ]


async def test_a_snapshot_of_points_only_as_written_before_blocks_still_recovers(
    tmp_path: Path,
) -> None:
    """A data directory written before snapshots held blocks: every point as
    a series record. Recovery reads it, and the roll-up task compresses the
    same blocks again."""
    clock = Clock(1_800_000_000)
    memory = await _store_with_blocks(tmp_path / "new", clock)
    old = tmp_path / "old"
    write_points_only(old, memory)
    recovered = TieredStore(RetentionRules(default=parse_retention(BLOCK_RULE)), clock=clock)
    recover(old, store=recovered)
    assert state(recovered) == state(memory)
    assert blocks(recovered) == {}
    while recovered.freeze(max_blocks=100):
        pass
    assert blocks(recovered) == blocks(memory)


async def test_a_crash_at_any_step_of_a_compaction_with_blocks_recovers(tmp_path: Path) -> None:
    """The directory copied after each step of a compaction (the state a
    kill -9 there leaves) recovers the same tiers and blocks."""
    clock = Clock(1_800_000_000)
    data = tmp_path / "data"
    memory = await _store_with_blocks(data, clock)
    copies: list[tuple[str, Path]] = []

    def copy_at(step: str) -> None:
        copy = tmp_path / f"copy{len(copies)}"
        shutil.copytree(data, copy, ignore=shutil.ignore_patterns("LOCK"))
        copies.append((step, copy))

    reopened = TieredStore(RetentionRules(default=parse_retention(BLOCK_RULE)), clock=clock)
    async with open_durable_store(data, fsync="never", memory=reopened) as durable:
        durable.compaction_step_hook = copy_at
        await durable.put_batch(["a"], [1.5], [clock.now])
        await durable.compact()
    assert [step for step, _ in copies] == [
        "rotated",
        "snapshot written",
        "snapshot renamed",
        "old files removed",
    ]
    want_blocks = blocks(memory)
    want_state = state(reopened)
    for step, copy in copies:
        recovered = TieredStore(RetentionRules(default=parse_retention(BLOCK_RULE)), clock=clock)
        recover(copy, store=recovered)
        assert state(recovered) == want_state, step
        assert blocks(recovered) == want_blocks, step


def directory_bytes(directory: Path) -> int:
    """Bytes of the data directory's files (the lock aside)."""
    return sum(path.stat().st_size for path in directory.iterdir() if path.name != "LOCK")


async def test_the_data_directory_stops_growing_once_the_horizon_is_passed(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Steady traffic under ``1s:10s,5s:60s``, with the rules' clock following
    it: after a compaction, the directory holds the rules' points and no more,
    so once the 60 s horizon is passed its size levels off."""
    clock = Clock(1_800_000_000)
    rules = RetentionRules(default=parse_retention("1s:10s,5s:60s"))
    storage = DataDirStorage(tmp_path, fsync="never", compact_min_bytes=0)
    sizes: dict[int, int] = {}
    async with open_storage(storage, rules, clock=clock) as opened:
        store = opened.store
        assert isinstance(store, DurableStore)
        for second in range(1, 301):
            clock.now += 1
            await store.put_batch(list(KEYS), [float(second % 7)] * 3, [clock.now] * 3)
            await trio.sleep(1)  # a round of roll-up (the trio clock jumps)
            if second % 20 == 0:
                await store.compact()
                sizes[second] = await trio.to_thread.run_sync(directory_bytes, tmp_path)
    # Growing up to the horizon ...
    assert sizes[20] < sizes[40] < sizes[60]
    # ... then level: three keys of 10 points and 12 or 13 steps, whatever the time.
    late = [size for second, size in sizes.items() if second >= 100]
    assert max(late) - min(late) <= 3 * 16 * 2, sizes
    assert max(late) < 3 * 30 * 16 + 2000, sizes


def write_snapshot(
    directory: Path,
    entries: list[tuple[str, list[int], list[float]]],
    blocks: dict[str, list[Block]],
) -> None:
    """A snapshot of ``entries`` with ``blocks`` (any order the test wants), and an empty log."""
    directory.mkdir(exist_ok=True)
    with open(snapshot_path(directory, 2), "wb") as file:
        for piece in snapshot_pieces(entries, blocks_of=lambda key: blocks.get(key, [])):
            file.write(b"".join(piece))
    with open(log_path(directory, 2), "wb") as segment:
        segment.write(LOG_MAGIC)


def test_a_key_with_only_blocks_recovers_them_as_blocks(
    tmp_path: Path,
) -> None:
    """Roll-up can leave a key with blocks only (a step the xFilesFactor
    leaves empty takes the last points with it): recovery gives back the
    same, and a snapshot that holds only blocks for a key recovers all its
    points, into either store."""
    old = compress_block([1, 2], [1.5, 2.5])
    new = compress_block([3, 4], [3.5, 4.5])
    write_snapshot(tmp_path, [("a", [], [])], {"a": [old, new]})
    tiered_store = TieredStore(RetentionRules(default=parse_retention(RULE)))
    recover(tmp_path, store=tiered_store)
    assert tiered_store.blocks_of("a") == [old, new]
    # A put after it lands behind the blocks.
    tiered_store.store_admitted(["a"], [5.5], [5])
    assert [(s.key, list(s.timestamps), list(s.values)) for s in tiered_store.series("a")] == [
        ("a", [1, 2, 3, 4, 5], [1.5, 2.5, 3.5, 4.5, 5.5])
    ]
    assert len(tiered_store) == 5
    plain = recover(tmp_path).store
    assert [list(s.timestamps) for s in plain.series("a")] == [[1, 2, 3, 4]]


def test_blocks_out_of_order_or_after_their_series_are_damage(tmp_path: Path) -> None:
    early = compress_block([1, 2], [1.0, 2.0])
    late = compress_block([3, 4], [3.0, 4.0])
    write_snapshot(tmp_path / "order", [("a", [5], [5.0])], {"a": [late, early]})
    with pytest.raises(DamagedFileError, match="out of order"):
        recover(
            tmp_path / "order", store=TieredStore(RetentionRules(default=parse_retention(RULE)))
        )
    write_snapshot(tmp_path / "overlap", [("a", [4], [5.0])], {"a": [early, late]})
    with pytest.raises(DamagedFileError, match="overlaps its blocks"):
        recover(tmp_path / "overlap")


async def test_resize_reads_the_points_of_a_snapshot_holding_blocks(tmp_path: Path) -> None:
    """resize recovers into a store without rules: the blocks' points are read
    like the others, and the new snapshot holds every step again."""
    clock = Clock(1_800_000_000)
    memory = await _store_with_blocks(tmp_path, clock)
    report = await trio.to_thread.run_sync(
        functools.partial(
            resize_data_dir,
            tmp_path,
            RetentionRules(default=parse_retention(BLOCK_RULE)),
            now=clock.now,
        )
    )
    assert report.points_before == report.points_after == len(memory)
    resized = recover(tmp_path).store
    assert [(s.key, list(s.timestamps), list(s.values)) for s in resized.series("*")] == [
        (s.key, list(s.timestamps), list(s.values)) for s in memory.series("*")
    ]
