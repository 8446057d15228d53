"""graphite-web over trio-metrics: ``sumSeries`` of 1,000 series of a day at 10 s.

    PYTHONPATH=. python bench/graphite_render.py                  # 1000 x 8640, 3 runs
    PYTHONPATH=. python bench/graphite_render.py --series 100 --repeat 1   # a quick look

A server with its HTTP API runs in a thread of this process, holding
``--series`` keys ``srv.hNNNN.cpu`` with ``--points`` points 10 s apart.
Debian's graphite-web 1.1.8 (``apt-get install graphite-web``, on the
system Python) federates to it with ``CLUSTER_SERVERS``. Timed, as wall
time of whole HTTP requests on 127.0.0.1:

- ``graphite-web sumSeries``: graphite-web's ``/render`` of
  ``sumSeries(srv.*.cpu)`` with ``maxDataPoints=100``, ``format=json``: its
  fetch from us (our pickled answer), unpickling, its sum and consolidation;
- ``our cluster answer``: our ``/graphite/render/?format=pickle`` of
  ``srv.*.cpu``, the part of the above that is ours.
"""

from __future__ import annotations

import argparse
import json
import queue
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import trio

from trio_metrics import ServerConfig, ServerInfo, serve
from trio_metrics.http import HttpLimits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from graphite_web import (
    GRAPHITE_WEB_MISSING,
    graphite_web_installed,
    running_graphite_web,
)

BASE = 1_700_000_000
STEP = 10


@contextmanager
def server_with(series: int, points: int) -> Iterator[ServerInfo]:
    """A server in a thread holding the series, its HTTP limits raised to answer them."""
    started: queue.Queue[Any] = queue.Queue()
    limits = HttpLimits(max_points=max(1_000_000, 2 * series * points))
    config = ServerConfig(host="127.0.0.1", port=0, http_port=0, http_limits=limits)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            info: ServerInfo = await nursery.start(serve, config)
            stamps = list(range(BASE, BASE + STEP * points, STEP))
            for number in range(series):
                values = [float((number + i) % 97) for i in range(points)]
                await info.store.put_batch([f"srv.h{number:04d}.cpu"] * points, values, stamps)
            started.put((info, trio.lowlevel.current_trio_token(), nursery.cancel_scope))

    thread = threading.Thread(target=trio.run, args=(main,), daemon=True)
    thread.start()
    info, token, scope = started.get(timeout=600)
    try:
        yield info
    finally:
        trio.from_thread.run_sync(scope.cancel, trio_token=token)
        thread.join(30)


def timed_get(url: str) -> tuple[float, bytes]:
    begun = time.perf_counter()
    with urllib.request.urlopen(url, timeout=600) as answer:
        body = bytes(answer.read())
    return time.perf_counter() - begun, body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--points", type=int, default=8640, help="points per series, 10 s apart")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not graphite_web_installed():
        sys.exit(GRAPHITE_WEB_MISSING)
    print("$ python bench/graphite_render.py " + " ".join(sys.argv[1:]))
    first, last = BASE, BASE + STEP * args.points - 1
    window = {"from": str(first), "until": str(last)}
    with server_with(args.series, args.points) as info, tempfile.TemporaryDirectory() as tmp:
        cluster = f"127.0.0.1:{info.http_port}/graphite"
        extra = "FETCH_TIMEOUT = 600\nFIND_TIMEOUT = 600\n"
        with running_graphite_web(Path(tmp), cluster, extra) as web:
            theirs = f"http://127.0.0.1:{web.port}/render/?" + urllib.parse.urlencode(
                {"target": "sumSeries(srv.*.cpu)", "format": "json", "maxDataPoints": "100"}
                | window
            )
            ours = f"http://{cluster}/render/?" + urllib.parse.urlencode(
                {"target": "srv.*.cpu", "format": "pickle", "local": "1"} | window
            )
            runs: dict[str, list[float]] = {"graphite-web sumSeries": [], "our cluster answer": []}
            for _ in range(args.repeat):
                seconds, body = timed_get(theirs)
                (summed,) = json.loads(body)
                assert len(summed["datapoints"]) <= 100, len(summed["datapoints"])
                runs["graphite-web sumSeries"].append(seconds)
                seconds, body = timed_get(ours)
                runs["our cluster answer"].append(seconds)
    print(f"{args.series} series x {args.points} points; {args.repeat} runs; answer {len(body)} B")
    for name, times in runs.items():
        shown = ", ".join(f"{each * 1000:.0f}" for each in times)
        print(f"  {name:24} median {statistics.median(times) * 1000:8.0f} ms  ({shown})")


if __name__ == "__main__":
    main()
