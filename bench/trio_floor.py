"""The floor for the benchmarks: a bare task-per-connection trio server.

One task per connection, ``trio.lowlevel.wait_readable`` then ``sock.recv``
then ``sock.send``, with no parsing and no store: every line received is
answered ``ok\\n\\n`` (the ``\\n`` of each chunk are counted, and that many
answers sent). Whatever trio-metrics costs above this is its own work;
this much is what any trio server with a task per connection pays for
waking up, receiving and sending. It stores nothing, so it can stand in
only for puts.

    python bench/trio_floor.py --host 127.0.0.1 --port 0

prints ``listening on HOST:PORT`` once ready and exits 0 on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys

import trio

OK = b"ok\n\n"
RECEIVE_SIZE = 65536


async def send_all(sock: socket.socket, data: bytes) -> None:
    """Send all of ``data``, waiting only while the socket buffer is full."""
    view = memoryview(data)
    while view:
        try:
            sent = sock.send(view)
        except BlockingIOError:
            await trio.lowlevel.wait_writable(sock)
            continue
        view = view[sent:]


async def handle(sock: socket.socket) -> None:
    """Answer each line of one connection until the peer closes it."""
    with sock:
        while True:
            await trio.lowlevel.wait_readable(sock)
            try:
                data = sock.recv(RECEIVE_SIZE)
            except BlockingIOError:
                continue
            except OSError:
                return  # reset by the peer: nothing left to answer
            if not data:
                return
            lines = data.count(b"\n")
            if lines:
                try:
                    await send_all(sock, OK * lines)
                except OSError:
                    return


async def accept_loop(listener: socket.socket, nursery: trio.Nursery) -> None:
    """Start a task for every connection the listener takes."""
    while True:
        await trio.lowlevel.wait_readable(listener)
        while True:
            try:
                conn, _address = listener.accept()
            except BlockingIOError:
                break
            conn.setblocking(False)
            # Answers are small and must leave at once, as in the other servers.
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            nursery.start_soon(handle, conn)


async def main(host: str, port: int) -> None:
    listener = socket.create_server((host, port))
    listener.setblocking(False)
    bound = listener.getsockname()
    print(f"listening on {bound[0]}:{bound[1]}", flush=True)
    with listener, trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(accept_loop, listener, nursery)
            async for _signum in signals:
                break
            nursery.cancel_scope.cancel()
        # trio must forget the listener before it is closed.
        trio.lowlevel.notify_closing(listener)


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8888)
    args = parser.parse_args()
    trio.run(main, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(cli())
