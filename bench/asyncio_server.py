"""Baseline for the benchmarks: the metrics protocol on a plain asyncio.Protocol.

This is the straightforward implementation the protocol invites: a dict of
dicts (``{key: {timestamp: value}}``), and a ``data_received`` that splits the
chunk into lines and answers them. It is correct for everything the
benchmarks send, and deliberately unoptimised: it is the yardstick.

    python bench/asyncio_server.py --host 127.0.0.1 --port 0

prints ``listening on HOST:PORT`` once ready and exits 0 on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import signal
import sys

OK = b"ok\n\n"
ERROR = b"error\nwrong command\n\n"
MAX_TIMESTAMP = 2**63 - 1


class Storage:
    """All points, as ``{key: {timestamp: value}}``; dicts keep first-stored key order."""

    def __init__(self) -> None:
        self.data: dict[str, dict[int, float]] = {}

    def put(self, key: str, value: float, timestamp: int) -> None:
        self.data.setdefault(key, {})[timestamp] = value

    def get(self, key: str) -> bytes:
        if key == "*":
            selected = self.data
        elif key in self.data:
            selected = {key: self.data[key]}
        else:
            selected = {}
        lines = ["ok\n"]
        for name, points in selected.items():
            for timestamp in sorted(points):
                lines.append(f"{name} {points[timestamp]!r} {timestamp}\n")
        lines.append("\n")
        return "".join(lines).encode("utf-8")


def is_key(token: str) -> bool:
    return token.isprintable() and token != "*"


def execute(storage: Storage, raw: bytes) -> bytes:
    """Answer one line; a blank line gets no answer at all."""
    try:
        tokens = raw.decode("utf-8").split()
    except UnicodeDecodeError:
        return ERROR
    if not tokens:
        return b""
    command, *args = tokens
    if command == "put" and len(args) == 3:
        key, value_text, timestamp_text = args
        try:
            value = float(value_text)
        except ValueError:
            return ERROR
        # int() also takes signs, "_" and non-ASCII digits; the protocol wants
        # plain decimal digits (and int() refuses over 4300 of them, zeros too).
        if not (timestamp_text.isascii() and timestamp_text.isdigit()):
            return ERROR
        digits = timestamp_text.lstrip("0") or "0"
        if len(digits) > 19 or not is_key(key) or not math.isfinite(value):
            return ERROR
        timestamp = int(digits)
        if timestamp > MAX_TIMESTAMP:
            return ERROR
        storage.put(key, value, timestamp)
        return OK
    if command == "get" and len(args) == 1 and (args[0] == "*" or is_key(args[0])):
        return storage.get(args[0])
    return ERROR


class MetricsProtocol(asyncio.Protocol):
    """One connection: buffer the unfinished line, answer the complete ones."""

    def __init__(self, storage: Storage, connections: set[asyncio.Transport]) -> None:
        self.storage = storage
        self.connections = connections
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.connections.add(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.connections.discard(self.transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        answer = b"".join(execute(self.storage, line) for line in lines)
        if answer and self.transport is not None:
            self.transport.write(answer)


async def main(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    storage = Storage()
    connections: set[asyncio.Transport] = set()
    server = await loop.create_server(lambda: MetricsProtocol(storage, connections), host, port)
    bound = server.sockets[0].getsockname()
    print(f"listening on {bound[0]}:{bound[1]}", flush=True)
    await stop.wait()
    server.close()
    for transport in list(connections):
        transport.close()
    await server.wait_closed()


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8888)
    args = parser.parse_args()
    asyncio.run(main(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(cli())
