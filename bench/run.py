"""Benchmark trio-metrics against the plain asyncio baseline and the trio floor, side by side.

    python bench/run.py                   # every scenario, 5 repetitions, full counts
    python bench/run.py --quick           # small counts, 2 repetitions
    python bench/run.py --scenarios rr-1,get-all --repeat 3

Each scenario run gets a fresh server process; the servers take turns
(ours, baseline, floor, ours, baseline, floor, ...). Ours runs from a copy of
trio_metrics/ taken when the run starts, so that edits made meanwhile do not
mix versions. The floor (bench/trio_floor.py) answers every line ``ok`` and
stores nothing: it runs in the put scenarios only, and is not verified.
Before each timed phase of the put scenarios the load runs for ``--warmup``
seconds at full speed, so that the servers are measured in the rhythm they
settle into, not the one they start in. ``rr-50@20k`` and the like send at a
fixed rate, open loop (bench/openloop.py). Every run checks afterwards, over a
fresh connection, that the server stored every point with its last value; a
failed check is reported loudly and makes the exit status 1. The table of
medians goes to stdout, progress to stderr; the figures of every run go to
a JSON file, and a chart to a PNG when matplotlib is installed. Linux only:
server CPU and memory are read from /proc.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import importlib
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import loadgen
import openloop
from loadgen import ConnectionPlan, Deadline

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
HOST = "127.0.0.1"
SERVERS = ("ours", "baseline", "floor")
SERVER_LABELS = {"ours": "trio-metrics", "baseline": "asyncio baseline", "floor": "trio floor"}
#: The floor stores nothing and answers every line ``ok``: it takes part in the
#: put scenarios only.
FLOOR_SCENARIOS = ("rr-1", "rr-50", "pipelined")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
#: The shortest phase whose CPU shares are shown: /proc/PID/stat counts in
#: clock ticks (10 ms), schedstat in nanoseconds.
MIN_CPU_PHASE = {"ticks": 1.0, "ns": 0.1}
BANNER = re.compile(rb"listening on (\S+):(\d+)")


@dataclass(frozen=True)
class Counts:
    """How much work each scenario does."""

    rr1_puts: int = 20_000
    rr50_connections: int = 50
    rr50_puts_per_connection: int = 1_000
    pipelined_connections: int = 4
    pipelined_batches: int = 250
    batch: int = 1_000
    getall_points: int = 1_000_000
    getall_keys: int = 100
    getall_repeats: int = 5
    getkey_points: int = 10_000
    getkey_reads: int = 1_000
    memory_points: int = 1_000_000
    memory_keys: int = 100
    #: Length of the timed phase of a fixed-rate scenario (after its warm-up).
    rate_seconds: float = 5.0
    timeout: float = 240.0


FULL = Counts()
QUICK = Counts(
    rr1_puts=1_000,
    rr50_connections=50,
    rr50_puts_per_connection=20,
    pipelined_connections=4,
    pipelined_batches=1,
    getall_points=1_000,
    getall_repeats=3,
    getkey_points=1_000,
    getkey_reads=5,
    memory_points=1_000,
    rate_seconds=0.5,
    timeout=20.0,
)


@dataclass(frozen=True)
class Metric:
    """One row of the table: a figure of a scenario and which way is better."""

    key: str
    label: str
    better: str  # "higher", "lower", or "-" for a figure that only explains the others
    percent: bool = False


def _throughput_metrics(unit: str) -> list[Metric]:
    return [
        Metric("puts_per_s", "puts/s", "higher"),
        Metric("server_cpu_us_per_put", f"server CPU us/{unit}", "lower"),
        # Beside the throughput, because a generator that saturates first caps
        # every server alike, and the throughput ratio then says nothing.
        Metric("server_cpu_share", "server CPU (of a core)", "-", percent=True),
        Metric("generator_cpu_share", "generator CPU (of its cores)", "-", percent=True),
    ]


METRICS: dict[str, list[Metric]] = {
    "rr-1": _throughput_metrics("request"),
    "rr-50": _throughput_metrics("request"),
    "pipelined": _throughput_metrics("put"),
    "get-all": [
        Metric("first_read_s", "first get * (s)", "lower"),
        Metric("repeat_read_s", "repeated get * (s)", "lower"),
    ],
    "get-key": [Metric("read_s", "get key (s)", "lower")],
    "memory": [
        Metric("bytes_per_point", "RSS bytes/point", "lower"),
        Metric("rss_after_mb", "RSS after load (MB)", "lower"),
    ],
    "startup": [Metric("startup_s", "spawn to first answer (s)", "lower")],
}
#: Fixed-rate scenarios: ``rr-1@RATE`` or ``rr-50@RATE`` (requests/s over all
#: connections, e.g. ``5k``, ``20k``, ``2500``), open loop.
RATE_NAME = re.compile(r"(rr-1|rr-50)@(\d+(?:\.\d+)?)(k?)")
RATE_METRICS = [
    Metric("server_cpu_us_per_put", "server CPU us/request", "lower"),
    Metric("latency_p50_ms", "p50 latency (ms)", "lower"),
    Metric("latency_p99_ms", "p99 latency (ms)", "lower"),
    Metric("achieved_per_s", "achieved requests/s", "-"),
    Metric("server_cpu_share", "server CPU (of a core)", "-", percent=True),
    Metric("generator_cpu_share", "generator CPU (of its cores)", "-", percent=True),
]
SCENARIOS = ["rr-1", "rr-50", "pipelined", "rr-50@5k", "rr-50@20k"]
SCENARIOS += ["get-all", "get-key", "memory", "startup"]
#: What the chart shows per scenario (metric keys).
CHART: dict[str, tuple[str, ...]] = {
    "rr-1": ("server_cpu_us_per_put", "puts_per_s"),
    "rr-50": ("server_cpu_us_per_put", "puts_per_s"),
    "pipelined": ("server_cpu_us_per_put", "puts_per_s"),
    "get-all": ("repeat_points_per_s",),
    "get-key": ("points_per_s",),
}
RATE_CHART = ("server_cpu_us_per_put", "latency_p99_ms")


def rate_of(name: str) -> float | None:
    """The requests/s of a fixed-rate scenario's name; None for any other name."""
    match = RATE_NAME.fullmatch(name)
    if not match:
        return None
    return float(match.group(2)) * (1000 if match.group(3) else 1)


def base_scenario(name: str) -> str:
    """The connections a name runs: ``rr-50`` for ``rr-50@20k``."""
    return name.split("@")[0] if rate_of(name) else name


def metrics_for(name: str) -> list[Metric]:
    return RATE_METRICS if rate_of(name) else METRICS[name]


class BenchError(Exception):
    """A run that could not be completed: the server failed to start, hung or answered wrongly."""


# --- server processes ---------------------------------------------------------


def server_command(kind: str, port: int) -> list[str]:
    if kind == "ours":
        return [
            sys.executable,
            "-m",
            "trio_metrics",
            "serve",
            "--host",
            HOST,
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
    script = "asyncio_server.py" if kind == "baseline" else "trio_floor.py"
    return [
        sys.executable,
        str(BENCH_DIR / script),
        "--host",
        HOST,
        "--port",
        str(port),
    ]


class Server:
    """A server process whose output goes to files (a pipe nobody reads could fill up)."""

    def __init__(
        self, kind: str, workdir: Path, port: int = 0, cpus: set[int] | None = None
    ) -> None:
        self.kind = kind
        self.stdout_path = workdir / f"{kind}.out"
        self.stderr_path = workdir / f"{kind}.err"
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.spawned = time.perf_counter()
            self.process = subprocess.Popen(
                server_command(kind, port),
                # Ours runs from the snapshot (``python -m`` puts the working
                # directory first on sys.path); the others from the repository.
                cwd=workdir / "src" if kind == "ours" else REPO,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        if cpus:
            os.sched_setaffinity(self.process.pid, cpus)
        self.port = port
        self.exit_code: int | None = None
        self.cpu_resolution = "ns"

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_for_banner(self, deadline: Deadline) -> int:
        """Wait for the ``listening on HOST:PORT`` line; return the port."""
        while True:
            match = BANNER.search(self.stdout_path.read_bytes())
            if match:
                self.port = int(match.group(2))
                return self.port
            if self.process.poll() is not None:
                raise BenchError(
                    f"{self.kind} server exited with {self.process.returncode} "
                    + self.stderr_tail()
                )
            if deadline.at - time.monotonic() < 0:
                raise BenchError(f"{self.kind} server printed no banner in time")
            time.sleep(0.005)

    def cpu_seconds(self) -> float:
        """CPU time of the server so far, all threads: see :func:`process_cpu_seconds`."""
        seconds, self.cpu_resolution = process_cpu_seconds(self.pid)
        return seconds

    def status_kib(self, name: str) -> int:
        """A ``kB`` figure of /proc/PID/status, e.g. ``VmRSS`` or ``VmHWM``."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
        raise BenchError(f"no {name} in /proc/{self.pid}/status")

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise BenchError(
                f"{self.kind} server died with status {self.process.returncode} "
                + self.stderr_tail()
            )

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit within 10 s; return its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
                self.exit_code = None
                return None
        self.exit_code = self.process.returncode
        return self.exit_code

    def stderr_tail(self, size: int = 2000) -> str:
        try:
            text = self.stderr_path.read_bytes()[-size:].decode("utf-8", "replace")
        except OSError:
            return ""
        return f"(stderr: {text.strip()!r})" if text.strip() else "(stderr empty)"


def process_cpu_seconds(pid: int) -> tuple[float, str]:
    """CPU time of process ``pid`` so far, and its resolution: ``ns`` or ``ticks``.

    The time each thread has run, from ``/proc/PID/task/*/schedstat``, is
    exact to the nanosecond, where ``/proc/PID/stat`` counts 10 ms clock
    ticks (a tenth of a second of load would be a few ticks); the ticks are
    the fallback for a kernel without schedstat.
    """
    try:
        total = 0
        for task in Path(f"/proc/{pid}/task").iterdir():
            total += int((task / "schedstat").read_text().split()[0])
        return total / 1e9, "ns"
    except (OSError, ValueError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        # The command name may contain spaces; the fields after it do not.
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS, "ticks"


def snapshot_package(workdir: Path) -> dict[str, Any]:
    """Copy trio_metrics/ to ``workdir/src`` and describe the copy.

    Every run of ours starts from this copy, so that edits to the working
    tree while the benchmark runs cannot mix two versions in one table.
    """
    target = workdir / "src" / "trio_metrics"
    shutil.copytree(
        REPO / "trio_metrics", target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    digest = hashlib.sha256()
    for path in sorted(target.rglob("*.py")):
        digest.update(path.relative_to(target).as_posix().encode() + b"\0" + path.read_bytes())
    return {
        "commit": _git("rev-parse", "--short", "HEAD"),
        "sha256": digest.hexdigest()[:12],
        "local_changes": bool(_git("status", "--porcelain", "--", "trio_metrics")),
    }


def _git(*args: str) -> str | None:
    try:
        completed = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return completed.stdout.strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


# --- scenarios ------------------------------------------------------------------


@dataclass
class Outcome:
    """The figures of one scenario run on one server."""

    metrics: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    #: None: nothing to verify (the floor stores nothing).
    verified: bool | None = False
    problems: list[str] = field(default_factory=list)


#: A scenario fills in the outcome as it goes, so that figures measured before a failed
#: check are still reported.
Scenario = Callable[[Server, Counts, Deadline, argparse.Namespace, Outcome], None]


def _verify_keys(server: Server, plans: Sequence[ConnectionPlan], deadline: Deadline) -> int:
    """``get key`` for every key of ``plans`` over a fresh connection; return points checked."""
    checked = 0
    with loadgen.connect(HOST, server.port, deadline) as sock:
        for plan in plans:
            for key in plan.keys:
                expected = loadgen.expected_get_answer([(key, plan.puts_per_key)], plan.overwrite)
                answer = loadgen.ask(sock, f"get {key}\n".encode(), deadline)
                _compare(f"get {key}", answer, expected)
                checked += answer.count(b"\n") - 2
    return checked


def _compare(what: str, answer: bytes, expected: bytes) -> None:
    if answer == expected:
        return
    got = answer.split(b"\n")
    want = expected.split(b"\n")
    for line_number, (a, b) in enumerate(zip(got, want, strict=False)):
        if a != b:
            raise BenchError(
                f"verification failed: {what}: line {line_number} is {a[:200]!r},"
                f" expected {b[:200]!r} ({len(got) - 3} data lines, expected {len(want) - 3})"
            )
    raise BenchError(
        f"verification failed: {what}: {len(got) - 3} data lines, expected {len(want) - 3}"
    )


def machine_busy_seconds() -> float:
    """CPU time all processes of the machine have used so far, from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(f) for f in stat.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...: all but idle and iowait.
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLOCK_TICKS


class CpuMeter:
    """CPU used by the server, by the generator and by everything else, over one phase."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.start = (0.0, 0.0, 0.0, 0.0)

    def _read(self) -> tuple[float, float, float, float]:
        return (
            time.perf_counter(),
            self.server.cpu_seconds(),
            machine_busy_seconds(),
            loadgen.own_cpu_seconds(),
        )

    def begin(self) -> None:
        self.start = self._read()

    def end(self, generator_cpu: float | None = None) -> dict[str, Any]:
        """Seconds of CPU over the phase; ``generator_cpu`` if not this process's own."""
        now = self._read()
        wall, server, machine, own = (b - a for a, b in zip(self.start, now, strict=True))
        generator = own if generator_cpu is None else generator_cpu
        # Whatever the machine did beyond the server and the generator disturbed
        # the figures (another program, or this one's other work).
        other = max(0.0, machine - server - generator)
        return {
            "wall_s": wall,
            "server_cpu_s": server,
            "server_cpu_load": server / wall if wall > 0 else float("nan"),
            "other_cpu_load": other / wall if wall > 0 else float("nan"),
            "server_cpu_resolution": self.server.cpu_resolution,
        }


def _throughput(
    server: Server,
    plans: Sequence[ConnectionPlan],
    deadline: Deadline,
    args: argparse.Namespace,
    outcome: Outcome,
    processes: int = 1,
) -> None:
    """Run ``plans`` after the warm-up; CPU and throughput of the timed window only."""
    meter = CpuMeter(server)
    result = loadgen.request_response(
        HOST,
        server.port,
        plans,
        timeout=deadline.left(),
        processes=processes,
        on_start=meter.begin,
        warmup=args.warmup,
    )
    cpu = meter.end(result.generator_cpu)
    server.check_alive()
    if not result.puts:
        raise BenchError("no request was answered in the timed phase")
    outcome.metrics.update(
        puts_per_s=result.puts_per_second,
        server_cpu_us_per_put=cpu["server_cpu_s"] / result.puts * 1e6,
        server_cpu_share=cpu["server_cpu_load"],
        generator_cpu_share=result.generator_load,
    )
    outcome.info.update(load=result.as_dict(), cpu=cpu)
    if server.kind == "floor":
        outcome.verified = None
        return
    outcome.info["points_verified"] = _verify_keys(server, [*plans, *result.warm_stored], deadline)
    outcome.verified = True


def scenario_rr1(
    server: Server, counts: Counts, deadline: Deadline, args: Any, outcome: Outcome
) -> None:
    plans = [ConnectionPlan(("bench.rr1.c0",), counts.rr1_puts)]
    _throughput(server, plans, deadline, args, outcome)


def scenario_rr50(
    server: Server, counts: Counts, deadline: Deadline, args: Any, outcome: Outcome
) -> None:
    plans = [
        ConnectionPlan((f"bench.rr50.c{i:02d}",), counts.rr50_puts_per_connection)
        for i in range(counts.rr50_connections)
    ]
    processes = args.loadgen_processes or loadgen.default_processes()
    _throughput(server, plans, deadline, args, outcome, processes)


def scenario_pipelined(
    server: Server, counts: Counts, deadline: Deadline, args: Any, outcome: Outcome
) -> None:
    plans = [
        ConnectionPlan(
            (f"bench.pipe.c{i}",), counts.pipelined_batches * counts.batch, batch=counts.batch
        )
        for i in range(counts.pipelined_connections)
    ]
    _throughput(server, plans, deadline, args, outcome)


def _big_plan(points: int, keys: int, batch: int) -> ConnectionPlan:
    return ConnectionPlan(
        tuple(f"bench.k{i:03d}" for i in range(keys)), points // keys, batch=batch, overwrite=False
    )


def scenario_get_all(
    server: Server, counts: Counts, deadline: Deadline, args: Any, outcome: Outcome
) -> None:
    plan = _big_plan(counts.getall_points, counts.getall_keys, counts.batch)
    load = loadgen.load(HOST, server.port, plan, deadline)
    expected = plan.expected_answer()
    outcome.info.update(points=plan.puts, answer_bytes=len(expected), load=load.as_dict())
    times = []
    answers = []
    with loadgen.connect(HOST, server.port, deadline) as sock:
        meter = CpuMeter(server)
        meter.begin()
        for _ in range(1 + counts.getall_repeats):
            seconds, answer = loadgen.timed_get(sock, "*", deadline)
            times.append(seconds)
            answers.append(answer)
        cpu = meter.end()
    repeat = statistics.median(times[1:])
    outcome.metrics.update(
        first_read_s=times[0], repeat_read_s=repeat, repeat_points_per_s=plan.puts / repeat
    )
    outcome.info.update(
        read_times_s=times,
        cpu=cpu,
        server_cpu_s_per_read=cpu["server_cpu_s"] / len(times),
        # What answering (and any caching of answers) costs in memory.
        rss_after_reads_kib=server.status_kib("VmRSS"),
        peak_rss_kib=server.status_kib("VmHWM"),
    )
    server.check_alive()
    # Every answer is checked whole (line count and every value), untimed.
    for answer in answers:
        _compare("get *", answer, expected)
    outcome.verified = True


def scenario_get_key(
    server: Server, counts: Counts, deadline: Deadline, args: Any, outcome: Outcome
) -> None:
    plan = ConnectionPlan(("bench.one",), counts.getkey_points, batch=counts.batch, overwrite=False)
    loadgen.load(HOST, server.port, plan, deadline)
    expected = plan.expected_answer()
    times = []
    answers = []
    with loadgen.connect(HOST, server.port, deadline) as sock:
        meter = CpuMeter(server)
        meter.begin()
        for _ in range(counts.getkey_reads):
            seconds, answer = loadgen.timed_get(sock, "bench.one", deadline)
            times.append(seconds)
            answers.append(answer)
    read = statistics.median(times)
    outcome.metrics.update(read_s=read, points_per_s=plan.puts / read)
    outcome.info.update(points=plan.puts, read_times_s=times, cpu=meter.end())
    server.check_alive()
    for answer in answers:
        _compare("get bench.one", answer, expected)
    outcome.verified = True


def scenario_memory(
    server: Server, counts: Counts, deadline: Deadline, args: Any, outcome: Outcome
) -> None:
    plan = _big_plan(counts.memory_points, counts.memory_keys, counts.batch)
    plan.requests()  # built (and cached) before the first reading, which is of an idle server
    with loadgen.connect(HOST, server.port, deadline) as sock:
        if loadgen.ask(sock, b"get x\n", deadline) != loadgen.OK:
            raise BenchError("get x was not answered ok")
    before = server.status_kib("VmRSS")
    load = loadgen.load(HOST, server.port, plan, deadline)
    # A fresh exchange after the loading connection closed: the server is idle again.
    with loadgen.connect(HOST, server.port, deadline) as sock:
        loadgen.ask(sock, b"get x\n", deadline)
    after = server.status_kib("VmRSS")
    outcome.metrics.update(
        bytes_per_point=(after - before) * 1024 / plan.puts, rss_after_mb=after / 1024
    )
    outcome.info.update(
        points=plan.puts,
        rss_before_kib=before,
        rss_after_kib=after,
        peak_rss_while_loading_kib=server.status_kib("VmHWM"),
        load=load.as_dict(),
    )
    with loadgen.connect(HOST, server.port, deadline) as sock:
        _compare("get *", loadgen.ask(sock, b"get *\n", deadline), plan.expected_answer())
    server.check_alive()
    outcome.verified = True


def scenario_startup(
    server: Server, counts: Counts, deadline: Deadline, args: Any, outcome: Outcome
) -> None:
    answered = loadgen.wait_until_answering(HOST, server.port, deadline)
    outcome.metrics["startup_s"] = answered - server.spawned
    server.wait_for_banner(deadline)
    outcome.verified = True


def scenario_fixed_rate(
    server: Server,
    counts: Counts,
    deadline: Deadline,
    args: Any,
    outcome: Outcome,
    *,
    rate: float,
    connections: int,
) -> None:
    """Puts at a fixed total rate, open loop: CPU per request and latency at that rate."""
    schedule = openloop.schedule_for(rate, connections, args.warmup, counts.rate_seconds)
    plans = [ConnectionPlan((f"bench.rate.c{i:02d}",), schedule.timed) for i in range(connections)]
    processes = args.loadgen_processes or openloop.default_processes(rate, connections)
    meter = CpuMeter(server)
    result = openloop.fixed_rate(
        HOST, server.port, plans, schedule, deadline.left(), processes, on_start=meter.begin
    )
    cpu = meter.end(result.generator_cpu)
    server.check_alive()
    outcome.metrics.update(
        # Divided by every answer of the window: the server's work in it.
        server_cpu_us_per_put=cpu["server_cpu_s"] / result.answers_in_window * 1e6,
        latency_p50_ms=result.latency_ms["p50"],
        latency_p99_ms=result.latency_ms["p99"],
        achieved_per_s=result.achieved_per_s,
        server_cpu_share=cpu["server_cpu_s"] / result.window_s,
        generator_cpu_share=result.generator_load,
    )
    outcome.info.update(load=result.as_dict(), cpu=cpu, schedule=asdict(schedule))
    if server.kind == "floor":
        outcome.verified = None
        return
    outcome.info["points_verified"] = _verify_keys(server, [*plans, *result.warm_stored], deadline)
    outcome.verified = True


SCENARIO_FUNCTIONS: dict[str, Scenario] = {
    "rr-1": scenario_rr1,
    "rr-50": scenario_rr50,
    "pipelined": scenario_pipelined,
    "get-all": scenario_get_all,
    "get-key": scenario_get_key,
    "memory": scenario_memory,
    "startup": scenario_startup,
}


def scenario_function(name: str) -> Scenario:
    rate = rate_of(name)
    if rate is None:
        return SCENARIO_FUNCTIONS[name]
    connections = 50 if base_scenario(name) == "rr-50" else 1
    return functools.partial(scenario_fixed_rate, rate=rate, connections=connections)


def run_once(
    name: str, kind: str, counts: Counts, args: argparse.Namespace, workdir: Path
) -> Outcome:
    """One scenario on one fresh server process, which is always stopped afterwards."""
    deadline = Deadline(counts.timeout)
    # The startup scenario must know the port before the server can say it.
    port = free_port() if name == "startup" else 0
    server = Server(kind, workdir, port, args.server_cpus)
    outcome = Outcome()
    try:
        if name != "startup":
            server.wait_for_banner(deadline)
        scenario_function(name)(server, counts, deadline, args, outcome)
    except Exception as exc:
        # Recorded and reported at the end (exit status 1); the other runs go on.
        outcome.verified = False
        outcome.problems.append(f"{type(exc).__name__}: {exc} {server.stderr_tail()}")
    finally:
        status = server.stop()
    if status != 0:
        outcome.problems.append(
            f"{kind} server exit status on SIGTERM: {status} (expected 0) {server.stderr_tail()}"
        )
    stderr = server.stderr_path.read_text("utf-8", "replace")
    if "Traceback" in stderr or " ERROR " in stderr:
        outcome.problems.append(f"{kind} server logged an error: {stderr[-2000:]!r}")
    return outcome


# --- report -------------------------------------------------------------------

#: A generator busier than this (share of its cores) is taken as saturated.
SATURATED = 0.9


def fmt(value: float | None, percent: bool = False) -> str:
    if value is None or value != value:  # NaN
        return "-"
    if percent:
        return f"{value:.0%}"
    if abs(value) >= 10_000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def verdict(ratio: float | None, better: str) -> str:
    if better not in ("higher", "lower") or ratio is None or ratio != ratio or ratio <= 0:
        return "-"
    favourable = ratio if better == "higher" else 1 / ratio
    if abs(favourable - 1) < 0.03:
        return "about the same"
    if favourable > 1:
        return f"ours {favourable:.2f}x better"
    return f"ours {1 / favourable:.2f}x worse"


def median_of(outcomes: list[Outcome], key: str) -> float | None:
    values = [o.metrics[key] for o in outcomes if key in o.metrics]
    return statistics.median(values) if values else None


def servers_for(name: str) -> tuple[str, ...]:
    """The servers a scenario runs on: the floor only where every request is a put."""
    if base_scenario(name) in FLOOR_SCENARIOS:
        return SERVERS
    return ("ours", "baseline")


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _generator_bound(by_server: dict[str, list[Outcome]]) -> str | None:
    """Why a throughput ratio says nothing here, if it does not."""
    shares = [median_of(by_server[kind], "generator_cpu_share") for kind in ("ours", "baseline")]
    busiest = max((share for share in shares if share is not None), default=None)
    if busiest is None or busiest < SATURATED:
        return None
    return f"generator-bound ({busiest:.0%}): compare CPU/request"


SHORT_LABELS = {"ours": "ours", "baseline": "asyncio", "floor": "floor"}


def keep_up_verdict(by_server: dict[str, list[Outcome]]) -> str:
    """Which servers' runs kept to the fixed rate, and which side fell behind where not."""
    runs_by_status: dict[str, list[str]] = {}
    for kind, outcomes in by_server.items():
        statuses = [o.info["load"]["status"] for o in outcomes if "load" in o.info]
        for status in sorted(set(statuses) - {"kept up"}):
            runs = f"{SHORT_LABELS[kind]} {statuses.count(status)}/{len(outcomes)}"
            runs_by_status.setdefault(status, []).append(runs)
    if not runs_by_status:
        return "all kept up"
    return "; ".join(f"{status}: {', '.join(runs)}" for status, runs in runs_by_status.items())


def _row_verdict(metric: Metric, ratio: float | None, by_server: dict[str, list[Outcome]]) -> str:
    if metric.key == "puts_per_s":
        return _generator_bound(by_server) or verdict(ratio, metric.better)
    if metric.key == "achieved_per_s":
        return keep_up_verdict(by_server)
    return verdict(ratio, metric.better)


def summarize(results: dict[str, dict[str, list[Outcome]]]) -> list[dict[str, Any]]:
    rows = []
    for name, by_server in results.items():
        for metric in metrics_for(name):
            values = {kind: median_of(by_server.get(kind, []), metric.key) for kind in SERVERS}
            informative = metric.better in ("higher", "lower")
            ratio = _ratio(values["ours"], values["baseline"]) if informative else None
            rows.append(
                {
                    "scenario": name,
                    "metric": metric.key,
                    "label": metric.label,
                    "better": metric.better,
                    "percent": metric.percent,
                    **values,
                    "ratio": ratio,
                    "ratio_floor": _ratio(values["ours"], values["floor"]) if informative else None,
                    "verdict": _row_verdict(metric, ratio, by_server),
                }
            )
    return rows


def seconds_text(seconds: float) -> str:
    """``1.0``, ``0.25``: at least one decimal, so that a duration reads as one."""
    text = f"{seconds:g}"
    return text if "." in text or "e" in text else f"{seconds:.1f}"


def describe_load(args: argparse.Namespace, names: Sequence[str]) -> list[str]:
    """The lines that say how the timed phases were taken."""
    lines = []
    timed = [n for n in names if base_scenario(n) in FLOOR_SCENARIOS]
    if timed and args.warmup > 0:
        lines.append(
            f"warm-up {seconds_text(args.warmup)} s before each timed phase ({', '.join(timed)}):"
            " the load runs at full speed (a fixed rate: at its rate), then the timed phase"
            " starts without a pause; CPU is read over the timed phase only"
        )
    elif timed:
        lines.append("no warm-up (--warmup 0): each timed phase starts with the load")
    if any(rate_of(n) for n in names):
        lines.append(
            "fixed rate (name@rate): open loop, each request sent when due whatever the"
            " answers; latency from its due time; CPU per answer received in the timed phase"
        )
    return lines


def print_table(
    rows: list[dict[str, Any]], repeat: int, source: dict[str, Any], notes: Sequence[str]
) -> None:
    header = ["scenario", "metric", "better", "ours", "asyncio", "floor"]
    header += ["ours/asyncio", "ours/floor", "verdict (vs asyncio)"]
    table = [header] + [
        [
            row["scenario"],
            row["label"],
            row["better"],
            *(fmt(row[kind], row["percent"]) for kind in SERVERS),
            fmt(row["ratio"]),
            fmt(row["ratio_floor"]),
            row["verdict"],
        ]
        for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    numeric = {3, 4, 5, 6, 7}
    print(
        f"trio-metrics (ours) vs the asyncio baseline and the trio floor: medians of {repeat}"
        f" run(s); Python {platform.python_version()}, {os.cpu_count()} CPU(s)"
    )
    changes = " + uncommitted changes" if source["local_changes"] else ""
    print(f"ours: trio_metrics at {source['commit']}{changes} (sources sha256 {source['sha256']})")
    for note in notes:
        print(note)
    for index, line in enumerate(table):
        cells = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(line)
        ]
        print("  ".join(cells).rstrip())
        if index == 0:
            print("  ".join("-" * w for w in widths))


def _cpu_note(name: str, runs: list[dict[str, Any]]) -> str:
    server_load = statistics.median(info["cpu"]["server_cpu_load"] for info in runs)
    text = f"server {server_load:.0%} of a core"
    loads = [info["load"] for info in runs if "load" in info]
    if base_scenario(name) in FLOOR_SCENARIOS and loads:
        busy = statistics.median(load["generator_load"] for load in loads)
        text += f", generator {busy:.0%} of {loads[0]['processes']} core(s)"
        if busy > SATURATED:
            text += " << generator saturated: the figure is a lower bound"
        ran_out = max(load.get("warm_ran_out", 0) for load in loads)
        if ran_out:
            text += f" << warm-up plan ran out early on {ran_out} connection(s)"
        if "send_late_ms" in loads[0]:
            late = statistics.median(load["send_late_ms"]["p99"] for load in loads)
            text += f", sends late by {late:.2f} ms at p99"
    if min(info["cpu"]["wall_s"] for info in runs) < MIN_CPU_PHASE["ticks"]:
        # The machine's total comes from /proc/stat, in clock ticks only.
        return text + f", other: not measured (phase under {MIN_CPU_PHASE['ticks']:g} s)"
    other = statistics.median(info["cpu"]["other_cpu_load"] for info in runs)
    text += f", other {other:.2f} cores"
    if other > 0.25:
        text += " << other programs were busy: figures disturbed"
    return text


def cpu_resolution(info: dict[str, Any]) -> str:
    return str(info["cpu"].get("server_cpu_resolution", "ticks"))


def cpu_notes(results: dict[str, dict[str, list[Outcome]]]) -> list[str]:
    """Who used the CPUs during the timed phases (medians over the runs).

    A saturated generator, or other programs busy on the machine, would
    otherwise be mistaken for the speed of a server.
    """
    notes = []
    for name, by_server in results.items():
        for kind in servers_for(name):
            runs = [o.info for o in by_server[kind] if "cpu" in o.info]
            if not runs:
                continue
            shortest = max(MIN_CPU_PHASE[cpu_resolution(info)] for info in runs)
            if min(info["cpu"]["wall_s"] for info in runs) < shortest:
                # A phase of a few clock ticks says nothing.
                text = f"phase under {shortest:g} s: not measured"
            else:
                text = _cpu_note(name, runs)
            notes.append(f"  {name:<10} {kind:<9} {text}")
    return notes


def chart_panels(names: Sequence[str]) -> list[tuple[str, Metric]]:
    """What the chart shows: CPU per request and throughput of the put scenarios, get speeds."""
    panels: list[tuple[str, Metric]] = []
    for name in names:
        keys = RATE_CHART if rate_of(name) else CHART.get(name, ())
        by_key = {metric.key: metric for metric in metrics_for(name)}
        by_key["repeat_points_per_s"] = Metric(
            "repeat_points_per_s", "points read/s (repeated get *)", "higher"
        )
        by_key["points_per_s"] = Metric("points_per_s", "points read/s", "higher")
        panels.extend((name, by_key[key]) for key in keys)
    return panels


def _panel_medians(scenario: dict[str, Any], key: str) -> dict[str, float]:
    values = {}
    for kind, runs in scenario["runs"].items():
        figures = [run["metrics"][key] for run in runs if key in run["metrics"]]
        if figures:
            values[kind] = statistics.median(figures)
    return values


def draw_chart(rows: list[dict[str, Any]], results_json: dict[str, Any], path: Path) -> str:
    """Draw the chart of every server's medians; return what happened, for the report."""
    try:
        matplotlib: Any = importlib.import_module("matplotlib")
        matplotlib.use("Agg")  # no display needed
        plt: Any = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        return "matplotlib is not installed: chart skipped"
    panels = []
    for name, metric in chart_panels(list(results_json["scenarios"])):
        values = _panel_medians(results_json["scenarios"][name], metric.key)
        if "ours" in values and "baseline" in values:
            panels.append((name, metric, values))
    if not panels:
        return "no scenario with a chart was run: chart skipped"
    columns = min(6, len(panels))
    lines = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(
        lines, columns, figsize=(2.7 * columns + 0.5, 3.7 * lines), squeeze=False
    )
    for axis, panel in zip(axes.flat, panels, strict=False):
        _draw_panel(axis, *panel)
    for axis in list(axes.flat)[len(panels) :]:
        axis.set_visible(False)
    meta = results_json["meta"]
    figure.suptitle(
        f"trio-metrics, asyncio baseline and trio floor"
        f"{' (QUICK RUN, tiny counts)' if meta['quick'] else ''}:"
        f" medians of {meta['repeat']} runs, warm-up {seconds_text(meta.get('warmup_s', 0))} s,"
        f" {meta['cpus']} CPUs, Python {meta['python']}",
        fontsize=10,
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return f"chart written to {path}"


def _draw_panel(axis: Any, name: str, metric: Metric, values: dict[str, float]) -> None:
    ticker: Any = importlib.import_module("matplotlib.ticker")
    colours = {"ours": "#2b6cb0", "baseline": "#a0aec0", "floor": "#68d391"}
    kinds = [kind for kind in SERVERS if kind in values]
    bars = axis.bar(
        [SERVER_LABELS[k].replace(" ", "\n") for k in kinds],
        [values[k] for k in kinds],
        color=[colours[k] for k in kinds],
    )
    axis.bar_label(bars, labels=[fmt(values[k]) for k in kinds], fontsize=8)
    axis.set_title(f"{name}\n({metric.better} is better)", fontsize=9)
    axis.set_ylabel(metric.label)
    axis.tick_params(axis="x", labelsize=8)
    if max(values.values()) >= 100:
        axis.yaxis.set_major_formatter(ticker.StrMethodFormatter("{x:,.0f}"))
    axis.margins(y=0.15)


# --- command line ---------------------------------------------------------------


def _add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repeat", type=int, help="runs per scenario and server (default 5; 2 with --quick)"
    )
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated subset of {','.join(SCENARIOS)} (default: all); any"
        " rr-1@RATE or rr-50@RATE (requests/s, e.g. 5k, 20k, 2500) runs at that fixed rate",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="load at full speed (at a fixed rate: at that rate) before each timed phase of"
        " rr-1, rr-50, pipelined and the fixed rates, which then starts without a pause"
        " (default 1.0; 0: timing starts with the load)",
    )
    parser.add_argument(
        "--json", type=Path, default=BENCH_DIR / "results" / "latest.json", help="results file"
    )
    parser.add_argument(
        "--chart",
        type=Path,
        help="chart (PNG); default docs/performance.png for a full run of every"
        " scenario, bench/results/performance.png otherwise",
    )
    parser.add_argument(
        "--loadgen-processes",
        type=int,
        help="load generator processes for rr-50 and the fixed rates (default: half the"
        f" CPUs, at least 1; at a fixed rate, enough that none sends over"
        f" {openloop.RATE_PER_PROCESS:,}/s, up to the CPUs)",
    )
    parser.add_argument("--timeout", type=float, help="seconds allowed per scenario run")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="pin each server to the last CPU and the load generator to the others"
        " (steadier figures on an otherwise idle machine)",
    )
    parser.add_argument(
        "--replot",
        type=Path,
        metavar="JSON",
        help="only redraw the chart from a results file of an earlier run",
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark trio-metrics against a plain asyncio server, side by side."
    )
    _add_options(parser)
    args = parser.parse_args(argv)
    args.scenario_list = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [name for name in args.scenario_list if not known_scenario(name)]
    if unknown or not args.scenario_list:
        parser.error(f"unknown scenario(s) {unknown}; choose from {','.join(SCENARIOS)}")
    if args.repeat is None:
        args.repeat = 2 if args.quick else 5
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must be 0 or more seconds")
    args.server_cpus = None
    if args.pin:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            parser.error("--pin needs at least 2 CPUs")
        args.server_cpus = {cpus[-1]}
        # Worker processes of the generator inherit this.
        os.sched_setaffinity(0, set(cpus[:-1]))
    if args.chart is None:
        full = not args.quick and args.scenario_list == SCENARIOS
        args.chart = (
            REPO / "docs" / "performance.png" if full else BENCH_DIR / "results" / "performance.png"
        )
    return args


def known_scenario(name: str) -> bool:
    rate = rate_of(name)
    return name in METRICS or (rate is not None and rate > 0)


Results = dict[str, dict[str, list[Outcome]]]


def run_all(args: argparse.Namespace, counts: Counts, workdir: Path) -> Results:
    """Every scenario, the servers taking turns within each repetition."""
    results: Results = {}
    for name in args.scenario_list:
        kinds = servers_for(name)
        results[name] = {kind: [] for kind in kinds}
        for repetition in range(1, args.repeat + 1):
            for kind in kinds:
                outcome = run_once(name, kind, counts, args, workdir)
                results[name][kind].append(outcome)
                figures = ", ".join(
                    f"{m.label} {fmt(outcome.metrics.get(m.key), m.percent)}"
                    for m in metrics_for(name)
                )
                status = {True: "verified", False: "NOT VERIFIED", None: "nothing to verify"}
                if "status" in outcome.info.get("load", {}):
                    figures += f" ({outcome.info['load']['status']})"
                print(
                    f"[{name} {repetition}/{args.repeat} {kind}] {figures};"
                    f" {status[outcome.verified]}",
                    file=sys.stderr,
                    flush=True,
                )
                for problem in outcome.problems:
                    print(f"    problem: {problem}", file=sys.stderr, flush=True)
    return results


def list_failures(results: Results) -> list[str]:
    return [
        f"{name} / {kind} run {index + 1}: {problem}"
        for name, by_server in results.items()
        for kind, outcomes in by_server.items()
        for index, outcome in enumerate(outcomes)
        for problem in (
            outcome.problems or ([] if outcome.verified is not False else ["not verified"])
        )
    ]


def results_json(
    args: argparse.Namespace,
    counts: Counts,
    source: dict[str, Any],
    results: Results,
    seconds: float,
) -> dict[str, Any]:
    """Everything a later look (or ``--replot``) needs, every run's figures included."""
    failures = list_failures(results)
    return {
        "meta": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "repeat": args.repeat,
            "quick": args.quick,
            "warmup_s": args.warmup,
            "counts": asdict(counts),
            "loadgen_processes": args.loadgen_processes,
            "pinned_server_cpus": sorted(args.server_cpus) if args.server_cpus else None,
            "seconds": round(seconds, 1),
            "servers": {kind: " ".join(server_command(kind, 0)[1:]) for kind in SERVERS},
            "ours_source": source,
        },
        "verified": not failures,
        "problems": failures,
        "rows": summarize(results),
        "scenarios": {
            name: {
                # None: no server of the scenario had anything to verify.
                "verified": all(
                    o.verified is not False for runs in by_server.values() for o in runs
                ),
                "runs": {kind: [asdict(o) for o in runs] for kind, runs in by_server.items()},
            }
            for name, by_server in results.items()
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.replot:
        earlier = json.loads(args.replot.read_text())
        print(draw_chart(earlier["rows"], earlier, args.chart))
        return 0
    if not sys.platform.startswith("linux"):
        print("bench/run.py reads server CPU and memory from /proc: Linux only", file=sys.stderr)
        return 2
    counts = QUICK if args.quick else FULL
    if args.timeout:
        counts = Counts(**{**asdict(counts), "timeout": args.timeout})
    workdir = Path(tempfile.mkdtemp(prefix="trio-metrics-bench-"))
    started = time.monotonic()
    try:
        source = snapshot_package(workdir)
        results = run_all(args, counts, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    data = results_json(args, counts, source, results, time.monotonic() - started)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(data, indent=2) + "\n")
    return report(args, data, results, source)


def _floor_ran(results: Results) -> bool:
    return any(by_server.get("floor") for by_server in results.values())


def report(
    args: argparse.Namespace, data: dict[str, Any], results: Results, source: dict[str, Any]
) -> int:
    """Print the table, the CPU notes and any failure; return the exit status."""
    print_table(data["rows"], args.repeat, source, describe_load(args, list(results)))
    notes = cpu_notes(results)
    if notes:
        print("CPU use during the timed phases (medians; other: the rest of the machine):")
        print("\n".join(notes))
    print(f"results written to {args.json}")
    print(draw_chart(data["rows"], data, args.chart))
    failures = data["problems"]
    if failures:
        print("\n" + "!" * 72)
        print(f"BENCHMARK FAILED: {len(failures)} problem(s); figures above may be wrong")
        for failure in failures:
            print(f"  - {failure}")
        print("!" * 72)
        print(f"BENCHMARK FAILED: {len(failures)} problem(s), listed on stdout", file=sys.stderr)
        return 1
    floor = " (the floor stores nothing: not verified)" if _floor_ran(results) else ""
    print(
        f"all runs verified: every point stored with its last value{floor}"
        f" ({data['meta']['seconds']} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
