"""Prometheus itself as the remote storage client: remote write in, remote read out."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from conftest import server_in_thread, skip_or_fail
from prometheus_process import PROMETHEUS_MISSING, find_prometheus, running_prometheus

from trio_metrics import Client
from trio_metrics.wire import key_from_labels

#: Prometheus scrapes about 5 s after it is ready, then writes within a second.
WRITE_WAIT = 20.0

Points = list[tuple[int, float]]


@pytest.fixture
def prometheus_program() -> str:
    program = find_prometheus()
    if program is None:
        skip_or_fail(PROMETHEUS_MISSING)
    return program


@pytest.mark.e2e
def test_prometheus_remote_writes_its_own_metrics_to_us(
    prometheus_program: str, tmp_path: Path
) -> None:
    config = """
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: self
    static_configs: [{targets: ["127.0.0.1:{port}"]}]
remote_write:
  - url: http://127.0.0.1:%d/api/v1/write
    queue_config: {batch_send_deadline: 1s, min_backoff: 100ms}
"""
    names = ("prometheus_build_info", "prometheus_tsdb_head_series")
    with server_in_thread(http_port=0) as info:
        with (
            running_prometheus(prometheus_program, tmp_path, config % info.http_port) as prom,
            Client("127.0.0.1", info.port, timeout=10) as client,
        ):
            deadline = time.monotonic() + WRITE_WAIT
            ours: dict[str, Points] = {}
            while time.monotonic() < deadline:
                ours = {
                    key: points
                    for key, points in client.get("*").items()
                    if key.startswith(tuple(f"{name};" for name in names))
                }
                if len(ours) == len(names) and all(len(p) >= 3 for p in ours.values()):
                    break
                time.sleep(0.5)
            assert len(ours) == len(names), (sorted(ours), prom.log.read_text()[-2000:])
            # Prometheus' own raw samples (a range selector gives them with their ms).
            for name in names:
                (series,) = prom.api("query", query=f"{name}[1m]", time=time.time())["result"]
                key = key_from_labels(series["metric"].items())
                assert key in ours
                theirs = {int(t * 1000) // 1000: float(v) for t, v in series["values"]}
                stored = dict(ours[key])
                common = stored.keys() & theirs.keys()
                assert len(common) >= 3
                assert {t: stored[t] for t in common} == {t: theirs[t] for t in common}
            assert {value for _, value in ours[next(k for k in ours if "build_info" in k)]} == {1.0}


# --- reads out ---------------------------------------------------------------

START = 1501864247  # 2017-08-04 16:30:47 UTC
#: Every 10 s for 10 minutes; values climb, with one reset (a counter's restart).
PALM_CPU = [(START + 10 * i, 10.6 + 1.5 * i if i < 30 else 1.5 * (i - 30)) for i in range(60)]
PALM_DASH = [(START + 20 * i, 100.0 + i) for i in range(30)]
HOST_A = [(START + 30 * i, 2.0 * i) for i in range(20)]
HOST_B = [(START + 60 * i, 5.0 + i) for i in range(10)]
#: Query steps: multiples of 60 s, so no point (all at 7 mod 10) sits on a window's edge.
STEPS = list(range(START - START % 60, START - START % 60 + 900 + 1, 60))
LOOKBACK = 300


def last_within(points: Points, t: int, window: int) -> float | None:
    inside = [value for stamp, value in points if t - window <= stamp <= t]
    return inside[-1] if inside else None


def extrapolated_rate(points: Points, t: int, window: int) -> float | None:
    """Prometheus 2.42's rate() (promql/functions.go extrapolatedRate), for a counter."""
    inside = [(stamp, value) for stamp, value in points if t - window <= stamp <= t]
    if len(inside) < 2:
        return None
    result = inside[-1][1] - inside[0][1]
    for (_, before), (_, after) in itertools.pairwise(inside):
        if after < before:
            result += before
    to_start: float = inside[0][0] - (t - window)
    to_end = t - inside[-1][0]
    sampled = inside[-1][0] - inside[0][0]
    average = sampled / (len(inside) - 1)
    if result > 0 and inside[0][1] >= 0:
        to_start = min(to_start, sampled * (inside[0][1] / result))
    threshold = average * 1.1
    interval = float(sampled)
    interval += to_start if to_start < threshold else average / 2
    interval += to_end if to_end < threshold else average / 2
    return result * (interval / sampled) / window


def expected(compute: Callable[[int], float | None]) -> list[tuple[int, float]]:
    return [(t, value) for t in STEPS if (value := compute(t)) is not None]


def answered(result: Sequence[dict[str, object]]) -> dict[str, list[tuple[int, float]]]:
    by_group = {}
    for series in result:
        labels = series["metric"]
        assert isinstance(labels, dict)
        values = series["values"]
        assert isinstance(values, list)
        by_group[",".join(f"{k}={v}" for k, v in sorted(labels.items()))] = [
            (int(t), float(v)) for t, v in values
        ]
    return by_group


def close(got: list[tuple[int, float]], want: list[tuple[int, float]]) -> bool:
    return [t for t, _ in got] == [t for t, _ in want] and all(
        math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
        for (_, a), (_, b) in zip(got, want, strict=True)
    )


@pytest.mark.e2e
def test_prometheus_remote_reads_what_our_protocol_stored(
    prometheus_program: str, tmp_path: Path
) -> None:
    with server_in_thread(http_port=0) as info:
        with Client("127.0.0.1", info.port, timeout=10) as client:
            for key, series in [
                ("palm.cpu", PALM_CPU),
                ("palm-cpu", PALM_DASH),
                ("palm_cpu;host=a", HOST_A),
                ("palm_cpu;host=b", HOST_B),
            ]:
                for stamp, value in series:
                    client.put(key, value, stamp)
            stored = client.get("*")
        points = {key: list(each) for key, each in stored.items()}
        config = """
global: {scrape_interval: 1m}
remote_read:
  - url: http://127.0.0.1:%d/api/v1/read
    read_recent: true
"""
        with running_prometheus(prometheus_program, tmp_path, config % info.http_port) as prom:

            def query_range(expression: str) -> dict[str, list[tuple[int, float]]]:
                return answered(
                    prom.api(
                        "query_range", query=expression, start=STEPS[0], end=STEPS[-1], step=60
                    )["result"]
                )

            plain = query_range('palm_cpu{graphite_path="palm.cpu"}')
            assert list(plain) == ["__name__=palm_cpu,graphite_path=palm.cpu"]
            want = expected(lambda t: last_within(points["palm.cpu"], t, LOOKBACK))
            assert close(plain["__name__=palm_cpu,graphite_path=palm.cpu"], want)

            groups = query_range("sum by (host) (palm_cpu)")

            def summed(keys: list[str]) -> Callable[[int], float | None]:
                def compute(t: int) -> float | None:
                    found = [last_within(points[key], t, LOOKBACK) for key in keys]
                    present = [value for value in found if value is not None]
                    return sum(present) if present else None

                return compute

            assert sorted(groups) == ["", "host=a", "host=b"]
            assert close(groups[""], expected(summed(["palm.cpu", "palm-cpu"])))
            assert close(groups["host=a"], expected(summed(["palm_cpu;host=a"])))
            assert close(groups["host=b"], expected(summed(["palm_cpu;host=b"])))

            rate = query_range('rate(palm_cpu{graphite_path="palm.cpu"}[2m])')
            want = expected(lambda t: extrapolated_rate(points["palm.cpu"], t, 120))
            assert close(rate["graphite_path=palm.cpu"], want), (rate, want)

            last = query_range('last_over_time(palm_cpu{host="a"}[1m])')
            want = expected(lambda t: last_within(points["palm_cpu;host=a"], t, 60))
            assert close(last["__name__=palm_cpu,host=a"], want), (last, want)
