"""Graphite ingest end to end: the CLI, and collectd as a real sender."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from collectd_daemon import HOST, running_collectd
from conftest import server_in_thread
from net import NETWORK_TIMEOUT
from processes import COMMAND, run_cli

from trio_metrics import Client

#: How long collectd gets to deliver its first readings (it sends every second).
COLLECTD_WAIT = 15.0


# --- trio-metrics serve --graphite-port ----------------------------------------


def test_serve_with_graphite_port_takes_lines_for_get() -> None:
    process = subprocess.Popen(
        [*COMMAND, "serve", "--port", "0", "--graphite-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        match = re.search(r"listening on 127\.0\.0\.1:(\d+), Graphite on port (\d+) ", banner)
        assert match is not None, banner
        port, graphite_port = int(match[1]), int(match[2])
        assert graphite_port not in (0, port)
        with socket.create_connection(("127.0.0.1", graphite_port), NETWORK_TIMEOUT) as sock:
            sock.sendall(b"palm.cpu 10.6 1501864247\n")
        deadline = time.monotonic() + NETWORK_TIMEOUT
        while True:
            done = run_cli("get", "palm.cpu", "--json", "--port", str(port))
            if done.stdout.strip() != "{}" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert json.loads(done.stdout) == {"palm.cpu": [[1501864247, 10.6]]}
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=NETWORK_TIMEOUT)
    assert process.returncode == 0
    assert f"graphite port {graphite_port}" in err


def test_serve_reports_a_busy_graphite_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli("serve", "--port", "0", "--graphite-port", str(port))
    assert done.returncode == 1
    assert done.stderr.strip().endswith(
        f"cannot listen for Graphite on 127.0.0.1:{port}: Address already in use"
    )
    assert "Traceback" not in done.stderr


def test_graphite_port_is_checked_like_a_port() -> None:
    done = run_cli("serve", "--graphite-port", "70000")
    assert done.returncode == 2
    assert "port 70000 is outside 0..65535" in done.stderr


# --- collectd ----------------------------------------------------------------------


@pytest.mark.e2e
def test_collectd_write_graphite_lands_in_the_store(collectd_program: str, tmp_path: Path) -> None:
    shortterm = f"{HOST}.load.load.shortterm"
    memory_used = f"{HOST}.memory.memory-used"
    with server_in_thread(graphite_port=0) as info:
        assert info.graphite_port is not None
        started = int(time.time())
        with running_collectd(collectd_program, tmp_path, info.graphite_port) as sender:
            with Client("127.0.0.1", info.port, timeout=NETWORK_TIMEOUT) as client:
                sender.wait_for_points(client, [shortterm, memory_used], timeout=COLLECTD_WAIT)
                load = client.get(shortterm)[shortterm]
                used = client.get(memory_used)[memory_used]
                counters = client.stats()
            now = int(time.time())
            for timestamp, _value in load + used:
                assert started - 2 <= timestamp <= now + 2
            assert all(value >= 0 for _, value in load)
            assert all(value > 0 for _, value in used)
            # Every line collectd sent was understood (its first cpu
            # readings are nan, which are counted apart, as carbon drops them).
            assert counters["graphite_bad_lines"] == 0
            assert counters["graphite_points"] >= len(load) + len(used)
            assert counters["graphite_connections_total"] >= 1

            done = run_cli("get", shortterm, "--json", "--port", str(info.port))
            assert done.returncode == 0, done.stderr
            from_cli = json.loads(done.stdout)[shortterm]
            # collectd keeps sending: the CLI sees at least what the client saw.
            assert [tuple(point) for point in from_cli[: len(load)]] == load
