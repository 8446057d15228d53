"""Retention tiers: a :class:`MetricStore` that keeps each key within its rules.

Each key with a policy (see :mod:`._retention`) holds one visible series,
as every store does, laid out as a cascade, oldest first::

    [coarsest tier's steps] ... [tier 1's steps] [finest tier: the points as put]
     floors[n-1] <= t         floors[1] <= t < floors[0] <= t

``floors[k]`` is where tier ``k`` begins: the finest tier keeps points at
their own timestamps from ``floors[0]`` on; tier ``k >= 1`` holds one
aggregated value per step (at the step's start) from ``floors[k]`` up to
``floors[k - 1]``. So ``get`` answers the finest data there is for each
stretch of time, each timestamp once, with no change to how answers are
read or encoded.

:meth:`TieredStore.roll_up` moves the floors forward as the clock goes:
points older than the finest tier's span are aggregated into tier 1's
steps, tier 1's steps older than its span into tier 2's, and steps older
than the longest span are dropped. It works a bounded number of keys per
call, so a server runs it in small steps between other work.

A put older than the longest span is acknowledged, dropped and counted
(:attr:`TieredStore.expired_points`), as carbon does. A put into time
that a coarser tier already holds overwrites that tier's step, as whisper
writes a point into the finest archive that still covers it.

Range readers ask :meth:`TieredStore.tier_between` for the finest tier
that covers the whole range (whisper's rule); the steps of a coarser tier
for recent time are aggregated from the finer data as they are read.
"""

from __future__ import annotations

import time
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Awaitable, Callable, Generator, Iterable, Iterator, Sequence
from typing import Final

import attrs
import trio

from ._blocks import BLOCK_POINTS, Block, average_bases, compress_block, load_codec
from ._copy_budget import BYTES_PER_POINT, CopyBudget, NeedRoom, Taken
from ._retention import Retention, RetentionPolicy, RetentionRules
from ._store import MetricStore, Series, StoreUnavailableError, TierRange

__all__ = [
    "ROLL_UP_INTERVAL",
    "ROLL_UP_KEYS_PER_STEP",
    "ROLL_UP_POINTS_PER_STEP",
    "RollUpFigures",
    "TieredStore",
    "aggregate_method",
    "aggregate_steps",
    "roll_up_forever",
]

#: Keys :meth:`TieredStore.roll_up` looks at per call, unless told.
ROLL_UP_KEYS_PER_STEP: Final = 512
#: Points one call of :meth:`TieredStore.roll_up` handles at most, about.
ROLL_UP_POINTS_PER_STEP: Final = 2048
_NO_FLOOR: Final = -(2**63)


def aggregate_steps(
    stamps: Iterable[int],
    values: Iterable[float],
    finer_step: int,
    step: int,
    policy: RetentionPolicy,
) -> tuple[list[int], list[float]]:
    """Aggregate ascending points onto ``step``, as whisper propagates an archive.

    The points are first placed on ``finer_step`` slots (the last point of a
    slot wins). A step whose known slots are fewer than the xFilesFactor of
    its ``step // finer_step`` slots is left out (no value), as in whisper.
    """
    method = policy.aggregation.method
    factor = policy.aggregation.x_files_factor
    slots_per_step = step // finer_step
    out_stamps: list[int] = []
    out_values: list[float] = []
    current = None
    known: dict[int, float] = {}

    def flush() -> None:
        if current is None or len(known) / slots_per_step < factor or not known:
            return
        out_stamps.append(current)
        out_values.append(aggregate_method(method, list(known.values()), slots_per_step))

    for stamp, value in zip(stamps, values, strict=True):
        start = stamp - stamp % step
        if start != current:
            flush()
            current = start
            known = {}
        known[stamp - stamp % finer_step] = value
    flush()
    return out_stamps, out_values


def aggregate_method(method: str, known: list[float], slots: int) -> float:
    """whisper's aggregation of the known values of a step of ``slots`` slots."""
    if method == "average":
        return sum(known) / len(known)
    if method == "sum":
        return float(sum(known))
    if method == "last":
        return known[-1]
    if method == "max":
        return max(known)
    if method == "min":
        return min(known)
    if method == "avg_zero":
        return sum(known) / slots  # the slots with no value count as zeros
    if method == "absmax":
        return max(known, key=abs)
    if method == "absmin":
        return min(known, key=abs)
    raise AssertionError(f"unchecked aggregation method {method!r}")


class TieredStore(MetricStore):
    """A :class:`MetricStore` that keeps every key within its retention rules.

    ``clock`` gives the current unix time (the server's wall clock: the
    points carry unix timestamps). Keys without a policy behave exactly as
    in :class:`MetricStore`.
    """

    def __init__(self, rules: RetentionRules, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.rules = rules
        self._clock = clock
        self._policies: dict[str, RetentionPolicy | None] = {}
        self._floors: dict[str, list[int]] = {}
        self._next_key = 0
        self._round: list[str] = []
        self._distinct: dict[RetentionPolicy, RetentionPolicy] = {}
        # Every retention the rules can give, whose floors decide when a round is due.
        self._retentions = tuple(
            dict.fromkeys(
                [rule.retention for rule in rules.schemas]
                + ([rules.default] if rules.default is not None else [])
            )
        )
        self._quantum = min((r.archives[0].step for r in self._retentions), default=1)
        self._last_round: tuple[int, tuple[tuple[int, ...], ...]] | None = None
        # Set when a round could not finish its work (a held-back floor, a thaw).
        self._unfinished = False
        # The oldest points of a key, compressed: its visible series is these
        # blocks' points, then its arrays (which are never left empty).
        self._cold: dict[str, list[Block]] = {}
        self._next_freeze = 0
        #: Points per compressed block.
        self.block_points = BLOCK_POINTS
        # For the common case, live traffic, one check per batch instead of
        # one per point: no point newer than these needs a look of its own.
        spans = [rule.retention.longest for rule in rules.schemas]
        if rules.default is not None:
            spans.append(rules.default.longest)
        self._shortest_horizon = min(spans, default=0)
        self._highest_floor = _NO_FLOOR  # of any key's finest tier
        self._newest_cold = _NO_FLOOR  # of any compressed point
        # Loaded now, at start-up: loading them later would pause the event loop.
        load_codec()
        #: Puts dropped because they were older than their key's longest span.
        self.expired_points = 0
        #: Steps dropped for the same reason, during roll-up.
        self.expired_steps = 0
        #: Finest-tier points aggregated into tier 1, since the start.
        self.rolled_points = 0

    def policy_for(self, key: str) -> RetentionPolicy | None:
        """``key``'s policy (looked up once per key; equal policies are one object)."""
        try:
            return self._policies[key]
        except KeyError:
            policy = self.rules.policy_for(key)
            if policy is not None:
                policy = self._distinct.setdefault(policy, policy)
            self._policies[key] = policy
            return policy

    def round_needed(self) -> bool:
        """Whether a round of roll-up could change anything now: a floor of some
        policy moved, keys came or went, or the last round left work over.

        A quiet server (no new keys, floors on the same step) skips its rounds,
        so that many keys cost nothing between two steps of the rules. Floors
        are looked at once per finest step of the rules, so a lone tier's
        points leave memory within a step of their span (puts past it are
        still refused to the second).
        """
        now = int(self._clock())
        # Looked at once per finest step of the rules: a lone tier's floor moves
        # every second, and a round per second over many keys would cost a core.
        now -= now % self._quantum
        state = (
            len(self._series),
            tuple(tuple(self._floors_at(retention, now)) for retention in self._retentions),
        )
        if state == self._last_round and not self._unfinished:
            return False
        self._last_round = state
        self._unfinished = False
        return True

    # --- writes ---------------------------------------------------------------

    def put_columns(
        self, keys: Iterable[str], values: Iterable[float], timestamps: Iterable[int]
    ) -> None:
        """Store the points, dropping (and counting) those past their key's longest span.

        A point older than the finest tier's floor overwrites the step of
        the coarser tier that holds its time.
        """
        self.store_admitted(*self.admit(keys, values, timestamps))

    def admit(
        self, keys: Iterable[str], values: Iterable[float], timestamps: Iterable[int]
    ) -> tuple[Sequence[str], Sequence[float], Sequence[int]]:
        """The points that are not past their key's longest span at the clock's
        time; the others are counted in :attr:`expired_points`.

        A durable store admits a batch before it logs it, so that the log
        holds only what was stored, and replaying it needs no clock.
        """
        now = int(self._clock())
        if (
            isinstance(keys, Sequence)
            and isinstance(values, Sequence)
            and isinstance(timestamps, Sequence)
            and (not timestamps or min(timestamps) >= now - self._shortest_horizon)
        ):
            return keys, values, timestamps  # none can have expired
        keep_keys: list[str] = []
        keep_values: list[float] = []
        keep_stamps: list[int] = []
        for key, value, timestamp in zip(keys, values, timestamps, strict=True):
            policy = self.policy_for(key)
            if policy is not None and timestamp < now - policy.retention.longest:
                self.expired_points += 1
                continue
            keep_keys.append(key)
            keep_values.append(value)
            keep_stamps.append(timestamp)
        return keep_keys, keep_values, keep_stamps

    def store_admitted(
        self, keys: Sequence[str], values: Sequence[float], timestamps: Sequence[int]
    ) -> None:
        """Store admitted points (see :meth:`admit`); the clock plays no part.

        A point older than the finest tier's floor overwrites the step of
        the coarser tier that holds its time; one older than the coarsest
        tier's floor is dropped and counted as expired.
        """
        floors_of = self._floors
        if not timestamps or min(timestamps) > max(self._highest_floor, self._newest_cold):
            # Every point is newer than every key's finest floor and every
            # compressed point: stored as put.
            super().put_columns(keys, values, timestamps)
            return
        out_keys: list[str] = []
        out_values: list[float] = []
        out_stamps: list[int] = []
        for key, value, timestamp in zip(keys, values, timestamps, strict=True):
            floors = floors_of.get(key)
            if floors is not None and timestamp < floors[0]:
                step = self._tier_step(key, timestamp, floors)
                if step is None:
                    # Below the coarsest floor: roll-up has dropped that time already.
                    self.expired_points += 1
                    continue
                # Tier k's steps lie in [floors[k], floors[k - 1]): floors align to them.
                timestamp -= timestamp % step
            out_keys.append(key)
            out_values.append(value)
            out_stamps.append(timestamp)
        cold = self._cold
        if cold:
            # A put into compressed time (a late write, a replay): thaw the key first.
            for key, timestamp in zip(out_keys, out_stamps, strict=True):
                blocks = cold.get(key)
                if blocks is not None and timestamp <= blocks[-1].last:
                    self._thaw(key)
        # One call, in order: a later point still wins over an earlier one.
        super().put_columns(out_keys, out_values, out_stamps)

    def _tier_step(self, key: str, timestamp: int, floors: list[int]) -> int | None:
        """The step of the coarser tier that holds ``timestamp`` (below the finest
        tier's floor), or None below the coarsest floor."""
        policy = self.policy_for(key)
        if policy is None:
            return 1  # rules gone since the floors were set: kept as put
        archives = policy.retention.archives
        for tier in range(1, len(floors)):
            if timestamp >= floors[tier]:
                return archives[tier].step
        return None

    def delete_keys(self, keys: Iterable[str]) -> int:
        """Remove keys as :meth:`MetricStore.delete_keys`, forgetting their tiers."""
        keys = list(keys)
        self._unfinished = True  # a key put again needs its first roll-up
        for key in keys:
            self._floors.pop(key, None)
            for block in self._cold.pop(key, ()):
                self._points -= block.count
        return super().delete_keys(keys)

    def clear(self) -> None:
        """Forget every point and every tier."""
        super().clear()
        self._floors.clear()
        self._cold.clear()

    def restore_series(self, key: str, timestamps: array[int], values: array[float]) -> None:
        """As :meth:`MetricStore.restore_series` (the key's compressed blocks go too)."""
        for block in self._cold.pop(key, ()):
            self._points -= block.count
        super().restore_series(key, timestamps, values)

    # --- compressed blocks ----------------------------------------------------

    def _freeze_limit(self, key: str) -> int | None:
        """Points before this are not rolled up any more, only dropped when
        they expire: they may be compressed. None: nothing to compress."""
        floors = self._floors.get(key)
        if floors is None:
            return None
        if len(floors) > 1:
            return floors[-2]  # below it: the coarsest tier
        policy = self.policy_for(key)
        return None if policy is None else floors[0] + policy.retention.longest // 2

    def freeze(self, max_blocks: int) -> int:
        """Compress up to ``max_blocks`` blocks of old points, a few keys at a
        time from where the last call stopped; return how many were made.

        Only time that roll-up will not rewrite is compressed (the coarsest
        tier's, or the older half of a lone tier's span), in blocks of
        :attr:`block_points`, and each key keeps at least a block's worth of
        points uncompressed. Reads, puts and roll-ups see the same points.
        """
        made = 0
        keys = list(self._floors)
        if not keys:
            return 0
        start = self._next_freeze % len(keys)
        for offset in range(len(keys)):
            if made >= max_blocks:
                break
            key = keys[(start + offset) % len(keys)]
            self._next_freeze = start + offset + 1
            limit = self._freeze_limit(key)
            columns = self._series.get(key)
            if limit is None or columns is None:
                continue
            stamps, numbers = columns
            size = self.block_points
            while made < max_blocks and len(stamps) >= 2 * size:
                if stamps[size - 1] >= limit:
                    break
                block = compress_block(stamps[:size], numbers[:size], self._bases(key))
                self._cold.setdefault(key, []).append(block)
                self._newest_cold = max(self._newest_cold, block.last)
                del stamps[:size], numbers[:size]
                made += 1
        return made

    def _bases(self, key: str) -> tuple[float, ...]:
        """The common bases ``key``'s compressed (coarsest-tier) values may be
        near multiples of: with averages, those of :func:`average_bases`."""
        policy = self.policy_for(key)
        if policy is None or policy.aggregation.method not in ("average", "avg_zero"):
            return ()
        archives = policy.retention.archives
        if len(archives) < 2:
            return ()  # a lone tier holds the points as put
        return average_bases(archives[-1].step // archives[0].step)

    def blocks_of(self, key: str) -> list[Block]:
        """``key``'s compressed blocks, oldest first (a snapshot writes them as they are)."""
        return list(self._cold.get(key, ()))

    def iter_uncompressed(self, key: str) -> Iterator[Series]:
        """As :meth:`MetricStore.iter_series`, without the compressed points:
        each key's points newer than its blocks (see :meth:`blocks_of`)."""
        yield from super().iter_series(key)

    def restore_blocks(self, key: str, blocks: Sequence[Block]) -> None:
        """Put ``blocks`` (oldest first, older than every point of ``key``'s
        series) in front of ``key``'s series, as recovery reads them.

        A key may have no points in its arrays, as in a store that never
        stopped: roll-up can leave a key with blocks only (a step that the
        xFilesFactor leaves empty takes the last points with it).
        """
        if not blocks:
            return
        blocks = list(blocks)
        if key not in self._series:
            super().restore_series(key, array("q"), array("d"))
        for block in self._cold.pop(key, ()):
            self._points -= block.count
        self._cold[key] = blocks
        self._points += sum(block.count for block in blocks)
        self._newest_cold = max(self._newest_cold, blocks[-1].last)

    def _thaw(self, key: str) -> None:
        """Put ``key``'s compressed points back into its arrays."""
        blocks = self._cold.pop(key, None)
        if not blocks:
            return
        self._unfinished = True  # to be compressed again
        stamps, numbers = self._series[key]
        parts = [block.decompress() for block in blocks]
        new_stamps: array[int] = array("q")
        new_values: array[float] = array("d")
        for block_stamps, block_values in parts:
            new_stamps.extend(block_stamps)
            new_values.extend(block_values)
        new_stamps.extend(stamps)
        new_values.extend(numbers)
        self._series[key] = (new_stamps, new_values)

    def _whole(self, key: str) -> tuple[array[int], array[float]] | None:
        """``key``'s visible points as arrays (new ones when some are compressed)."""
        columns = self._series.get(key)
        blocks = self._cold.get(key)
        if columns is None or not blocks:
            return columns
        stamps: array[int] = array("q")
        values: array[float] = array("d")
        for block in blocks:
            block_stamps, block_values = block.decompress()
            stamps.extend(block_stamps)
            values.extend(block_values)
        stamps.extend(columns[0])
        values.extend(columns[1])
        return stamps, values

    def compressed(self) -> tuple[int, int]:
        """Points held in compressed blocks, and their bytes."""
        points = size = 0
        for blocks in self._cold.values():
            for block in blocks:
                points += block.count
                size += block.nbytes
        return points, size

    def series_between(self, key: str, start: int, end: int) -> Series | None:
        """As :meth:`MetricStore.series_between`, compressed points included."""
        blocks = self._cold.get(key)
        if not blocks or start > blocks[-1].last:
            return super().series_between(key, start, end)
        whole = self._whole(key)
        assert whole is not None
        stamps, numbers = whole
        first = bisect_left(stamps, start)
        stop = bisect_right(stamps, end, lo=first)
        if first == stop:
            return None
        return Series(key, stamps[first:stop], numbers[first:stop])

    def iter_series(self, key: str) -> Iterator[Series]:
        """As :meth:`MetricStore.iter_series`, compressed points included."""
        if not self._cold:
            yield from super().iter_series(key)
            return
        for each in list(self._series) if key == "*" else [key]:
            whole = self._whole(each)
            if whole is not None:
                stamps, numbers = whole
                if whole is self._series.get(each):
                    stamps, numbers = stamps[:], numbers[:]
                yield Series(each, stamps, numbers)

    def iter_series_within(
        self, key: str, budget: CopyBudget
    ) -> Generator[Series | NeedRoom, None, None]:
        """As :meth:`MetricStore.iter_series_within`; a key with compressed
        points is counted at 16 bytes a point of what it decompresses to."""
        if not self._cold:
            yield from super().iter_series_within(key, budget)
            return
        held: Taken | None = None
        try:
            for each in list(self._series) if key == "*" else [key]:
                if held is not None:
                    budget.give_back(held)
                    held = None
                while each in self._series:
                    need = self._count(each) * BYTES_PER_POINT
                    held = budget.try_take(need)
                    if held is not None:
                        yield from self.iter_series(each)
                        break
                    yield NeedRoom(budget, need)
        finally:
            if held is not None:
                budget.give_back(held)

    def _count(self, key: str) -> int:
        return len(self._series[key][0]) + sum(block.count for block in self._cold.get(key, ()))

    # --- roll-up --------------------------------------------------------------

    def target_floors(self, policy: RetentionPolicy, now: int) -> list[int]:
        """Where each tier should begin at ``now``.

        A finer tier's floor is aligned down to the next tier's step, so
        that whole steps roll up at once. The coarsest tier keeps a step
        while any of its time is within the longest span; a lone tier keeps
        points from exactly ``now - span`` on, as puts are expired.
        """
        return self._floors_at(policy.retention, now)

    @staticmethod
    def _floors_at(retention: Retention, now: int) -> list[int]:
        archives = retention.archives
        floors = []
        for tier, archive in enumerate(archives):
            if tier + 1 < len(archives):
                step = archives[tier + 1].step
                floors.append((now - archive.span) // step * step)
            elif tier == 0:
                floors.append(now - archive.span)
            else:
                # The first step start s with s + step > now - span.
                floors.append(
                    -((archive.span + archive.step - 1 - now) // archive.step) * archive.step
                )
        return floors

    def roll_up(
        self,
        keys_per_step: int = ROLL_UP_KEYS_PER_STEP,
        points_per_step: int = ROLL_UP_POINTS_PER_STEP,
    ) -> tuple[int, bool]:
        """Bring up to ``keys_per_step`` keys (closer to) within their rules at the
        clock's time (see :meth:`due_roll_ups`).

        Returns how many keys changed, and whether a full round over every
        key has just ended (the next call starts again at the first key).
        """
        due, wrapped = self.due_roll_ups(keys_per_step, points_per_step)
        moved = sum(self.roll_key_to(key, floors) for key, floors in due)
        return moved, wrapped

    def due_roll_ups(
        self,
        keys_per_step: int = ROLL_UP_KEYS_PER_STEP,
        points_per_step: int = ROLL_UP_POINTS_PER_STEP,
    ) -> tuple[list[tuple[str, list[int]]], bool]:
        """The next ``keys_per_step`` keys' new floors at the clock's time, for
        those whose floors move; and whether a round over every key has ended.

        The step rolls about ``points_per_step`` points at most, over all its
        keys (the rest waits for later steps and rounds), so that no step is
        a long pause, even after days of data arrived at once. Nothing changes until
        :meth:`roll_key_to` is called (a durable store logs each roll-up
        first, then applies it in log order).
        """
        now = int(self._clock())
        if self._next_key == 0:
            # The round's keys, taken at its start: keys that roll-up removes
            # (all their time expired) do not shift the rest.
            self._round = list(self._series)
        keys = self._round[self._next_key : self._next_key + keys_per_step]
        due = []
        targets: dict[int, list[int]] = {}  # by policy (equal policies are one object)
        budget = points_per_step
        examined = 0
        for key in keys:
            if budget <= 0:
                break  # the rest of this slice waits for the next step
            examined += 1
            policy = self.policy_for(key)
            columns = self._series.get(key)
            if policy is None or columns is None:
                continue
            target = targets.get(id(policy))
            if target is None:
                target = targets[id(policy)] = self.target_floors(policy, now)
            current = self._floors.get(key)
            if current != target:
                limited, cost = self._within_budget(columns[0], policy, current, target, budget)
                if limited != target:
                    self._unfinished = True
                due.append((key, limited))
                budget -= cost
        keys = keys[:examined]
        self._next_key += len(keys)
        wrapped = self._next_key >= len(self._round)
        if wrapped:
            self._next_key = 0
            self._round = []
        return due, wrapped

    def _within_budget(
        self,
        stamps: array[int],
        policy: RetentionPolicy,
        current: list[int] | None,
        target: list[int],
        budget: int,
    ) -> tuple[list[int], int]:
        """``target``, held back where a tier would roll more than ``budget``
        points in one go (held-back floors stay on the coarser tier's steps);
        and about how many points the roll-up to it handles."""
        archives = policy.retention.archives
        limited: list[int] = []
        cost = 0
        for tier, wanted in enumerate(target):
            floor = _NO_FLOOR if current is None or len(current) != len(target) else current[tier]
            first = bisect_left(stamps, floor)
            if tier + 1 < len(archives):
                last = first + max(budget, 1)
                if last < len(stamps) and stamps[last] < wanted:
                    # To the end of the coarser step that holds the budget's last
                    # point: whole steps roll, and every call moves on.
                    step = archives[tier + 1].step
                    wanted = min(wanted, stamps[last] - stamps[last] % step + step)
            if limited:
                # A coarser floor never passes a finer one, and stays on its steps.
                step = archives[min(tier + 1, len(archives) - 1)].step
                wanted = min(wanted, limited[-1] - limited[-1] % step)
            limited.append(wanted)
            cost += max(0, bisect_left(stamps, wanted) - first)
        return limited, cost + 1

    def floors_of(self, key: str) -> list[int] | None:
        """Where ``key``'s tiers begin, finest first; None before its first roll-up."""
        floors = self._floors.get(key)
        return None if floors is None else list(floors)

    def restore_floors(self, key: str, floors: Sequence[int]) -> None:
        """Set ``key``'s floors as recovery reads them from a snapshot.

        Floors kept under other rules (another number of tiers) keep what
        they hold as it is: all of it counts as coarse data older than the
        finest tier, and leaves when the new longest span passes it.
        """
        policy = self.policy_for(key)
        tiers = len(floors) if policy is None else len(policy.retention.archives)
        self._floors[key] = list(floors) if len(floors) == tiers else [floors[0]] * tiers
        self._highest_floor = max(self._highest_floor, floors[0])

    def roll_key_to(self, key: str, target: Sequence[int]) -> bool:
        """Move ``key``'s floors to ``target``, aggregating and dropping as they pass.

        Depends only on the key's points, floors and policy, so replaying the
        same roll-ups in the same order rebuilds the same tiers. A key that
        is gone or has no policy is left alone; floors never move back.
        Returns whether the floors moved.
        """
        policy = self.policy_for(key)
        columns = self._series.get(key)
        if policy is None or columns is None or len(target) != len(policy.retention.archives):
            return False
        current = self._floors.get(key) or [_NO_FLOOR] * len(target)
        if len(current) != len(target):  # the rules changed since the floors were set
            current = [current[0]] * len(target)
        target = [max(old, new) for old, new in zip(current, target, strict=True)]
        if current == target:
            return False
        archives = policy.retention.archives
        blocks = self._cold.get(key)
        if blocks:
            # Compressed points lie in the coarsest tier: whole blocks that
            # expire go as they are; one that straddles the floor is cut.
            while blocks and blocks[0].last < target[-1]:
                dropped = blocks.pop(0)
                self.expired_steps += dropped.count
                self._points -= dropped.count
            if blocks and blocks[0].first < target[-1]:
                block_stamps, block_values = blocks[0].decompress()
                cut = bisect_left(block_stamps, target[-1])
                blocks[0] = compress_block(block_stamps[cut:], block_values[cut:], self._bases(key))
                self.expired_steps += cut
                self._points -= cut
            if not blocks:
                del self._cold[key]
        stamps, numbers = self._series[key]
        before = len(stamps)
        # Finer to coarser, in place: what leaves tier k joins tier k + 1 (the
        # points in [current, target) of each tier), or leaves the coarsest.
        for tier in range(len(archives)):
            end = bisect_left(stamps, target[tier])
            if tier + 1 == len(archives):
                self.expired_steps += end
                del stamps[:end], numbers[:end]
                break
            begin = bisect_left(stamps, current[tier], hi=end)
            if begin == end:
                continue
            rolled_stamps, rolled_values = aggregate_steps(
                stamps[begin:end],
                numbers[begin:end],
                archives[tier].step,
                archives[tier + 1].step,
                policy,
            )
            if tier == 0:
                self.rolled_points += end - begin
            stamps[begin:end] = array("q", rolled_stamps)
            numbers[begin:end] = array("d", rolled_values)
        self._floors[key] = target
        self._highest_floor = max(self._highest_floor, target[0])
        self._points += len(stamps) - before
        if not stamps and not self._cold.get(key):
            del self._series[key]
            self._sorted.remove(key)
            self._floors.pop(key, None)
            self._cold.pop(key, None)
        if self._listeners:
            self._changed(key, 0)
        return True

    # --- reads ----------------------------------------------------------------

    def figures(self, roll_up: RollUpFigures) -> dict[str, int]:
        """The counters that ``stats`` shows (``/metrics`` too)."""
        figures = {
            "points_expired": self.expired_points,
            "steps_expired": self.expired_steps,
            "points_rolled_up": self.rolled_points,
            "roll_up_rounds": roll_up.rounds,
            "roll_up_longest_step_us": round(roll_up.longest_step * 1e6),
        }
        points, size = self.compressed()
        figures["compressed_points"] = points
        figures["compressed_bytes"] = size
        for tier, points in enumerate(self.tiers_held()):
            figures[f"tier{tier}_points"] = points
        return figures

    def tiers_held(self) -> list[int]:
        """Points held per tier, finest first, over every key with a policy
        (a key not rolled up yet holds all its points in the finest tier)."""
        counts: list[int] = []
        for key, (stamps, _) in self._series.items():
            if self.policy_for(key) is None:
                continue
            floors = self._floors.get(key, [_NO_FLOOR])
            upper = len(stamps)
            for tier, floor in enumerate(floors):
                lower = bisect_left(stamps, floor, hi=upper)
                while len(counts) <= tier:
                    counts.append(0)
                counts[tier] += upper - lower
                upper = lower
            # Compressed points are the coarsest tier's.
            counts[len(floors) - 1] += sum(block.count for block in self._cold.get(key, ()))
        return counts

    async def query_tier(self, key: str, start: int, end: int) -> TierRange:
        """:class:`Store` interface: :meth:`tier_between` (never suspends)."""
        return self.tier_between(key, start, end)

    def tier_between(self, key: str, start: int, end: int) -> TierRange:
        """``key``'s points within ``[start, end]`` from the finest tier that covers
        the whole range (whisper's rule); step 0 means the points as put.

        A coarser tier's steps for time that a finer tier still holds are
        aggregated from the finer data here, tier by tier, as the roll-up
        will later compute them.
        """
        policy = self.policy_for(key)
        floors = self._floors.get(key)
        if policy is None or floors is None or start >= floors[0]:
            return TierRange(0, self.series_between(key, start, end))
        archives = policy.retention.archives
        tier = next((k for k in range(1, len(floors)) if start >= floors[k]), len(floors) - 1)
        step = archives[tier].step
        first = start - start % step
        whole = self._whole(key)
        assert whole is not None
        stamps, numbers = whole

        def region(low: int, high: int | None) -> tuple[list[int], list[float]]:
            begin = bisect_left(stamps, max(low, first))
            stop = len(stamps) if high is None else bisect_left(stamps, high)
            stop = min(stop, bisect_left(stamps, end + 1))
            return list(stamps[begin:stop]), list(numbers[begin:stop])

        acc_stamps, acc_values = region(floors[0], None)
        for coarser in range(1, tier + 1):
            acc_stamps, acc_values = aggregate_steps(
                acc_stamps, acc_values, archives[coarser - 1].step, archives[coarser].step, policy
            )
            own_stamps, own_values = region(floors[coarser], floors[coarser - 1])
            acc_stamps = own_stamps + acc_stamps
            acc_values = own_values + acc_values
        if not acc_stamps:
            return TierRange(step, None)
        return TierRange(step, Series(key, array("q", acc_stamps), array("d", acc_values)))


#: Seconds between two rounds of roll-up over every key.
ROLL_UP_INTERVAL: Final = 1.0
#: Blocks compressed per step of the roll-up task (each about 0.2 ms).
FREEZE_BLOCKS_PER_STEP: Final = 4


@attrs.define
class RollUpFigures:
    """What the roll-up task has done, for ``stats`` and ``/metrics``."""

    rounds: int = 0
    #: The longest single step (one :meth:`TieredStore.roll_up` call), in seconds.
    longest_step: float = 0.0


async def roll_up_forever(
    store: TieredStore,
    figures: RollUpFigures,
    *,
    log: Callable[[list[tuple[str, list[int]]]], Awaitable[None]] | None = None,
    interval: float = ROLL_UP_INTERVAL,
    keys_per_step: int = ROLL_UP_KEYS_PER_STEP,
) -> None:
    """Keep ``store`` within its rules: a round over every key each ``interval``
    seconds, in steps of ``keys_per_step`` keys with other tasks run between
    steps, so that no step is one long pause. Runs until cancelled.

    With ``log`` (a durable store's :meth:`~DurableStore.roll_up`), each
    step's roll-ups are handed to it, which logs them and applies them in
    log order; a log that fails (:exc:`StoreUnavailableError`) ends the
    round, and the next round tries again.
    """
    while True:
        deadline = trio.current_time() + interval
        if not store.round_needed():
            figures.rounds += 1
            await trio.sleep_until(deadline)
            continue
        while True:
            began = time.perf_counter()
            due, wrapped = store.due_roll_ups(keys_per_step)
            if log is None:
                for key, floors in due:
                    store.roll_key_to(key, floors)
            figures.longest_step = max(figures.longest_step, time.perf_counter() - began)
            if log is not None and due:
                try:
                    await log(due)
                except StoreUnavailableError:
                    break  # the store's own errors say why; puts fail too
            if wrapped:
                break
            await trio.lowlevel.checkpoint()
        # Then compress what roll-up is done with, a few blocks per step.
        while True:
            began = time.perf_counter()
            made = store.freeze(FREEZE_BLOCKS_PER_STEP)
            figures.longest_step = max(figures.longest_step, time.perf_counter() - began)
            if not made:
                break
            await trio.lowlevel.checkpoint()
        figures.rounds += 1
        await trio.sleep_until(deadline)
