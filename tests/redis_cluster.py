"""A real Redis Cluster on 127.0.0.1 for the tests: six ``redis-server``
processes (three masters, one replica each), made with ``redis-cli --cluster
create`` and torn down after.

Ports are taken from 7000..9999 (outside the ephemeral range, so a client's
own port never collides), each with its cluster bus port (port + 10000) free.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import trio
from net import NETWORK_TIMEOUT

from trio_metrics import ServerConfig, ServerInfo, serve
from trio_metrics.storage import RedisStorage

REDIS_MISSING = "redis-server and redis-cli are needed: apt-get install redis-server"


def redis_programs_missing() -> str | None:
    """Why a cluster cannot be started here, or ``None``."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        return REDIS_MISSING
    return None


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_redis_ports(count: int) -> list[int]:
    """``count`` ports in 7000..9999 whose bus ports (+10000) are free too."""
    ports: list[int] = []
    candidates = list(range(7000, 10000))
    random.shuffle(candidates)
    for port in candidates:
        if _port_free(port) and _port_free(port + 10000):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise AssertionError("no free ports for a Redis cluster in 7000..9999")


def redis_cli(port: int, *args: str, timeout: float = NETWORK_TIMEOUT) -> str:
    """Run ``redis-cli -p PORT ARGS`` (bounded) and return its output."""
    done = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done.stdout + done.stderr


class LocalCluster:
    """Six ``redis-server --cluster-enabled yes`` processes under ``directory``."""

    def __init__(self, directory: Path, nodes: int = 6) -> None:
        self.directory = directory
        self.ports = free_redis_ports(nodes)
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.stopped: set[int] = set()

    @property
    def url(self) -> str:
        """The ``--store`` URL naming every node."""
        return "redis-cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def start_node(self, port: int) -> None:
        """Start (or restart, keeping its files) the node on ``port``."""
        node_dir = self.directory / str(port)
        node_dir.mkdir(parents=True, exist_ok=True)
        self.processes[port] = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                # Fast failover in tests: a master silent for 1 s is failed over.
                "--cluster-node-timeout",
                "1000",
                # A replica always takes over from a dead master (however
                # long since it last heard from it: the default refuses
                # when a quiet master was last seen long ago).
                "--cluster-replica-validity-factor",
                "0",
                "--appendonly",
                "yes",
                "--save",
                "",
                "--dir",
                str(node_dir),
                "--logfile",
                str(node_dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + NETWORK_TIMEOUT
        while "PONG" not in redis_cli(port, "ping"):
            if time.monotonic() > deadline:
                raise AssertionError(f"redis-server on port {port} did not start")
            time.sleep(0.05)

    def start(self) -> None:
        """Start every node, make the cluster (one replica a master), wait until it is ok."""
        for port in self.ports:
            self.start_node(port)
        out = redis_cli(
            self.ports[0],
            "--cluster",
            "create",
            *(f"127.0.0.1:{port}" for port in self.ports),
            "--cluster-replicas",
            "1",
            "--cluster-yes",
            timeout=NETWORK_TIMEOUT * 3,
        )
        if "All 16384 slots covered" not in out:
            raise AssertionError(f"cluster create failed: {out}")
        self.wait_ok()

    def wait_ok(self, timeout: float = NETWORK_TIMEOUT * 2) -> None:
        """Wait until every running node says ``cluster_state:ok``, all agree on the
        masters, and every replica's link to its master is up."""
        deadline = time.monotonic() + timeout
        while True:
            running = [port for port in self.ports if self.running(port)]
            states = [redis_cli(port, "cluster", "info") for port in running]
            if all("cluster_state:ok" in state for state in states):
                views = {frozenset(self.masters(port)) for port in running}
                # Every replica has synced (WAIT counts only linked replicas).
                links = [redis_cli(port, "info", "replication") for port in running]
                if len(views) == 1 and not any(
                    "role:slave" in link and "master_link_status:up" not in link for link in links
                ):
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"cluster not ok: {states}")
            time.sleep(0.1)

    def running(self, port: int) -> bool:
        """The node on ``port`` runs and is not stopped."""
        process = self.processes.get(port)
        return process is not None and process.poll() is None and port not in self.stopped

    def masters(self, asking: int | None = None) -> list[int]:
        """The ports of the masters that hold slots, as node ``asking`` sees them."""
        port = asking if asking is not None else next(p for p in self.ports if self.running(p))
        masters = []
        for line in redis_cli(port, "cluster", "nodes").splitlines():
            fields = line.split()
            if len(fields) > 8 and "master" in fields[2] and "fail" not in fields[2]:
                masters.append(int(fields[1].split("@")[0].rsplit(":", 1)[1]))
        return sorted(masters)

    def kill(self, port: int) -> None:
        """``kill -9`` the node on ``port``."""
        process = self.processes[port]
        process.kill()
        process.wait(NETWORK_TIMEOUT)

    def pause(self, port: int) -> None:
        """SIGSTOP the node on ``port``: it stops answering, its sockets stay open."""
        os.kill(self.processes[port].pid, signal.SIGSTOP)
        self.stopped.add(port)

    def resume(self, port: int) -> None:
        """SIGCONT a paused node."""
        os.kill(self.processes[port].pid, signal.SIGCONT)
        self.stopped.discard(port)

    def flush(self) -> None:
        """Remove every key (between tests sharing the cluster)."""
        for port in self.masters():
            redis_cli(port, "flushall")

    def stop(self) -> None:
        """Stop every node (resumed first, so that SIGKILL is taken at once)."""
        for port in list(self.stopped):
            with contextlib.suppress(ProcessLookupError):
                self.resume(port)
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
        for process in self.processes.values():
            process.wait(NETWORK_TIMEOUT)


@contextlib.contextmanager
def local_cluster(directory: Path) -> Iterator[LocalCluster]:
    """A started cluster under ``directory`` for the length of the block."""
    cluster = LocalCluster(directory)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@contextlib.asynccontextmanager
async def front_ends(
    url: str, count: int = 2, *, http: bool = False, **storage: Any
) -> AsyncIterator[list[ServerInfo]]:
    """``count`` servers on free ports of 127.0.0.1 (with an HTTP port too if
    ``http``), all over the Redis at ``url``, in the caller's trio run;
    stopped at the end of the block."""
    async with trio.open_nursery() as nursery:
        infos = []
        for _ in range(count):
            config = ServerConfig(
                host="127.0.0.1",
                port=0,
                http_port=0 if http else None,
                storage=RedisStorage(url, **storage),
            )
            infos.append(await nursery.start(serve, config))
        yield infos
        nursery.cancel_scope.cancel()


def node_id(port: int) -> str:
    """The cluster node id of the node on ``port``."""
    return redis_cli(port, "cluster", "myid").strip()


def master_of_key(cluster: LocalCluster, name: str) -> tuple[int, list[int]]:
    """The port of the master holding Redis key ``name``, and its replicas' ports."""
    running = next(p for p in cluster.ports if cluster.running(p))
    slot = int(redis_cli(running, "cluster", "keyslot", name).strip())
    master = None
    by_id: dict[str, int] = {}
    rows = [line.split() for line in redis_cli(running, "cluster", "nodes").splitlines()]
    for fields in rows:
        port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
        by_id[fields[0]] = port
        for span in fields[8:]:
            low, _, high = span.partition("-")
            if low.isdigit() and int(low) <= slot <= int(high or low):
                master = fields[0]
    assert master is not None, f"no master for slot {slot}"
    replicas = [by_id[fields[0]] for fields in rows if fields[3] == master]
    return by_id[master], replicas


@contextlib.contextmanager
def local_redis(directory: Path) -> Iterator[int]:
    """One ``redis-server`` (no cluster, no replica) on 127.0.0.1; yields its port."""
    [port] = free_redis_ports(1)
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            str(directory),
            "--logfile",
            str(directory / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + NETWORK_TIMEOUT
        while "PONG" not in redis_cli(port, "ping"):
            if time.monotonic() > deadline:
                raise AssertionError(f"redis-server on port {port} did not start")
            time.sleep(0.05)
        yield port
    finally:
        process.kill()
        process.wait(NETWORK_TIMEOUT)
