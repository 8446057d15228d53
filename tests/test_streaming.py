"""Streamed reads: ``ClientConnection.next_points``, ``iter_get``, the CLI printing as it reads."""

from __future__ import annotations

import itertools
import json
from contextlib import aclosing

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from processes import run_cli

from trio_metrics import Client, ClientError, ServerInfo, open_client
from trio_metrics.cli._client_verbs import display_width
from trio_metrics.wire import (
    NEED_DATA,
    ClientConnection,
    ClientState,
    GetRequest,
    MalformedAnswerError,
    OutOfStepError,
    PointBatch,
    ServerRefusedError,
    StreamedPoint,
)


def stream(conn: ClientConnection, request: GetRequest, chunks: list[bytes]) -> list[StreamedPoint]:
    """Feed ``chunks`` one by one, taking points as they come; return them all."""
    points: list[StreamedPoint] = []
    pending = list(chunks)
    while True:
        batch = conn.next_points(request)
        if batch is NEED_DATA:
            conn.receive_data(pending.pop(0))
            continue
        assert isinstance(batch, PointBatch)
        points += batch.points
        if batch.last:
            return points


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    edges = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(
        st.tuples(st.sampled_from(["a", "b.c", "é"]), st.integers(0, 10**6), st.floats(-1e9, 1e9)),
        max_size=30,
    ),
    cuts=st.lists(st.integers(0, 5000), max_size=10),
)
def test_streamed_points_are_the_answer_in_any_chunks(
    lines: list[tuple[str, int, float]], cuts: list[int]
) -> None:
    answer = b"ok\n" + b"".join(f"{k} {v!r} {t}\n".encode() for k, t, v in lines) + b"\n"
    conn = ClientConnection()
    request = GetRequest("*")
    conn.send(request)
    assert stream(conn, request, split(answer, cuts)) == lines
    assert conn.state is ClientState.IDLE


def test_a_malformed_line_is_raised_at_the_end_and_the_connection_stays_in_step() -> None:
    conn = ClientConnection()
    request = GetRequest("k")
    conn.send(request)
    conn.receive_data(b"ok\nk 1.0 1\nk x 2\n")
    batch = conn.next_points(request)
    assert batch == PointBatch([("k", 1, 1.0)], last=False)
    assert conn.next_points(request) is NEED_DATA  # the bad line waits for the end
    conn.receive_data(b"k 3.0 3\n\n")
    with pytest.raises(MalformedAnswerError, match="value 'x' is not a number"):
        conn.next_points(request)
    assert conn.state is ClientState.IDLE


def test_an_error_answer_and_extra_bytes() -> None:
    conn = ClientConnection()
    request = GetRequest("k")
    conn.send(request)
    conn.receive_data(b"error\nwrong command\n\n")
    with pytest.raises(ServerRefusedError):
        conn.next_points(request)
    conn.send(request)
    conn.receive_data(b"ok\n\nok\n\n")
    with pytest.raises(OutOfStepError):
        conn.next_points(request)
    assert conn.state is ClientState.BROKEN


def test_iter_get_gives_what_get_gives(threaded_server: ServerInfo) -> None:
    with Client("127.0.0.1", threaded_server.port) as client:
        for n in range(5000):
            client.put("many", n, n)
        client.put("few", 1.5, 7)
        streamed = list(client.iter_get("*"))
        expected = [(k, t, v) for k, pts in client.get("*").items() for t, v in pts]
        assert streamed == expected
        assert list(client.iter_get("missing")) == []
        with pytest.raises(ClientError, match="must be one word"):
            list(client.iter_get("a b"))
        for _point in client.iter_get("many"):
            break  # stopping early: the rest of the answer is not ours to read
        with pytest.raises(ClientError, match="broken"):
            client.get("few")


async def test_async_iter_get(threaded_server: ServerInfo) -> None:
    async with open_client("127.0.0.1", threaded_server.port, timeout=10) as client:
        for n in range(5000):
            await client.put("a.k", n, n)
        async with aclosing(client.iter_get("a.k")) as points:
            streamed = [point async for point in points]
        assert streamed == [("a.k", n, float(n)) for n in range(5000)]
        assert await client.get("a.k") == {"a.k": [(n, float(n)) for n in range(5000)]}
        async with aclosing(client.iter_get("a.k")) as points:
            async for _point in points:
                break
        with pytest.raises(ClientError, match="broken"):
            await client.get("a.k")
    await trio.lowlevel.checkpoint()


def test_display_width() -> None:
    assert display_width("abc") == 3
    assert display_width("温度") == 4
    assert display_width("e\u0301") == 1
    assert display_width("🌍") == 2


def test_cli_prints_non_ascii_keys_as_they_are(threaded_server: ServerInfo) -> None:
    with Client("127.0.0.1", threaded_server.port) as client:
        client.put("café", 1, 1)
        client.put("温度", 22.5, 2)
        client.put("k", 3, 3)
    port = str(threaded_server.port)
    done = run_cli("get", "*", "--json", "--port", port)
    assert done.stdout == '{"café": [[1, 1.0]], "温度": [[2, 22.5]], "k": [[3, 3.0]]}\n'
    assert json.loads(done.stdout) == {"café": [[1, 1.0]], "温度": [[2, 22.5]], "k": [[3, 3.0]]}
    table = run_cli("get", "*", "--port", port).stdout.splitlines()
    # The TIMESTAMP column ends at the same terminal column on every line.
    ends = {
        display_width(line[: line.index(ts) + len(ts)])
        for line, ts in zip(table, ["TIMESTAMP", "1", "2", "3"], strict=True)
    }
    assert len(ends) == 1, table
