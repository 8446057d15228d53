"""Prometheus remote storage: remote write ingest per server CPU-second, and one remote read.

    python bench/remote_write.py                      # 400 requests (800k samples), 3 runs
    python bench/remote_write.py --requests 50 --repeat 1    # a quick look
    python bench/remote_write.py --data-dir           # through the write-ahead log too
    python bench/remote_write.py --in-process         # snappy, decoder, store: no server

Remote write: requests shaped as Prometheus 2.42 sends them (``--samples``
per request, 2,000 by default: one ``TimeSeries`` entry per sample, of
``--series`` series, 500 by default, each with ``__name__`` and nine more
labels; the series are scraped every 15 s and the samples of four scrapes
make one request), snappy-compressed, are posted back to back over one
keep-alive connection to a fresh ``trio-metrics serve --http-port``. The
figure is samples per CPU-second of the server process (user and system,
all threads, from /proc), from the first timed request to the last 204,
after ``--warm-up`` requests (20 by default) of the same series, untimed:
they load what a first request loads (numpy, the protobuf runtime) and
make the series known, as on a server that has run a while. The run then
checks with ``stats`` that every sample is stored.

Remote read: the same server then holds ``--read-series`` series (1,000)
of an hour at 15 s (240 points each, written by remote write); one
``ReadRequest`` for all of them (``{__name__="bench_read"}``, the hour) is
timed ``--read-repeat`` times from the client, from the request sent to the
response received whole (then decoded and checked); the median is
reported, with the answer's size. The first read of each server is not
timed (it loads numpy).
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import cramjam

from trio_metrics.http._prompb import remote_pb2, types_pb2

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")
SCRAPE_MS = 15_000
HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}


def cpu_seconds(pid: int) -> float:
    """User plus system CPU of a process, all its threads, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def series_labels(index: int, name: str = "bench_metric") -> list[tuple[str, str]]:
    """Ten labels, as a node exporter's series carry them."""
    return [
        ("__name__", f"{name}_{index % 25}"),
        ("cpu", str(index % 8)),
        ("datacenter", "eu-west-1"),
        ("env", "production"),
        ("host", f"host-{index // 25:03d}.example.net"),
        ("instance", f"10.0.{index // 250}.{index % 250}:9100"),
        ("job", "node"),
        ("mode", "user"),
        ("rack", f"r{index % 12}"),
        ("team", "platform"),
    ]


def write_requests(requests: int, series: int, samples: int, start_ms: int) -> list[bytes]:
    """Compressed WriteRequests: scrape after scrape of every series, ``samples`` per request."""
    labels = [series_labels(index) for index in range(series)]
    bodies = []
    sample = 0
    for _ in range(requests):
        request = remote_pb2.WriteRequest()
        for _ in range(samples):
            scrape, index = divmod(sample, series)
            entry = request.timeseries.add()
            entry.labels.extend(types_pb2.Label(name=n, value=v) for n, v in labels[index])
            entry.samples.add(
                value=float(sample % 1000) * 0.25, timestamp=start_ms + scrape * SCRAPE_MS
            )
            sample += 1
        bodies.append(bytes(cramjam.snappy.compress_raw(request.SerializeToString())))
    return bodies


def post_all(port: int, path: str, bodies: Sequence[bytes]) -> list[bytes]:
    connection = http.client.HTTPConnection(HOST, port, timeout=60)
    answers = []
    try:
        for body in bodies:
            connection.request("POST", path, body=body, headers=HEADERS)
            response = connection.getresponse()
            answer = response.read()
            if response.status not in (200, 204):
                raise SystemExit(f"{path}: {response.status} {answer[:300]!r}")
            answers.append(answer)
    finally:
        connection.close()
    return answers


def stats(port: int) -> dict[str, int]:
    with socket.create_connection((HOST, port), timeout=30) as sock:
        sock.sendall(b"stats\n")
        data = b""
        while not data.endswith(b"\n\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise SystemExit("stats: connection closed")
            data += chunk
    return {
        m.group(1).decode(): int(float(m.group(2)))
        for m in re.finditer(rb"trio_metrics\.(\S+) (\S+) \d+", data)
    }


def wait_accepting(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"port {port} never accepted")


def read_request(start_ms: int, end_ms: int) -> bytes:
    request = remote_pb2.ReadRequest()
    query = request.queries.add(start_timestamp_ms=start_ms, end_timestamp_ms=end_ms)
    query.matchers.add(type=types_pb2.LabelMatcher.EQ, name="__name__", value="bench_read")
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


def run(args: argparse.Namespace, workdir: Path) -> tuple[float, float, int, int]:
    """One fresh server: (samples per CPU-second, median read seconds, read bytes, samples read)."""
    main_port, http_port = free_port(), free_port()
    command = [sys.executable, "-m", "trio_metrics", "serve", "--port", str(main_port),
               "--http-port", str(http_port), "--log-level", "warning"]  # fmt: skip
    if args.data_dir:
        command += [
            "--data-dir",
            str(workdir / f"data-{time.monotonic_ns()}"),
            "--fsync",
            "everysec",
        ]
    process = subprocess.Popen(
        command, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=(workdir / "server.err").open("ab"),
    )  # fmt: skip
    try:
        wait_accepting(http_port, process)
        wait_accepting(main_port, process)
        start_ms = (int(time.time()) - 86_400) * 1000
        bodies = write_requests(args.warm_up + args.requests, args.series, args.samples, start_ms)
        # The warm-up's series are the timed ones, its scrapes the earlier.
        post_all(http_port, "/api/v1/write", bodies[: args.warm_up])
        before = cpu_seconds(process.pid)
        post_all(http_port, "/api/v1/write", bodies[args.warm_up :])
        used = cpu_seconds(process.pid) - before
        total = (args.warm_up + args.requests) * args.samples
        if stats(main_port)["points"] != total:
            raise SystemExit(f"stored {stats(main_port)['points']} points, not {total}")
        # An hour at 15 s of --read-series series, then read it back whole.
        read_start = start_ms - 7 * 86_400_000
        read_bodies = []
        points = 3600_000 // SCRAPE_MS
        for first in range(0, points * args.read_series, args.samples):
            request = remote_pb2.WriteRequest()
            for sample in range(first, min(first + args.samples, points * args.read_series)):
                scrape, index = divmod(sample, args.read_series)
                entry = request.timeseries.add()
                entry.labels.extend(
                    types_pb2.Label(name=n, value=v) for n, v in series_labels(index, "bench_read")
                )
                entry.labels[0].value = "bench_read"
                entry.samples.add(value=float(sample), timestamp=read_start + scrape * SCRAPE_MS)
            read_bodies.append(bytes(cramjam.snappy.compress_raw(request.SerializeToString())))
        post_all(http_port, "/api/v1/write", read_bodies)
        body = read_request(read_start, read_start + 3600_000 - 1)
        post_all(http_port, "/api/v1/read", [body])  # the first read loads numpy
        times = []
        answer = b""
        read_samples = 0
        for _ in range(args.read_repeat):
            began = time.perf_counter()
            (answer,) = post_all(http_port, "/api/v1/read", [body])
            times.append(time.perf_counter() - began)
            response = remote_pb2.ReadResponse.FromString(
                bytes(cramjam.snappy.decompress_raw(answer))
            )
            read_samples = sum(len(s.samples) for s in response.results[0].timeseries)
            if len(response.results[0].timeseries) != args.read_series:
                raise SystemExit(f"read {len(response.results[0].timeseries)} series")
        rate = args.requests * args.samples / used
        return rate, statistics.median(times), len(answer), read_samples
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def in_process(args: argparse.Namespace) -> None:
    """The server's own steps per sample, without HTTP: snappy, the decoder, the store."""
    from trio_metrics.http._remote_codec import SeriesKeys, decode_write_request, decompress
    from trio_metrics.storage import MetricStore

    bodies = write_requests(args.requests, args.series, args.samples, 1_700_000_000_000)
    warm = len(bodies) // 2
    keys, store = SeriesKeys(), MetricStore()
    spent = {"snappy": 0.0, "decode": 0.0, "put_columns": 0.0}
    for index, body in enumerate(bodies):
        began = time.process_time()
        data = decompress(body, 1 << 30)
        decompressed = time.process_time()
        batch = decode_write_request(data, keys, 1 << 30)
        decoded = time.process_time()
        store.put_columns(batch.keys, batch.values, batch.timestamps)
        if index >= warm:
            spent["snappy"] += decompressed - began
            spent["decode"] += decoded - decompressed
            spent["put_columns"] += time.process_time() - decoded
    samples = (len(bodies) - warm) * args.samples
    parts = ", ".join(f"{name} {seconds / samples * 1e6:.2f}" for name, seconds in spent.items())
    total = sum(spent.values())
    print(
        f"in-process, the last {len(bodies) - warm} of {len(bodies)} requests: {parts} µs a sample;"
        f" {samples / total:,.0f} samples per CPU-second without HTTP"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--samples", type=int, default=2000, help="samples per request")
    parser.add_argument(
        "--warm-up",
        type=int,
        default=20,
        help="requests posted before the timed ones, untimed (0: time from the first)",
    )
    parser.add_argument("--series", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--read-series", type=int, default=1000)
    parser.add_argument("--read-repeat", type=int, default=5)
    parser.add_argument("--data-dir", action="store_true", help="--data-dir, --fsync everysec")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="time snappy, the decoder and the store in this process (no server, no HTTP)",
    )
    args = parser.parse_args(argv)
    if args.in_process:
        for _ in range(args.repeat):
            in_process(args)
        return 0
    rates, reads = [], []
    print(f"each run: {args.warm_up} requests of warm-up, untimed, then {args.requests} timed")
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(args.repeat):
            rate, read_seconds, size, samples = run(args, Path(tmp))
            rates.append(rate)
            reads.append(read_seconds)
            print(
                f"run {index + 1}: remote write {rate:,.0f} samples per server CPU-second;"
                f" remote read of {samples:,} samples ({size:,} bytes compressed):"
                f" {read_seconds * 1000:.1f} ms",
                flush=True,
            )
    print(
        f"median: remote write {statistics.median(rates):,.0f} samples per server CPU-second;"
        f" remote read {statistics.median(reads) * 1000:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
