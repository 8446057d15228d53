"""Bounded reads from real connections, shared by the network tests."""

from __future__ import annotations

import socket

import trio

# Every network wait in the tests is bounded by this many seconds, so a bug
# shows up as a failure, never as a hung run.
NETWORK_TIMEOUT = 10.0


def recv_until(sock: socket.socket, end: bytes, limit: int = 1 << 24) -> bytes:
    """Read from a blocking socket until the data ends with ``end``."""
    data = b""
    while not data.endswith(end):
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed after {data[-200:]!r}")
        data += chunk
        assert len(data) <= limit
    return data


async def receive_exactly(stream: trio.abc.ReceiveStream, size: int) -> bytes:
    """Read exactly ``size`` bytes from a trio stream (fails at EOF)."""
    data = bytearray()
    with trio.fail_after(NETWORK_TIMEOUT):
        while len(data) < size:
            chunk = await stream.receive_some(size - len(data))
            if not chunk:
                raise AssertionError(f"EOF after {bytes(data[-200:])!r}")
            data += chunk
    return bytes(data)


async def receive_until_eof(stream: trio.abc.ReceiveStream) -> bytes:
    """Read everything until the peer closes."""
    data = bytearray()
    with trio.fail_after(NETWORK_TIMEOUT):
        while chunk := await stream.receive_some(65536):
            data += chunk
    return bytes(data)
