"""LeanSocketStream keeps the whole stream contract (trio's own conformance checks)."""

from __future__ import annotations

import socket

import trio
import trio.lowlevel
import trio.testing

from trio_metrics.transport._lean_stream import LeanSocketStream


class CheckpointingLeanStream(LeanSocketStream):
    """The one deliberate difference, put back for trio's conformance checks.

    trio's checks require every ``send_all`` to be a checkpoint; the lean
    stream skips that when the data went out at once (the server's loop
    checkpoints in ``receive_some`` instead). Everything else is checked
    as it is.
    """

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await super().send_all(data)
        await trio.lowlevel.checkpoint()


async def lean_pair() -> tuple[LeanSocketStream, LeanSocketStream]:
    left, right = socket.socketpair()
    return CheckpointingLeanStream(left), CheckpointingLeanStream(right)


async def clogged_lean_pair() -> tuple[LeanSocketStream, LeanSocketStream]:
    left, right = await lean_pair()
    # Fill the buffers both ways, so that the next send_all in either
    # direction has to wait (trio's checks use the pair both ways round).
    for sender, receiver in [(left, right), (right, left)]:
        sender.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
        receiver.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
        while True:
            try:
                sender.socket.send(b"x" * 65536)
            except BlockingIOError:
                break
    return left, right


async def test_trio_half_closeable_stream_conformance() -> None:
    await trio.testing.check_half_closeable_stream(lean_pair, clogged_lean_pair)


async def test_taken_over_from_a_trio_socket_stream() -> None:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = await trio.open_tcp_stream("127.0.0.1", listener.getsockname()[1])
    accepted, _ = await listener.accept()
    server_side = LeanSocketStream.from_socket_stream(trio.SocketStream(accepted))
    assert accepted.fileno() == -1  # the trio socket gave its descriptor away
    await client.send_all(b"ping\n")
    assert await server_side.receive_some(100) == b"ping\n"
    await server_side.send_all(b"pong\n")
    assert await client.receive_some(100) == b"pong\n"
    await server_side.aclose()
    assert await client.receive_some(100) == b""
    await client.aclose()
    listener.close()


async def test_a_flooding_peer_does_not_starve_other_tasks() -> None:
    left, right = await lean_pair()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        await left.send_all(b"x" * 100_000)
        received = 0
        while received < 100_000:
            received += len(await right.receive_some(1000))
        nursery.cancel_scope.cancel()
    # Data was always ready, yet every receive let the ticker run.
    assert ticks >= 50
    await left.aclose()
    await right.aclose()


async def test_a_cancelled_receive_loses_no_data() -> None:
    left, right = await lean_pair()
    await left.send_all(b"precious")
    with trio.CancelScope() as scope:
        scope.cancel()
        await right.receive_some(100)
    assert scope.cancelled_caught
    assert await right.receive_some(100) == b"precious"
    await left.aclose()
    await right.aclose()


async def test_send_all_in_a_cancelled_scope_sends_nothing() -> None:
    left, right = socket.socketpair()
    sender, receiver = LeanSocketStream(left), LeanSocketStream(right)
    with trio.CancelScope() as scope:
        scope.cancel()
        await sender.send_all(b"never")
    assert scope.cancelled_caught
    await sender.send_all(b"after")
    assert await receiver.receive_some(100) == b"after"
    await sender.aclose()
    await receiver.aclose()


async def test_a_reset_peer_is_a_broken_stream_on_receive() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    listener.close()
    stream = LeanSocketStream(accepted)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    client.close()  # linger 0: an RST
    with trio.fail_after(5):
        try:
            await stream.receive_some()
        except trio.BrokenResourceError as exc:
            assert isinstance(exc.__cause__, ConnectionResetError)
        else:
            raise AssertionError("a reset receive did not raise")
    await stream.aclose()


async def test_two_tasks_receiving_at_once_is_our_busy_error() -> None:
    left, right = socket.socketpair()
    stream = LeanSocketStream(left)
    stream._drained = True  # the next receive waits first, as after a request
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stream.receive_some)
            await trio.testing.wait_all_tasks_blocked()
            try:
                await stream.receive_some()
            except trio.BusyResourceError as exc:
                assert "another task is receiving" in str(exc)
            else:
                raise AssertionError("a second receive did not raise")
            right.send(b"x")
    await stream.aclose()
    right.close()
