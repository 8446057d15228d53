"""Graphite ingest end to end: the CLI, and collectd as a real sender."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import server_in_thread
from net import NETWORK_TIMEOUT

from trio_metrics import Client

COMMAND = [sys.executable, "-m", "trio_metrics"]
#: How long collectd gets to deliver its first readings (it sends every second).
COLLECTD_WAIT = 15.0
COLLECTD_HOST = "trio-e2e"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args],
        capture_output=True,
        text=True,
        timeout=NETWORK_TIMEOUT * 3,
        check=False,
    )


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


def find_collectd() -> str:
    """The collectd program; fails in CI (which installs it), else skips."""
    path = shutil.which("collectd", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"]))
    if path is not None:
        return path
    message = (
        "collectd is not installed; this test runs it as a real Graphite sender"
        " (Debian: apt-get install --no-install-recommends collectd-core)"
    )
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(message)
    pytest.skip(message)


def collectd_conf(directory: Path, graphite_port: int) -> str:
    return f"""\
Hostname "{COLLECTD_HOST}"
FQDNLookup false
BaseDir "{directory}"
PIDFile "{directory}/collectd.pid"
Interval 1

LoadPlugin logfile
<Plugin logfile>
  LogLevel info
  File STDOUT
</Plugin>

LoadPlugin cpu
LoadPlugin load
LoadPlugin memory
LoadPlugin write_graphite
<Plugin write_graphite>
  <Node "trio-metrics">
    Host "127.0.0.1"
    Port "{graphite_port}"
    Protocol "tcp"
    LogSendErrors true
  </Node>
</Plugin>
"""


@pytest.mark.e2e
def test_collectd_write_graphite_lands_in_the_store(tmp_path: Path) -> None:
    collectd = find_collectd()
    shortterm = f"{COLLECTD_HOST}.load.load.shortterm"
    memory_used = f"{COLLECTD_HOST}.memory.memory-used"
    with server_in_thread(graphite_port=0) as info:
        assert info.graphite_port is not None
        conf = tmp_path / "collectd.conf"
        conf.write_text(collectd_conf(tmp_path, info.graphite_port))
        log_path = tmp_path / "collectd.log"
        started = int(time.time())
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [collectd, "-f", "-C", str(conf)], stdout=log, stderr=subprocess.STDOUT
            )
        try:
            with Client("127.0.0.1", info.port, timeout=NETWORK_TIMEOUT) as client:
                deadline = time.monotonic() + COLLECTD_WAIT
                while True:
                    metrics = client.get("*")
                    if shortterm in metrics and memory_used in metrics:
                        break
                    if process.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(
                            f"no collectd readings after {COLLECTD_WAIT}s (collectd exit"
                            f" status {process.poll()}); keys: {sorted(metrics)[:10]};"
                            f" collectd log:\n{log_path.read_text()}"
                        )
                    time.sleep(0.2)
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
        finally:
            process.terminate()
            try:
                process.wait(NETWORK_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(NETWORK_TIMEOUT)
