"""HTTP requests from tests over real connections, and a main-port pinger to time stalls."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterable
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
    """Main-port put round trips, back to back: the longest one is the worst stall."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.count = 0

    async def run(self, port: int) -> None:
        async with open_client("127.0.0.1", port, timeout=NETWORK_TIMEOUT) as client:
            while True:
                started = trio.current_time()
                await client.put("ping", 1, self.count)
                self.longest = max(self.longest, trio.current_time() - started)
                self.count += 1
                await trio.sleep(0.005)
