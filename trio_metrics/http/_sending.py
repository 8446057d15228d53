"""Writing a :class:`Response` to ASGI: headers, then the body whole or chunk by chunk."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import trio

from ._messages import Response

__all__ = ["Receive", "Scope", "Send", "send_response"]

# ASGI's messages are plain dicts; these names only make signatures readable.
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def send_response(send: Send, receive: Receive, response: Response, *, head: bool) -> None:
    """Send ``response`` (for ``head``, its headers only) once its request is read whole.

    A streamed body goes out chunk by chunk, letting other tasks run between
    chunks; a client that leaves meanwhile ends it quietly (the answer is
    cut short, which the client sees as an incomplete chunked body if it is
    still there). The chunks are closed in every case, cancellation included.
    """
    chunks = response.chunks
    headers = [
        (b"content-type", response.content_type.encode()),
        (b"cache-control", b"no-store"),
        (b"x-content-type-options", b"nosniff"),
        *((name.encode(), value.encode()) for name, value in response.headers),
    ]
    if chunks is None and response.status != 204:  # RFC 9110: a 204 has no Content-Length
        headers.append((b"content-length", str(len(response.body)).encode()))
    try:
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        if chunks is None or head:
            await send({"type": "http.response.body", "body": b"" if head else response.body})
            return
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_cancel_on_disconnect, receive, nursery.cancel_scope)
            async for chunk in chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                # The send may not yield (the socket took it all): let others run.
                await trio.lowlevel.checkpoint()
            await send({"type": "http.response.body", "body": b""})
            nursery.cancel_scope.cancel()
    finally:
        if chunks is not None:
            with trio.CancelScope(shield=True):
                await chunks.aclose()


async def _cancel_on_disconnect(receive: Receive, scope: trio.CancelScope) -> None:
    # The request body has been read: what comes next is the disconnect.
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()
