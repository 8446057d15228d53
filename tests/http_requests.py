"""HTTP requests from tests over real connections, and a main-port pinger to time stalls."""

from __future__ import annotations

import gc
import http.client
import json
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import trio
from net import NETWORK_TIMEOUT

from trio_metrics import open_client

Reply = tuple[int, dict[str, str], bytes]


def _request_sync(
    port: int, method: str, path: str, body: bytes | Iterable[bytes] | None, headers: dict[str, str]
) -> Reply:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=NETWORK_TIMEOUT)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


async def request(
    port: int,
    method: str,
    path: str,
    body: bytes | Iterable[bytes] | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """One HTTP request on a new connection, from a worker thread."""
    with trio.fail_after(NETWORK_TIMEOUT):
        return await trio.to_thread.run_sync(_request_sync, port, method, path, body, headers or {})


async def get_json(port: int, path: str, status: int = 200) -> Any:
    code, headers, body = await request(port, "GET", path)
    assert (code, headers["content-type"]) == (status, "application/json"), body
    return json.loads(body)


async def post_points(port: int, points: object, status: int = 200) -> Any:
    code, headers, body = await request(
        port, "POST", "/api/v1/points", json.dumps(points).encode(), {"content-type": "json"}
    )
    assert (code, headers["content-type"]) == (status, "application/json"), body
    return json.loads(body)


class Pinger:
    """Main-port put round trips, back to back: the longest wait is the worst stall.

    A wait runs from the start of one put to the start of the next, less the
    pause between them, so the loop being held at any moment counts, not only
    while a put is in flight.
    """

    PAUSE = 0.005

    def __init__(self) -> None:
        self.longest = 0.0
        self.count = 0

    async def run(self, port: int) -> None:
        async with open_client("127.0.0.1", port, timeout=NETWORK_TIMEOUT) as client:
            started = trio.current_time()
            while True:
                await client.put("ping", 1, self.count)
                self.count += 1
                await trio.sleep(self.PAUSE)
                now = trio.current_time()
                self.longest = max(self.longest, now - started - self.PAUSE)
                started = now


@contextmanager
def earlier_heap_frozen() -> Iterator[list[float]]:
    """Keep what earlier tests of the run left alive out of the collector's passes, and
    yield the list of the collector's pauses (seconds) while inside.

    A full pass walks every live object of the process. After two thousand
    tests, that heap is the test run's, not the server's, and a pass over it
    held the loop for longer than any of the server's own work. The pauses are
    recorded so that a failing stall check can say whether the collector
    caused it.
    """
    gc.collect()
    gc.freeze()
    pauses: list[float] = []
    started = 0.0

    def timed(phase: str, info: dict[str, int]) -> None:
        nonlocal started
        if phase == "start":
            started = time.perf_counter()
        else:
            pauses.append(time.perf_counter() - started)

    gc.callbacks.append(timed)
    try:
        yield pauses
    finally:
        gc.callbacks.remove(timed)
        gc.unfreeze()
