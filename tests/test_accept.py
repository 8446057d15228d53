"""The accept loop survives connections that fail before they are accepted."""

from __future__ import annotations

import errno
import socket
from typing import Any

import pytest
import trio
from net import NETWORK_TIMEOUT

from trio_metrics import ServerInfo, open_client, serve


@pytest.mark.parametrize("error", [errno.ECONNRESET, errno.ENETUNREACH, errno.ECONNABORTED])
async def test_a_connection_failing_in_accept_is_skipped(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch, error: int
) -> None:
    # The kernel hands accept() errors of connections that died in the
    # backlog; one cannot be made to happen on demand, so accept() is
    # patched to raise once, for the first connection.
    real_accept = socket.socket.accept
    failures = [OSError(error, "failed in the backlog")]

    def flaky_accept(self: socket.socket) -> Any:
        conn, address = real_accept(self)
        if failures:
            conn.close()
            raise failures.pop()
        return conn, address

    monkeypatch.setattr(socket.socket, "accept", flaky_accept)
    info: ServerInfo = await nursery.start(serve, "127.0.0.1", 0)
    doomed = await trio.open_tcp_stream("127.0.0.1", info.port)
    with trio.fail_after(NETWORK_TIMEOUT):
        assert await doomed.receive_some(10) == b""
        async with open_client("127.0.0.1", info.port) as client:
            await client.put("k", 1, 1)
            assert await client.get("k") == {"k": [(1, 1.0)]}
    await doomed.aclose()
    assert not failures
