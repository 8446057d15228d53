"""Graphite tag queries over 100k tagged keys: milliseconds per request, over real HTTP.

    python bench/graphite_tags.py                 # 100k keys, 10 requests per query
    python bench/graphite_tags.py --requests 3    # a quick look
    python bench/graphite_tags.py --metrics 10    # 10,000 keys

A server with its HTTP API on 127.0.0.1 runs in a thread of this process,
holding ``m{000..099};host=h{000000..};job=j{0..6}`` (1,000 series per
metric, one point each). A client on one keep-alive connection asks for each
query in turn (``/graphite/tags/findSeries``, a tag's values, Grafana's
completions) and the wall time of each whole request is taken. The median
and the 90th percentile per query are printed with the number of keys or
values in the answer, so that a fast empty answer cannot pass for speed. A
query with ``name=`` reads only that metric's keys; the others read them all.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import time
import urllib.parse

from graphite_find import get, server_with

QUERIES: tuple[tuple[str, str, list[tuple[str, str]]], ...] = (
    (
        "findSeries name=,job=",
        "/graphite/tags/findSeries",
        [("expr", "name=m042"), ("expr", "job=j3")],
    ),
    ("findSeries job= (scan)", "/graphite/tags/findSeries", [("expr", "job=j3")]),
    ("findSeries job=~ (scan)", "/graphite/tags/findSeries", [("expr", "job=~j3")]),
    ("tag values job (scan)", "/graphite/tags/job", []),
    (
        "complete values, name=",
        "/graphite/tags/autoComplete/values",
        [("tag", "host"), ("expr", "name=m042")],
    ),
)


def keys(metrics: int = 100, per_metric: int = 1000) -> list[str]:
    return [
        f"m{metric:03d};host=h{metric * per_metric + index:06d};job=j{index % 7}"
        for metric in range(metrics)
        for index in range(per_metric)
    ]


def measure(
    port: int, path: str, params: list[tuple[str, str]], requests: int
) -> tuple[list[float], int]:
    """Milliseconds of each request, and how many items its answer holds."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    url = path + "?" + urllib.parse.urlencode(params)
    times = []
    try:
        answer = json.loads(get(connection, url))
        found = len(answer["values"]) if isinstance(answer, dict) else len(answer)
        for _ in range(requests):
            begun = time.perf_counter()
            get(connection, url)
            times.append((time.perf_counter() - begun) * 1000)
    finally:
        connection.close()
    return times, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=10, help="requests per query")
    parser.add_argument("--metrics", type=int, default=100, help="metrics (1,000 series each)")
    args = parser.parse_args()
    all_keys = keys(metrics=args.metrics)
    command = "python bench/graphite_tags.py" + " ".join(sys.argv[1:]).join([" ", ""]).rstrip()
    print(f"$ {command}")
    print(f"{len(all_keys)} keys; {args.requests} requests per query over one connection")
    with server_with(all_keys) as info:
        assert info.http_port is not None
        for label, path, params in QUERIES:
            times, found = measure(info.http_port, path, params, args.requests)
            median = statistics.median(times)
            p90 = statistics.quantiles(times, n=10)[-1] if len(times) > 1 else times[0]
            print(f"  {label:28} {found:6} found  median {median:8.2f} ms  p90 {p90:8.2f} ms")


if __name__ == "__main__":
    main()
