# mypy: disable-error-code="func-returns-value"
# (the tests check that ping() returns None)
"""ping, keys, range and delete over real TCP on 127.0.0.1: the server and every client."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from conftest import server_in_thread
from net import NETWORK_TIMEOUT

from trio_metrics import Client, ClientError, ServerInfo, open_client, serve
from trio_metrics.wire import points_per_piece


async def exchange(port: int, request: bytes, answers: int) -> bytes:
    """Send ``request`` and read until ``answers`` answers (each ends in a blank line) came."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(request)
        data = b""
        with trio.fail_after(NETWORK_TIMEOUT):
            while _answers_in(data) < answers:
                chunk = await stream.receive_some(1 << 16)
                assert chunk, "the server closed early"
                data += chunk
        return data


def _answers_in(data: bytes) -> int:
    # Every answer ends with "\n\n"; none holds an empty line before its end.
    return data.count(b"\n\n")


PUTS = (
    b"put web.a 1 10\nput web.a 2 20\nput web.a 3 30\nput web.b 4 20\nput db.a 5 20\nput top 6 20\n"
)


async def test_the_new_words_byte_for_byte(server: ServerInfo) -> None:
    requests = PUTS + (
        b"ping\n"
        b"keys web.*\n"
        b"keys *\n"
        b"keys nothing.*\n"
        b"range web.a 20 30\n"
        b"range web.* 20 20\n"
        b"range web.a 31 40\n"
        b"delete web.*\n"
        b"get web.a\n"
        b"keys *.*\n"
        b"delete web.*\n"
    )
    data = await exchange(server.port, requests, 17)
    answers = data.split(b"\n\n")
    assert answers[6:17] == [
        b"ok",
        b"ok\nweb.a 0.0 0\nweb.b 0.0 0",
        b"ok\ntop 0.0 0",
        b"ok",
        b"ok\nweb.a 2.0 20\nweb.a 3.0 30",
        b"ok\nweb.a 2.0 20\nweb.b 4.0 20",
        b"ok",
        answers[13],
        b"ok",
        b"ok\ndb.a 0.0 0",
        answers[16],
    ]
    assert answers[13].startswith(b"ok\ntrio_metrics.deleted 2.0 ")
    assert answers[16].startswith(b"ok\ntrio_metrics.deleted 0.0 ")


@pytest.mark.parametrize(
    "line",
    [
        b"ping now",
        b"keys",
        b"keys a b",
        b"keys web.[a-",
        b"range web.a 1",
        b"range web.a 1 2 3",
        b"range web.a 30 20",
        b"range web.a x 20",
        b"range web.a -1 20",
        b"delete",
        b"delete a b",
        b"delete {web",
    ],
)
async def test_wrong_uses_get_the_one_error_answer(server: ServerInfo, line: bytes) -> None:
    data = await exchange(server.port, line + b"\nping\n", 2)
    assert data == b"error\nwrong command\n\nok\n\n"


async def test_a_get_after_delete_shows_no_cached_lines(server: ServerInfo) -> None:
    key = "cached.key"
    count = 2 * points_per_piece(key) + 5  # whole chunks get cached
    old = "".join(f"put {key} 1 {t}\n" for t in range(count)).encode()
    new = "".join(f"put {key} 2 {t}\n" for t in range(count)).encode()
    first = await exchange(server.port, old + f"get {key}\n".encode(), count + 1)
    assert first.count(b" 1.0 ") == count
    second = await exchange(
        server.port,
        f"get {key}\ndelete {key}\n".encode() + new + f"get {key}\n".encode(),
        count + 3,
    )
    last = second.split(b"\n\n")[-2]
    assert last.count(b" 2.0 ") == count and b" 1.0 " not in last


async def test_keys_range_and_delete_page_through_many_keys(server: ServerInfo) -> None:
    names = [f"many.k{n:05d}" for n in range(2500)]
    puts = "".join(f"put {name} {n} {n}\n" for n, name in enumerate(names)).encode()
    data = await exchange(
        server.port, puts + b"keys many.*\nrange many.* 100 2399\ndelete many.k0*\nkeys *.*\n", 2504
    )
    answers = data.split(b"\n\n")[2500:2504]
    assert answers[0] == b"ok\n" + "\n".join(f"{name} 0.0 0" for name in names).encode()
    assert answers[1].count(b"\n") == 2300
    assert answers[1].startswith(b"ok\nmany.k00100 100.0 100\n")
    assert answers[2].startswith(b"ok\ntrio_metrics.deleted 2500.0 ")
    assert answers[3] == b"ok"


# --- the clients ------------------------------------------------------------------------


async def test_async_and_thread_clients(server: ServerInfo) -> None:
    async with open_client("127.0.0.1", server.port, timeout=NETWORK_TIMEOUT) as client:
        await client.put("web.a", 1, 10)
        await client.put("web.a", 2, 20)
        await client.put("web.b", 3, 20)
        assert await client.ping() is None
        assert await client.keys("web.*") == ["web.a", "web.b"]
        assert await client.keys("*") == []
        assert await client.range("web.a", 15, 25) == {"web.a": [(20, 2.0)]}
        assert await client.range("web.*", 20, 20) == {"web.a": [(20, 2.0)], "web.b": [(20, 3.0)]}
        with pytest.raises(ClientError):
            await client.range("web.a", 25, 15)
        with pytest.raises(ClientError):
            await client.keys("web.[")

        view = client.for_thread()

        def in_thread() -> tuple[object, ...]:
            return (
                view.ping(),
                view.keys("web.*"),
                view.range("web.b", 0, 100),
                view.delete("web.b"),
                view.keys("web.*"),
            )

        assert await trio.to_thread.run_sync(in_thread) == (
            None,
            ["web.a", "web.b"],
            {"web.b": [(20, 3.0)]},
            1,
            ["web.a"],
        )
        assert await client.delete("web.*") == 1
        assert await client.delete("web.*") == 0
        assert await client.get("*") == {}


def test_blocking_client() -> None:
    with server_in_thread() as info, Client("127.0.0.1", info.port, NETWORK_TIMEOUT) as client:
        client.put("a.x", 1, 1)
        client.put("a.y", 2, 2)
        assert client.ping() is None
        assert client.keys("a.?") == ["a.x", "a.y"]
        assert client.range("a.{x,y}", 2, 9) == {"a.y": [(2, 2.0)]}
        with pytest.raises(ClientError):
            client.delete("a b")
        assert client.delete("a.*") == 2
        assert client.keys("a.*") == []
        assert client.get("*") == {}


# --- with a data directory -------------------------------------------------------------------


async def run_with_data_dir(tmp_path: Path, requests: bytes, answers: int) -> bytes:
    async with trio.open_nursery() as nursery:
        info: ServerInfo = await nursery.start(
            lambda task_status: serve("127.0.0.1", 0, data_dir=tmp_path, task_status=task_status)
        )
        data = await exchange(info.port, requests, answers)
        nursery.cancel_scope.cancel()
    return data


async def test_delete_survives_a_restart(tmp_path: Path) -> None:
    await run_with_data_dir(tmp_path, b"put a 1 1\nput b 2 2\nput a 3 3\ndelete a\nput b 4 4\n", 5)
    data = await run_with_data_dir(tmp_path, b"get *\n", 1)
    assert data == b"ok\nb 2.0 2\nb 4.0 4\n\n"


async def test_a_put_after_a_delete_survives_a_restart(tmp_path: Path) -> None:
    await run_with_data_dir(tmp_path, b"put a 1 1\ndelete a\nput a 5 5\n", 3)
    data = await run_with_data_dir(tmp_path, b"get *\nkeys *\n", 2)
    assert data == b"ok\na 5.0 5\n\nok\na 0.0 0\n\n"


async def test_range_of_star_reads_every_key_as_get_star_does(nursery: trio.Nursery) -> None:
    """`get '*' --from --until` must read what `get '*'` reads: `*` is every key here."""
    info: ServerInfo = await nursery.start(serve, "127.0.0.1", 0)
    async with open_client("127.0.0.1", info.port, timeout=10) as client:
        for key in ("top", "web.a", "web.b.c"):
            await client.put(key, 1.5, 10)
            await client.put(key, 2.5, 20)
        everything = await client.get("*")
        in_range = await client.range("*", 15, 25)
    assert set(everything) == {"top", "web.a", "web.b.c"}
    assert in_range == {key: [(20, 2.5)] for key in ("top", "web.a", "web.b.c")}


async def test_stats_count_each_extension_word(nursery: trio.Nursery) -> None:
    info: ServerInfo = await nursery.start(serve, "127.0.0.1", 0)
    async with open_client("127.0.0.1", info.port, timeout=10) as client:
        await client.put("a.b", 1.0, 1)
        await client.ping()
        await client.ping()
        await client.keys("a.*")
        await client.range("a.b", 0, 5)
        await client.delete("a.b")
        counters = await client.stats()
    assert {name: counters[name] for name in ("pings", "keys_requests", "ranges", "deletes")} == {
        "pings": 2,
        "keys_requests": 1,
        "ranges": 1,
        "deletes": 1,
    }
    # put, 2 pings, keys, range, delete, and this stats request itself
    assert counters["commands"] == 7
