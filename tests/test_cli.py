"""The ``trio-metrics`` command, run as a real process against real servers."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from net import NETWORK_TIMEOUT, recv_until
from processes import COMMAND, ServeProcess, run_cli

from trio_metrics import Client, ServerInfo


@pytest.fixture
def serve_process() -> Iterator[ServeProcess]:
    server = ServeProcess()
    yield server
    server.ensure_stopped()


def test_put_then_get_table_and_json(threaded_server: ServerInfo) -> None:
    port = str(threaded_server.port)
    for key, value, ts in [("palm.cpu", "10.6", "1501864247"), ("palm.cpu", "2", "1501864248")]:
        done = run_cli("put", key, value, "--timestamp", ts, "--port", port)
        assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert run_cli("put", "other", "-3", "--timestamp", "0", "--port", port).returncode == 0

    table = run_cli("get", "palm.cpu", "--port", port)
    assert table.returncode == 0
    assert table.stdout.splitlines() == [
        "KEY        TIMESTAMP  TIME (UTC)           VALUE",
        "palm.cpu  1501864247  2017-08-04 16:30:47  10.6",
        "palm.cpu  1501864248  2017-08-04 16:30:48  2.0",
    ]

    everything = run_cli("get", "*", "--json", "--port", port)
    assert everything.returncode == 0
    assert json.loads(everything.stdout) == {
        "palm.cpu": [[1501864247, 10.6], [1501864248, 2.0]],
        "other": [[0, -3.0]],
    }


def test_put_without_timestamp_uses_now(threaded_server: ServerInfo) -> None:
    port = str(threaded_server.port)
    assert run_cli("put", "now", "1", "--port", port).returncode == 0
    [[timestamp, value]] = json.loads(run_cli("get", "now", "--json", "--port", port).stdout)["now"]
    assert value == 1.0
    assert timestamp > 1_700_000_000


def test_get_with_no_points(threaded_server: ServerInfo) -> None:
    done = run_cli("get", "nothing", "--port", str(threaded_server.port))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "(no points)\n")
    done = run_cli("get", "nothing", "--json", "--port", str(threaded_server.port))
    assert (done.returncode, done.stdout) == (0, "{}\n")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("verb", [["put", "k", "1"], ["get", "k"]])
def test_server_down_is_one_clear_line_and_exit_1(verb: list[str]) -> None:
    done = run_cli(*verb, "--port", str(closed_port()))
    assert done.returncode == 1
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("trio-metrics: error: no trio-metrics server at 127.0.0.1:")
    assert line.endswith(
        "(connection refused); is it running? `trio-metrics serve --port {}`".format(
            line.split(":")[3].split()[0]
        )
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["put", "k", "nan"], "not a finite number"),
        (["put", "k", "abc"], "not a finite number"),
        (["put", "two words", "1"], "must be one word"),
        (["put", "*", "1"], "must be one word"),
        (["put", "k", "1", "--timestamp", "-5"], "whole unix seconds"),
        (["put", "k", "1", "--timestamp", "1.5"], "whole unix seconds"),
        (["get", "k", "--port", "70000"], "outside 0..65535"),
        (["get", "a b"], "must be one word"),
        (["get", ""], "must be one word"),
        (["get", "k", "--timeout", "-1"], "positive number of seconds"),
        (["get", "k", "--timeout", "nan"], "positive number of seconds"),
        (["put", "k", "-1e3"], "required: VALUE"),
        (["serve", "--max-line-length", "0"], "at least 1"),
        (
            ["serve", "--http-max-body-bytes", "10", "--http-body-budget-bytes", "5"],
            "body_budget_bytes (5) must be at least max_body_bytes (10)",
        ),
        (["frobnicate"], "invalid choice"),
        ([], "required"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(args: list[str], message: str) -> None:
    done = run_cli(*args)
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("trio-metrics")
    assert ": error: " in line
    assert message in line


def test_negative_exponent_value_after_double_dash(threaded_server: ServerInfo) -> None:
    port = str(threaded_server.port)
    done = run_cli("put", "--port", port, "--timestamp", "1", "k", "--", "-1e3")
    assert done.returncode == 0
    assert json.loads(run_cli("get", "k", "--json", "--port", port).stdout) == {"k": [[1, -1000.0]]}


def test_output_cut_short_by_the_reader_is_not_a_traceback(threaded_server: ServerInfo) -> None:
    port = str(threaded_server.port)
    with Client("127.0.0.1", threaded_server.port) as client:
        for ts in range(20000):
            client.put("many.points.for.a.long.table", ts, ts)
    reader = subprocess.Popen(
        [*COMMAND, "get", "*", "--port", port],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert reader.stdout is not None
    reader.stdout.read(100)
    reader.stdout.close()  # like `| head -c 100`
    _, err = reader.communicate(timeout=NETWORK_TIMEOUT * 3)
    assert b"Traceback" not in err
    assert reader.returncode == 141


def test_stats_verb(threaded_server: ServerInfo) -> None:
    port = str(threaded_server.port)
    assert run_cli("put", "k", "1", "--port", port).returncode == 0
    assert run_cli("put", "k", "x", "--port", port).returncode == 2  # never sent
    done = run_cli("stats", "--json", "--port", port)
    assert done.returncode == 0
    counters = json.loads(done.stdout)
    assert counters["puts"] == 1
    assert counters["points"] == 1
    assert counters["keys"] == 1
    assert counters["stats_requests"] == 1
    table = run_cli("stats", "--port", port)
    assert table.returncode == 0
    rows = dict(line.split() for line in table.stdout.splitlines())
    assert rows["puts"] == "1"
    assert rows["keys"] == "1"


@pytest.mark.parametrize(
    "args",
    [["--idle-timeout", "0"], ["--idle-timeout", "soon"], ["--max-connections", "0"]],
)
def test_serve_refuses_bad_limits(args: list[str]) -> None:
    done = run_cli("serve", *args)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr


def test_serve_logs_its_settings_at_start(serve_process: ServeProcess) -> None:
    _, err = serve_process.stop(signal.SIGTERM)
    assert "max connections 1000, idle timeout off" in err
    assert "stopped after" in err


@pytest.mark.parametrize("verb", [[], ["serve"], ["put"], ["get"], ["stats"]])
def test_help_on_every_verb(verb: list[str]) -> None:
    done = run_cli(*verb, "--help")
    assert done.returncode == 0
    assert done.stdout.startswith("usage: trio-metrics")


def test_version() -> None:
    done = run_cli("--version")
    assert re.fullmatch(r"trio-metrics \d+\.\d+\.\d+\n", done.stdout)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_serve_stops_cleanly_on_signal(serve_process: ServeProcess, signum: int) -> None:
    assert "memory only" in serve_process.banner
    done = run_cli("put", "k", "1", "--timestamp", "5", "--port", str(serve_process.port))
    assert done.returncode == 0
    with socket.create_connection(("127.0.0.1", serve_process.port), NETWORK_TIMEOUT) as sock:
        sock.sendall(b"get k\n")
        assert recv_until(sock, b"\n\n") == b"ok\nk 1.0 5\n\n"
        status, err = serve_process.stop(signum)
        # The open connection was closed by the server, not left hanging.
        sock.settimeout(NETWORK_TIMEOUT)
        assert sock.recv(1) == b""
    assert status == 0
    assert "Traceback" not in err
    assert "shutting down" in err


def test_serve_reports_a_busy_port(threaded_server: ServerInfo) -> None:
    done = run_cli("serve", "--port", str(threaded_server.port))
    assert done.returncode == 1
    assert done.stderr.strip().endswith(
        f"cannot listen on 127.0.0.1:{threaded_server.port}: Address already in use"
    )
    assert "Traceback" not in done.stderr


def test_console_script_is_installed() -> None:
    script = os.path.join(os.path.dirname(sys.executable), "trio-metrics")
    done = subprocess.run(
        [script, "--help"], capture_output=True, text=True, timeout=NETWORK_TIMEOUT * 3
    )
    assert done.returncode == 0
    assert "serve" in done.stdout


@pytest.mark.parametrize(
    "options",
    [["--fsync", "always"], ["--repair"], ["--compact-min-bytes", "10"]],
)
def test_storage_options_without_a_data_dir_are_refused(options: list[str]) -> None:
    done = run_cli("serve", "--port", "0", *options)
    assert done.returncode == 2
    assert f"{options[0]} needs --data-dir DIR" in done.stderr


def test_an_empty_data_dir_is_refused() -> None:
    done = run_cli("serve", "--port", "0", "--data-dir", "")
    assert done.returncode == 2
    assert "must not be empty" in done.stderr


def test_a_failing_output_is_one_line_and_status_1(threaded_server: ServerInfo) -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [*COMMAND, "stats", "--port", str(threaded_server.port)],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=NETWORK_TIMEOUT * 3,
            check=False,
        )
    assert done.returncode == 1
    assert done.stderr == "trio-metrics: error: cannot write the output: No space left on device\n"


def test_a_taken_http_port_is_named_as_such() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli("serve", "--port", "0", "--http-port", str(port))
    assert done.returncode == 1
    assert f"cannot listen for HTTP on 127.0.0.1:{port}: Address already in use" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("flag", "words"),
    [
        ("--port", "listen"),
        ("--http-port", "listen for HTTP"),
        ("--graphite-port", "listen for Graphite"),
    ],
)
def test_a_taken_port_is_one_line_on_stderr(flag: str, words: str) -> None:
    # The docs promise one line: no memory-only warning or "stopped" summary around it.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ["--port", "0"] if flag != "--port" else []
        done = run_cli("serve", *args, flag, str(port))
    assert done.returncode == 1
    assert done.stderr == (
        f"trio-metrics: error: cannot {words} on 127.0.0.1:{port}: Address already in use\n"
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_serve_with_nobody_reading_stdout_keeps_serving() -> None:
    """`trio-metrics serve | true`: the banner cannot be printed; that is no listen error."""
    port = _free_port()
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will ever read the banner
    process = subprocess.Popen(
        [*COMMAND, "serve", "--port", str(port)],
        stdout=write_end,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(write_end)
    try:
        deadline = NETWORK_TIMEOUT
        client = None
        for _ in range(int(deadline * 20)):
            try:
                client = Client("127.0.0.1", port, timeout=NETWORK_TIMEOUT)
                break
            except Exception:
                assert process.poll() is None, process.communicate(timeout=NETWORK_TIMEOUT)
                time.sleep(0.05)
        assert client is not None, "the server never listened"
        with client:
            client.put("still.serving", 1.0, 1)
            assert client.get("still.serving") == {"still.serving": [(1, 1.0)]}
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=NETWORK_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=NETWORK_TIMEOUT)
    assert process.returncode == 0, err
    assert "cannot print the start-up banner" in err
    assert "cannot listen" not in err
    assert "Traceback" not in err


@pytest.mark.parametrize("port_flag", ["--graphite-port", "--http-port"])
def test_pointing_at_another_port_says_so(port_flag: str) -> None:
    server = ServeProcess(port_flag, "0")
    try:
        assert server.process.stdout is not None
        banner = server.banner + (
            server.process.stdout.readline() if port_flag == "--http-port" else ""
        )
        pattern = r"Graphite on port (\d+)" if port_flag == "--graphite-port" else r":(\d+)/$"
        match = re.search(pattern, banner.strip())
        assert match is not None, banner
        port = match.group(1)
        done = run_cli("get", "k", "--port", port, "--timeout", "1")
    finally:
        server.ensure_stopped()
    assert done.returncode == 1
    assert done.stderr == (
        f"trio-metrics: error: 127.0.0.1:{port} sent nothing in 1 s: is that the main port?\n"
    )
