"""``/graphite/metrics/find`` over 100k keys: milliseconds per request, over real HTTP.

    python bench/graphite_find.py                 # 100k keys, 50 requests per glob
    python bench/graphite_find.py --requests 10   # a quick look
    python bench/graphite_find.py --hosts 100     # 10,000 keys

A server with its HTTP API on 127.0.0.1 runs in a thread of this process,
holding ``dc{0..9}.host{000..999}.metric{0..9}`` (100,000 keys, one point
each). A client on one keep-alive connection asks for each glob in turn
(Grafana's tree JSON) and the wall time of each whole request is taken:
sending, the walk over the key index, the JSON, receiving. The median and
the 90th percentile per glob are printed, with the number of nodes found,
so that a fast answer with nothing in it cannot pass for speed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import queue
import statistics
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import trio

from trio_metrics import ServerInfo, serve

GLOBS = ("dc3.*", "dc3.host*.metric5", "*.host123.*", "dc{1,7}.host1[0-4]?.metric[0-2]")
TARGET_MS = 20.0


def keys(datacenters: int = 10, hosts: int = 1000, metrics: int = 10) -> list[str]:
    return [
        f"dc{dc}.host{host:03d}.metric{metric}"
        for dc in range(datacenters)
        for host in range(hosts)
        for metric in range(metrics)
    ]


@contextmanager
def server_with(all_keys: list[str]) -> Iterator[ServerInfo]:
    """A server in a thread with ``all_keys`` stored, its HTTP API on a free port."""
    started: queue.Queue[Any] = queue.Queue()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            info: ServerInfo = await nursery.start(
                lambda task_status: serve("127.0.0.1", 0, http_port=0, task_status=task_status)
            )
            await info.store.put_batch(all_keys, [1.0] * len(all_keys), [0] * len(all_keys))
            started.put((info, trio.lowlevel.current_trio_token(), nursery.cancel_scope))

    thread = threading.Thread(target=trio.run, args=(main,), daemon=True)
    thread.start()
    info, token, scope = started.get(timeout=120)
    try:
        yield info
    finally:
        trio.from_thread.run_sync(scope.cancel, trio_token=token)
        thread.join(30)


def get(connection: http.client.HTTPConnection, path: str) -> bytes:
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    assert response.status == 200, body[:200]
    return body


def measure(port: int, glob: str, requests: int) -> tuple[list[float], int]:
    """Milliseconds of each tree JSON request for ``glob``, and the number of nodes it
    matches (paths, from ``format=json``: the tree shows each name once)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    path = "/graphite/metrics/find?" + urllib.parse.urlencode({"query": glob})
    times = []
    try:
        found = len(json.loads(get(connection, path + "&format=json")))
        for _ in range(requests + 2):
            begun = time.perf_counter()
            get(connection, path)
            times.append((time.perf_counter() - begun) * 1000)
    finally:
        connection.close()
    return times[2:], found  # the first two warm the connection and the caches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=50, help="requests per glob")
    parser.add_argument(
        "--hosts", type=int, default=1000, help="hosts per datacenter (10 keys each)"
    )
    args = parser.parse_args()
    all_keys = keys(hosts=args.hosts)
    command = "python bench/graphite_find.py" + " ".join(sys.argv[1:]).join([" ", ""]).rstrip()
    print(f"$ {command}")
    print(f"{len(all_keys)} keys; {args.requests} requests per glob over one connection")
    worst = 0.0
    with server_with(all_keys) as info:
        assert info.http_port is not None
        for glob in GLOBS:
            times, found = measure(info.http_port, glob, args.requests)
            median = statistics.median(times)
            p90 = statistics.quantiles(times, n=10)[-1] if len(times) > 1 else times[0]
            worst = max(worst, median)
            print(f"  {glob:36} {found:5} nodes  median {median:6.2f} ms  p90 {p90:6.2f} ms")
    verdict = "within" if worst <= TARGET_MS else "OVER"
    print(f"slowest median {worst:.2f} ms: {verdict} the target of {TARGET_MS:g} ms")


if __name__ == "__main__":
    main()
