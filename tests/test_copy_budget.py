"""One budget for the copies of points that all connections' gets hold at once."""

from __future__ import annotations

from array import array
from collections.abc import AsyncIterator, Callable

import pytest
import trio
import trio.testing
from net import NETWORK_TIMEOUT

from trio_metrics import MetricStore, ServerConfig, ServerInfo, serve
from trio_metrics.storage import BYTES_PER_POINT, CopyBudget, NeedRoom, Series


def _store_with(points: dict[str, int]) -> MetricStore:
    store = MetricStore()
    for key, count in points.items():
        store.restore_series(key, array("q", range(count)), array("d", [0.5] * count))
    return store


def test_a_copy_that_fits_is_taken_and_handed_back_at_the_next_key() -> None:
    store = _store_with({"a": 3, "b": 2})
    budget = CopyBudget(1000)
    items = store.iter_series_within("*", budget)
    first = next(items)
    assert isinstance(first, Series) and first.key == "a"
    assert budget.used == 3 * BYTES_PER_POINT
    second = next(items)
    assert isinstance(second, Series) and second.key == "b"
    assert budget.used == 2 * BYTES_PER_POINT
    assert list(items) == []
    assert budget.used == 0
    assert budget.peak == 3 * BYTES_PER_POINT


def test_no_room_yields_need_room_and_tries_again() -> None:
    store = _store_with({"big": 10})
    budget = CopyBudget(10 * BYTES_PER_POINT)
    other = budget.try_take(BYTES_PER_POINT)  # another reader holds one point's worth
    assert other is not None
    items = store.iter_series_within("big", budget)
    assert next(items) == NeedRoom(budget, 10 * BYTES_PER_POINT)
    assert next(items) == NeedRoom(budget, 10 * BYTES_PER_POINT)
    budget.give_back(other)
    found = next(items)
    assert isinstance(found, Series) and len(found.timestamps) == 10
    assert budget.used == 10 * BYTES_PER_POINT


def test_a_copy_larger_than_the_budget_goes_through_alone() -> None:
    store = _store_with({"huge": 100})
    budget = CopyBudget(BYTES_PER_POINT)
    items = store.iter_series_within("huge", budget)
    found = next(items)
    assert isinstance(found, Series)
    assert budget.used == 100 * BYTES_PER_POINT
    assert budget.try_take(3) is None  # more than the reserve for small copies (2 bytes)


def test_small_copies_have_a_reserve_beside_a_huge_one() -> None:
    """A copy larger than the budget, held by a reader that reads nothing, must not
    hold up the reads of small keys; the reserve is an eighth of the budget."""
    budget = CopyBudget(800)
    huge = budget.try_take(10_000)
    assert huge is not None and not huge.from_reserve
    small = budget.try_take(60)
    assert small is not None and small.from_reserve
    assert budget.try_take(60) is None  # the reserve (100 bytes) is spent
    assert budget.try_take(101) is None  # too big for the reserve
    budget.give_back(small)
    assert budget.fits(100)
    budget.give_back(huge)
    assert (budget.used, budget.reserve_used, budget.peak) == (0, 0, 10_060)


def test_closing_the_read_hands_back_its_copy() -> None:
    store = _store_with({"a": 4})
    budget = CopyBudget(1000)
    items = store.iter_series_within("a", budget)
    next(items)
    items.close()
    assert budget.used == 0


def test_a_key_removed_while_waiting_is_skipped() -> None:
    store = _store_with({"gone": 5, "kept": 1})
    budget = CopyBudget(5 * BYTES_PER_POINT)
    assert budget.try_take(1) is not None
    items = store.iter_series_within("*", budget)
    assert isinstance(next(items), NeedRoom)
    store.clear()
    store.restore_series("kept", array("q", [1]), array("d", [2.0]))
    assert [(s.key, list(s.timestamps)) for s in items if isinstance(s, Series)] == [("kept", [1])]
    assert budget.used == 1


async def test_wait_for_room_wakes_when_a_copy_is_handed_back() -> None:
    budget = CopyBudget(100)
    held = budget.try_take(80)
    assert held is not None
    woke = trio.Event()

    async def wait() -> None:
        await budget.wait_for_room(50)
        woke.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait)
        await trio.testing.wait_all_tasks_blocked()
        assert not woke.is_set()
        budget.give_back(held)
        with trio.fail_after(NETWORK_TIMEOUT):
            await woke.wait()
    assert budget.waits == 1


def test_the_budget_refuses_nothing_to_give() -> None:
    with pytest.raises(ValueError, match="at least 1 byte"):
        CopyBudget(0)


# Over real TCP: a key too big for the socket buffers, and clients that do
# not read its answer.
BIG_POINTS = 1_000_000


@pytest.fixture
async def big_server(nursery: trio.Nursery) -> AsyncIterator[ServerInfo]:
    config = ServerConfig(
        host="127.0.0.1",
        port=0,
        # Room for one copy of "big", not two.
        answer_copy_budget_bytes=int(BIG_POINTS * BYTES_PER_POINT * 1.5),
    )
    info: ServerInfo = await nursery.start(serve, config)
    assert isinstance(info.store, MetricStore)
    info.store.restore_series("big", array("q", range(BIG_POINTS)), array("d", [1.25] * BIG_POINTS))
    info.store.put("small", 2.0, 7)
    yield info


async def _wait_until(condition: Callable[[], bool]) -> None:
    with trio.fail_after(NETWORK_TIMEOUT):
        while not condition():  # noqa: ASYNC110 - polls plain counters
            await trio.sleep(0.01)


async def _read_answer(stream: trio.SocketStream) -> bytes:
    data = bytearray()
    with trio.fail_after(NETWORK_TIMEOUT * 3):
        while not data.endswith(b"\n\n"):
            chunk = await stream.receive_some(1 << 20)
            assert chunk, "closed early"
            data += chunk
    return bytes(data)


async def test_a_second_big_get_waits_for_the_first_copy(big_server: ServerInfo) -> None:
    info = big_server
    holder = await trio.open_tcp_stream("127.0.0.1", info.port)
    waiter = await trio.open_tcp_stream("127.0.0.1", info.port)
    small = await trio.open_tcp_stream("127.0.0.1", info.port)
    async with holder, waiter, small:
        await holder.send_all(b"get big\n")
        # The holder reads nothing: its copy stays held while its answer
        # waits for the socket.
        await _wait_until(lambda: info.stats.gets >= 1)
        await trio.sleep(0.2)
        await waiter.send_all(b"get big\n")
        await _wait_until(lambda: info.stats.answer_copy_waits >= 1)
        # A small get fits beside the held copy and is answered at once.
        await small.send_all(b"get small\n")
        assert await _read_answer(small) == b"ok\nsmall 2.0 7\n\n"
        # Once the holder reads its answer, the waiter gets its copy.
        first = await _read_answer(holder)
        second = await _read_answer(waiter)
    expected = b"ok\n" + b"".join(b"big 1.25 %d\n" % ts for ts in range(BIG_POINTS)) + b"\n"
    assert first == expected
    assert second == expected
    assert info.stats.answer_copy_waits == 1


async def test_a_held_copy_larger_than_the_budget_does_not_hold_up_small_gets(
    nursery: trio.Nursery,
) -> None:
    """One silent reader of a key bigger than the whole budget used to block every get."""
    config = ServerConfig(host="127.0.0.1", port=0, answer_copy_budget_bytes=1 << 20)
    info: ServerInfo = await nursery.start(serve, config)
    assert isinstance(info.store, MetricStore)
    info.store.restore_series("big", array("q", range(BIG_POINTS)), array("d", [1.25] * BIG_POINTS))
    info.store.put("small", 2.0, 7)
    holder = await trio.open_tcp_stream("127.0.0.1", info.port)
    reader = await trio.open_tcp_stream("127.0.0.1", info.port)
    async with holder, reader:
        await holder.send_all(b"get big\n")
        await _wait_until(lambda: info.stats.gets >= 1)
        await trio.sleep(0.2)
        for _ in range(3):
            await reader.send_all(b"get small\n")
            assert await _read_answer(reader) == b"ok\nsmall 2.0 7\n\n"
    assert info.stats.answer_copy_waits == 0
