"""Every exit status docs/usage.md lists, each from a real ``trio-metrics`` process."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from net import NETWORK_TIMEOUT, recv_until
from processes import COMMAND, run_cli

from trio_metrics import Client, ServerInfo

USAGE = Path(__file__).parent.parent / "docs" / "usage.md"


@pytest.fixture
def silent_server() -> Iterator[socket.socket]:
    """A socket on 127.0.0.1 that accepts connections and never answers."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(NETWORK_TIMEOUT)
        yield listener


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_0_on_success(threaded_server: ServerInfo) -> None:
    done = run_cli("put", "status.k", "1", "--port", str(threaded_server.port))
    assert (done.returncode, done.stderr) == (0, "")


def test_1_when_the_server_is_unreachable() -> None:
    done = run_cli("get", "k", "--port", str(closed_port()))
    assert done.returncode == 1
    assert done.stderr.startswith("trio-metrics: error: no trio-metrics server")


def test_1_on_an_error_answer(silent_server: socket.socket) -> None:
    # A server that refuses every request, as the protocol's "error" answer.
    def refuse() -> None:
        conn, _ = silent_server.accept()
        with conn:
            conn.settimeout(NETWORK_TIMEOUT)
            recv_until(conn, b"\n")
            conn.sendall(b"error\nwrong command\n\n")

    thread = threading.Thread(target=refuse, daemon=True)
    thread.start()
    done = run_cli("get", "k", "--port", str(silent_server.getsockname()[1]))
    thread.join(NETWORK_TIMEOUT)
    assert done.returncode == 1
    assert done.stderr == "trio-metrics: error: server answered error: wrong command\n"


def test_1_on_a_timeout(silent_server: socket.socket) -> None:
    port = str(silent_server.getsockname()[1])
    done = run_cli("get", "k", "--port", port, "--timeout", "0.5")
    assert done.returncode == 1
    assert "sent nothing" in done.stderr


@pytest.mark.parametrize(
    "args", [["put", "k", "not-a-number"], ["get"], ["get", "k", "--port", "x"]]
)
def test_2_on_a_bad_argument(args: list[str]) -> None:
    done = run_cli(*args)
    assert done.returncode == 2
    assert done.stdout == ""


def test_2_on_a_bad_port_setting() -> None:
    done = subprocess.run(
        [*COMMAND, "get", "k"],
        capture_output=True,
        text=True,
        timeout=NETWORK_TIMEOUT * 3,
        check=False,
        env={**os.environ, "TRIO_METRICS_PORT": "eighty"},
    )
    assert done.returncode == 2
    assert done.stderr.startswith("trio-metrics: error: TRIO_METRICS_PORT")


def test_130_on_ctrl_c_while_waiting_for_an_answer(silent_server: socket.socket) -> None:
    port = str(silent_server.getsockname()[1])
    process = subprocess.Popen(
        [*COMMAND, "get", "k", "--port", port, "--timeout", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        conn, _ = silent_server.accept()
        with conn:
            conn.settimeout(NETWORK_TIMEOUT)
            # The request is sent: the client now waits in its receive.
            assert recv_until(conn, b"\n") == b"get k\n"
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=NETWORK_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=NETWORK_TIMEOUT)
    assert process.returncode == 130
    assert "Traceback" not in err
    assert out == ""


def test_141_when_the_reader_stops_after_one_line(threaded_server: ServerInfo) -> None:
    with Client("127.0.0.1", threaded_server.port) as client:
        for ts in range(20000):
            client.put("status.many", ts, ts)
    process = subprocess.Popen(
        [*COMMAND, "get", "*", "--port", str(threaded_server.port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stdout.readline().startswith(b"KEY")
    process.stdout.close()  # like `| head -n 1`
    _, err = process.communicate(timeout=NETWORK_TIMEOUT * 3)
    assert process.returncode == 141
    assert err == b""


def test_the_documented_statuses_are_these() -> None:
    text = " ".join(USAGE.read_text(encoding="utf-8").split())
    [sentence] = re.findall(r"- Exit status: (.*?)Failures", text)
    assert sorted(map(int, re.findall(r"\b(\d+) (?:on|when|for)\b", sentence))) == [
        0,
        1,
        2,
        130,
        141,
    ]
