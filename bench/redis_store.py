"""Benchmark the Redis Cluster store: ingest through one and two servers, ``get *``
against the memory store, and failover.

    python bench/redis_store.py            # full counts
    python bench/redis_store.py --quick    # small counts (seconds)
    python bench/redis_store.py --retention 1m:20y [--rounds 3]   # only the cost of expiry
    python bench/redis_store.py --against ../old-checkout [--rounds 7]  # ingest, two trees

A local cluster of three masters and three replicas is started on
127.0.0.1 (tests/redis_cluster.py) and stopped at the end. Servers run as
``trio-metrics serve --store redis-cluster://...`` processes.

1. Ingest: 4 connections (10 keys each, round robin), 1,000 puts a request,
   one request in flight per connection, through one server, then through
   two servers at once (4 connections each), then through one server with
   ``--redis-wait-replicas 1``; every key is verified after, and the CPU
   each process used is printed. Then request-response: 50 connections,
   one put in flight each (every put a batch of its own).
2. ``get *`` of N points (1,000 keys) over the cluster and from a
   memory-only server holding the same points: seconds to the last byte.
3. Failover: a storm of batches through one server while a master is
   killed (``kill -9``): seconds from the kill to the first batch
   acknowledged again (every batch touches every master), and how many
   acknowledged points are missing after the replica took over, without
   and with ``--redis-wait-replicas 1``.

With ``--retention RULE`` only the one-server ingest runs, alternately
without and with ``--retention RULE`` (``--rounds`` times each): the cost
of the ``EXPIREAT``s and the trimming of bucket indexes. With 10 keys a
connection each request carries 100 s of each key (a new bucket for most
keys in most requests: the most expiries); ``--keys 1000`` spreads the same
puts over 1,000 keys, one point of each a request (a bucket lasts 128
requests), as a steady stream of many series. The
bench's timestamps start in 2017, so the rule must reach back that far
(``1m:20y``), or every put would be dropped as too old.

With ``--against TREE`` only the one-server ingest runs, alternately with a
server run from TREE (another checkout of this repository, e.g. a ``git
worktree`` of an older commit) and with this one, ``--rounds`` times each
(the order of the two alternating from round to round), over the same
cluster: puts a second and server CPU a put, medians and ratios. (With
``--quick`` the CPU figures are too coarse to compare: a smoke run only.)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import loadgen
from loadgen import ConnectionPlan, Deadline

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from processes import ServeProcess  # noqa: E402
from redis_cluster import LocalCluster, master_of_key, redis_cli  # noqa: E402

from trio_metrics.storage import parse_retention  # noqa: E402
from trio_metrics.storage._redis import BUCKET_SECONDS, bucket_hash_name  # noqa: E402

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Counts:
    """How much work each part does."""

    connections: int = 4
    keys_per_connection: int = 10
    puts_per_key: int = 25_000
    batch: int = 1_000
    get_all_points: int = 1_000_000
    storm_seconds: float = 3.0
    rr_puts: int = 100  # per connection
    timeout: float = 600.0


FULL = Counts()
QUICK = Counts(
    puts_per_key=500, get_all_points=20_000, storm_seconds=1.0, rr_puts=10, timeout=120.0
)


def _plans(prefix: str, counts: Counts) -> list[ConnectionPlan]:
    return [
        ConnectionPlan(
            tuple(f"{prefix}.c{c}.k{k}" for k in range(counts.keys_per_connection)),
            counts.puts_per_key,
            batch=counts.batch,
        )
        for c in range(counts.connections)
    ]


def _verify(port: int, plans: list[ConnectionPlan], deadline: Deadline) -> None:
    with loadgen.connect(HOST, port, deadline) as sock:
        for plan in plans:
            for key in plan.keys:
                expected = loadgen.expected_get_answer([(key, plan.puts_per_key)], plan.overwrite)
                if loadgen.ask(sock, f"get {key}\n".encode(), deadline) != expected:
                    raise SystemExit(f"verification failed for {key}")


def ingest(cluster: LocalCluster, servers: list[ServeProcess], counts: Counts) -> float:
    """Puts a second through all ``servers`` at once (each its own connections)."""
    return ingest_with_cpu(cluster, servers, counts)[0]


def ingest_with_cpu(
    cluster: LocalCluster, servers: list[ServeProcess], counts: Counts
) -> tuple[float, float]:
    """Puts a second through all ``servers`` at once, and the servers' CPU
    microseconds a put."""
    cluster.flush()
    results: list[loadgen.LoadResult] = []
    plans = [_plans(f"s{n}", counts) for n in range(len(servers))]

    def run(server: ServeProcess, mine: list[ConnectionPlan]) -> None:
        results.append(loadgen.request_response(HOST, server.port, mine, counts.timeout))

    redis_pids = [process.pid for process in cluster.processes.values()]
    server_cpu = [_cpu_seconds(server.process.pid) for server in servers]
    redis_cpu = sum(_cpu_seconds(pid) for pid in redis_pids)
    started = time.monotonic()
    threads = [
        threading.Thread(target=run, args=(server, mine))
        for server, mine in zip(servers, plans, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    server_cpu = [
        _cpu_seconds(server.process.pid) - before
        for server, before in zip(servers, server_cpu, strict=True)
    ]
    redis_cpu = sum(_cpu_seconds(pid) for pid in redis_pids) - redis_cpu
    if len(results) != len(servers):
        raise SystemExit("a load generator failed")
    for server, mine in zip(servers, plans, strict=True):
        _verify(server.port, mine, Deadline(counts.timeout))
    puts = sum(result.puts for result in results)
    window = max(result.elapsed for result in results)
    load = max(result.generator_load for result in results)
    print(
        f"  {len(servers)} server(s): {puts:,} puts in {window:.2f} s ="
        f" {puts / window:,.0f} puts/s (wall {elapsed:.2f} s; generator load {load:.0%})"
    )
    busy = ", ".join(f"{cpu / elapsed:.0%}" for cpu in server_cpu)
    print(
        f"    CPU over the wall time: server(s) {busy} of a core each;"
        f" the six redis-servers {redis_cpu / elapsed:.0%} together"
    )
    return puts / window, sum(server_cpu) / puts * 1e6


def _cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of process ``pid`` so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def request_response(cluster: LocalCluster, server: ServeProcess, counts: Counts) -> None:
    """50 connections, one put in flight each: every put is a batch of one."""
    cluster.flush()
    plans = [ConnectionPlan((f"rr.{i}",), counts.rr_puts) for i in range(50)]
    before = _cpu_seconds(server.process.pid)
    result = loadgen.request_response(HOST, server.port, plans, counts.timeout)
    used = _cpu_seconds(server.process.pid) - before
    _verify(server.port, plans, Deadline(counts.timeout))
    print(
        f"  request-response, 50 connections: {result.puts_per_second:,.0f} puts/s;"
        f" server CPU {used / result.puts * 1e6:,.0f} us a put"
    )


def _fill(port: int, points: int, deadline: Deadline) -> None:
    keys = 1000
    per_key = points // keys
    with loadgen.connect(HOST, port, deadline) as sock:
        lines = [
            loadgen.put_line(f"all.k{k:04d}", i, overwrite=False)
            for i in range(per_key)
            for k in range(keys)
        ]
        for start in range(0, len(lines), 1000):
            chunk = lines[start : start + 1000]
            sock.settimeout(min(60.0, deadline.left()))
            sock.sendall(b"".join(chunk))
            answer = b""
            while len(answer) < 4 * len(chunk):
                received = sock.recv(1 << 16)
                if not received:
                    raise SystemExit("the server closed the connection while filling")
                answer += received
            if answer != b"ok\n\n" * len(chunk):
                raise SystemExit(f"fill failed: {answer[:100]!r}")


def get_all_seconds(port: int, deadline: Deadline) -> tuple[float, int]:
    with loadgen.connect(HOST, port, deadline) as sock:
        started = time.monotonic()
        answer = loadgen.ask(sock, b"get *\n", deadline)
        return time.monotonic() - started, answer.count(b"\n") - 2


def get_all(cluster: LocalCluster, counts: Counts) -> None:
    cluster.flush()
    deadline = Deadline(counts.timeout)
    over_redis = ServeProcess("--store", cluster.url, "--redis-timeout", "60")
    memory = ServeProcess()
    try:
        for name, server in (("Redis Cluster", over_redis), ("memory", memory)):
            _fill(server.port, counts.get_all_points, deadline)
            seconds, lines = get_all_seconds(server.port, deadline)
            print(f"  get * over {name}: {lines:,} points in {seconds:.2f} s")
    finally:
        for server in (over_redis, memory):
            server.ensure_stopped()
            server.process.communicate(timeout=30)


def failover(cluster: LocalCluster, counts: Counts, wait_replicas: int) -> None:
    """A storm through one server, a master killed in the middle of it."""
    for port in cluster.ports:
        if not cluster.running(port):
            cluster.start_node(port)
    cluster.wait_ok()
    cluster.flush()
    server = ServeProcess(
        "--store",
        cluster.url,
        "--redis-wait-replicas",
        str(wait_replicas),
        "--redis-timeout",
        "3",
    )
    acked: dict[tuple[str, int], str] = {}
    first_after: list[float] = []
    killed_at: list[float] = []
    stop = threading.Event()

    victim = master_of_key(cluster, bucket_hash_name("fo.0.0", 0))[0]
    # Every batch holds keys on the victim (and on the others): the first
    # batch acknowledged again is the end of the failover.
    on_victim = _keys_on(cluster, victim, 4)
    elsewhere = _keys_on(cluster, None, 4, but=victim)

    def storm(number: int) -> None:
        stamp = 0
        keys = [on_victim[number], elsewhere[number]]
        while not stop.is_set():
            points = [(keys[i % 2], stamp + i) for i in range(50)]
            stamp += 50
            sent_at = time.monotonic()
            request = b"".join(b"put %s %d %d\n" % (k.encode(), t, t) for k, t in points)
            answer = b""
            try:
                with socket.create_connection((HOST, server.port), timeout=10) as sock:
                    sock.sendall(request)
                    # Every put's answer, "ok" or (a batch Redis did not
                    # take) the error answer, or as many as came before a close.
                    while answer.count(b"\n\n") < len(points):
                        chunk = sock.recv(65536)
                        if not chunk:
                            break
                        answer += chunk
            except OSError:
                pass
            # Only the leading "ok"s acknowledge: an error answer does not.
            acknowledged = 0
            while answer.startswith(loadgen.OK, acknowledged * len(loadgen.OK)):
                acknowledged += 1
            for key, ts in points[:acknowledged]:
                acked[(key, ts)] = str(ts)
            complete = acknowledged == len(points)
            if complete and killed_at and sent_at > killed_at[0] and not first_after:
                first_after.append(time.monotonic() - killed_at[0])
            if not complete:
                time.sleep(0.05)

    writers = [threading.Thread(target=storm, args=(n,)) for n in range(4)]
    try:
        for writer in writers:
            writer.start()
        time.sleep(counts.storm_seconds)
        killed_at.append(time.monotonic())
        cluster.kill(victim)
        cluster.wait_ok()
        if wait_replicas:
            # The new master needs a replica again before WAIT can succeed.
            cluster.start_node(victim)
            cluster.wait_ok()
        deadline = time.monotonic() + 30
        while not first_after and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(counts.storm_seconds / 2)
    finally:
        stop.set()
        for writer in writers:
            writer.join(30)
    missing = 0
    deadline_ = Deadline(counts.timeout)
    with loadgen.connect(HOST, server.port, deadline_) as sock:
        for key in {key for key, _ in acked}:
            answer = loadgen.ask(sock, f"get {key}\n".encode(), deadline_).decode()
            found = {int(line.split()[2]) for line in answer.splitlines()[1:] if line}
            missing += sum(1 for k, ts in acked if k == key and ts not in found)
    server.ensure_stopped()
    server.process.communicate(timeout=30)
    if not cluster.running(victim):
        cluster.start_node(victim)
        cluster.wait_ok()
    recovery = f"{first_after[0]:.2f} s" if first_after else "not within 30 s"
    print(
        f"  --redis-wait-replicas {wait_replicas}: first acknowledged batch {recovery} after"
        f" the kill; {len(acked):,} points acknowledged, {missing:,} missing after failover"
    )


def _keys_on(cluster: LocalCluster, master: int | None, count: int, but: int = 0) -> list[str]:
    """``count`` keys whose points live on ``master`` (or on any master but ``but``)."""
    from coredis._utils import hash_slot

    owner: dict[int, int] = {}
    running = next(port for port in cluster.ports if cluster.running(port))
    for line in redis_cli(running, "cluster", "nodes").splitlines():
        fields = line.split()
        port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
        for span in fields[8:]:
            low, _, high = span.partition("-")
            if low.isdigit():
                for slot in range(int(low), int(high or low) + 1):
                    owner[slot] = port
    keys = []
    for n in range(100_000):
        key = f"fo.{n}"
        port = owner[hash_slot(bucket_hash_name(key, 0).encode())]
        if (port == master) if master is not None else (port != but):
            keys.append(key)
            if len(keys) == count:
                return keys
    raise SystemExit("no keys found for the master")


def check_rule(rule: str) -> None:
    """Refuse a rule under which every point of the bench would be too old."""
    longest = parse_retention(rule).longest
    if longest < time.time() - loadgen.T0:
        raise SystemExit(
            f"--retention {rule} keeps {longest} s: the bench's points (from"
            f" {loadgen.T0}) would all be dropped as too old; use a span such as 20y"
        )


def retention_cost(cluster: LocalCluster, counts: Counts, rule: str, rounds: int) -> None:
    """One-server ingest, alternately without and with ``--retention rule``."""
    plain = ServeProcess("--store", cluster.url)
    ruled = ServeProcess("--store", cluster.url, "--retention", rule)
    rates: dict[str, list[float]] = {"without": [], "with": []}
    cpu: dict[str, list[float]] = {"without": [], "with": []}
    try:
        for number in range(rounds):
            for name, server in (("without", plain), ("with", ruled)):
                print(f"  round {number + 1}, {name} --retention {rule}:")
                rate, microseconds = ingest_with_cpu(cluster, [server], counts)
                rates[name].append(rate)
                cpu[name].append(microseconds)
            # The ruled server did give its hashes an expiry.
            key = _plans("s0", counts)[0].keys[0]
            name = bucket_hash_name(key, loadgen.T0 // BUCKET_SECONDS)
            ttl = int(redis_cli(master_of_key(cluster, name)[0], "ttl", name).strip())
            if ttl <= 0:
                raise SystemExit(f"{name} has no expiry (TTL {ttl})")
    finally:
        for server in (plain, ruled):
            server.ensure_stopped()
            server.process.communicate(timeout=30)
    print_medians(rounds, rates, cpu, {"without": "without", "with": f"with --retention {rule}"})


def print_medians(
    rounds: int,
    rates: dict[str, list[float]],
    cpu: dict[str, list[float]],
    labels: dict[str, str],
) -> None:
    """The medians of two servers' rounds (``labels``: name -> words, the
    first the baseline), and the second's ratio to the first."""
    (first, first_words), (second, second_words) = labels.items()
    rate_a, rate_b = statistics.median(rates[first]), statistics.median(rates[second])
    print(
        f"  median of {rounds}: {first_words} {rate_a:,.0f} puts/s, {second_words}"
        f" {rate_b:,.0f} puts/s: {rate_b / rate_a:.2f}x"
    )
    cpu_a, cpu_b = statistics.median(cpu[first]), statistics.median(cpu[second])
    print(
        f"  server CPU a put, median of {rounds}: {first_words} {cpu_a:.2f} us,"
        f" {second_words} {cpu_b:.2f} us: {cpu_b / cpu_a:.2f}x"
    )


def against(cluster: LocalCluster, counts: Counts, tree: Path, rounds: int) -> None:
    """One-server ingest, alternately from ``tree`` and from this checkout."""
    rates: dict[str, list[float]] = {"baseline": [], "this": []}
    cpu: dict[str, list[float]] = {"baseline": [], "this": []}
    trees = [("baseline", tree), ("this", REPO)]
    for number in range(rounds):
        # Turns in both orders, so that neither tree always runs first.
        for name, source in trees if number % 2 == 0 else trees[::-1]:
            server = ServeProcess("--store", cluster.url, source=str(source))
            try:
                print(f"  round {number + 1}, {name} ({source}):")
                rate, microseconds = ingest_with_cpu(cluster, [server], counts)
            finally:
                server.ensure_stopped()
                server.process.communicate(timeout=30)
            rates[name].append(rate)
            cpu[name].append(microseconds)
    print_medians(rounds, rates, cpu, {"baseline": "baseline", "this": "this"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts (seconds)")
    parser.add_argument(
        "--retention", metavar="RULE", help="only compare ingest without and with this rule"
    )
    parser.add_argument(
        "--against",
        type=Path,
        metavar="TREE",
        help="only compare one server's ingest with that of the checkout TREE",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of --retention's or --against's comparison"
    )
    parser.add_argument(
        "--keys",
        type=int,
        default=FULL.keys_per_connection,
        help="keys per connection for --retention's comparison, the same puts in all"
        " (1000: one point of each key a request, as a steady stream of many series)",
    )
    args = parser.parse_args()
    counts = QUICK if args.quick else FULL
    if args.retention:
        check_rule(args.retention)
    if args.keys != counts.keys_per_connection:
        puts = counts.puts_per_key * counts.keys_per_connection
        counts = dataclasses.replace(
            counts, keys_per_connection=args.keys, puts_per_key=max(1, puts // args.keys)
        )
    with tempfile.TemporaryDirectory(prefix="trio-metrics-redis-bench-") as directory:
        cluster = LocalCluster(Path(directory))
        try:
            cluster.start()
            print(f"== cluster: 3 masters, 3 replicas on {HOST} ({cluster.url})")
            if args.against:
                if not (args.against / "trio_metrics" / "__init__.py").is_file():
                    raise SystemExit(f"{args.against} is not a checkout of trio-metrics")
                print(
                    f"== ingest through one server: {counts.connections} connections,"
                    f" {counts.keys_per_connection} keys each, {counts.batch} puts a request"
                )
                against(cluster, counts, args.against.resolve(), args.rounds)
                return
            if args.retention:
                print(
                    f"== ingest through one server: {counts.connections} connections,"
                    f" {counts.keys_per_connection} keys each, {counts.batch} puts a request,"
                    f" {counts.puts_per_key:,} puts a key"
                )
                retention_cost(cluster, counts, args.retention, args.rounds)
                return
            print(
                f"== ingest: {counts.connections} connections a server,"
                f" {counts.keys_per_connection} keys each, {counts.batch} puts a request"
            )
            servers = [ServeProcess("--store", cluster.url) for _ in range(2)]
            servers.append(ServeProcess("--store", cluster.url, "--redis-wait-replicas", "1"))
            try:
                one = ingest(cluster, servers[:1], counts)
                two = ingest(cluster, servers[:2], counts)
                print(f"  two servers / one: {two / one:.2f}x")
                print("  with --redis-wait-replicas 1:")
                waiting = ingest(cluster, servers[2:], counts)
                print(f"  WAIT 1 / no WAIT: {waiting / one:.2f}x")
                request_response(cluster, servers[0], counts)
            finally:
                for server in servers:
                    server.ensure_stopped()
                    server.process.communicate(timeout=30)
            print(f"== get * of {counts.get_all_points:,} points (1,000 keys)")
            get_all(cluster, counts)
            print("== failover: kill -9 one master during a storm of 50-put batches")
            failover(cluster, counts, 0)
            failover(cluster, counts, 1)
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
