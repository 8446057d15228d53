"""The CLI's ping, keys, delete and get --from/--until, as real processes against a real server."""

from __future__ import annotations

import json
import os
import pty
import subprocess

from net import NETWORK_TIMEOUT
from processes import COMMAND, run_cli

from trio_metrics import Client, ServerInfo


def run_without_terminal(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=NETWORK_TIMEOUT * 3,
        check=False,
    )


def run_on_terminal(answer: bytes, *args: str) -> subprocess.CompletedProcess[str]:
    """Run with a pseudo-terminal as stdin, typing ``answer`` at the prompt."""
    controller, terminal = pty.openpty()
    try:
        os.write(controller, answer)
        return subprocess.run(
            [*COMMAND, *args],
            stdin=terminal,
            capture_output=True,
            text=True,
            timeout=NETWORK_TIMEOUT * 3,
            check=False,
        )
    finally:
        os.close(controller)
        os.close(terminal)


def fill(port: int) -> None:
    with Client("127.0.0.1", port, NETWORK_TIMEOUT) as client:
        for key, value, ts in [("web.a", 1, 10), ("web.a", 2, 20), ("web.b", 3, 20), ("top", 4, 5)]:
            client.put(key, value, ts)


def test_ping_and_keys(threaded_server: ServerInfo) -> None:
    port = str(threaded_server.port)
    fill(threaded_server.port)
    assert run_cli("ping", "--port", port).stdout == "ok\n"
    assert run_cli("keys", "web.*", "--port", port).stdout == "web.a\nweb.b\n"
    assert run_cli("keys", "*", "--port", port).stdout == "top\n"
    assert json.loads(run_cli("keys", "*.b", "--json", "--port", port).stdout) == {
        "keys": ["web.b"]
    }
    bad = run_cli("keys", "web.[", "--port", port)
    assert bad.returncode == 1 and "error" in bad.stderr


def test_get_from_until(threaded_server: ServerInfo) -> None:
    port = str(threaded_server.port)
    fill(threaded_server.port)
    done = run_cli("get", "web.*", "--from", "15", "--until", "20", "--json", "--port", port)
    assert json.loads(done.stdout) == {"web.a": [[20, 2.0]], "web.b": [[20, 3.0]]}
    done = run_cli("get", "web.a", "--until", "15", "--json", "--port", port)
    assert json.loads(done.stdout) == {"web.a": [[10, 1.0]]}
    done = run_cli("get", "web.a", "--from", "11", "--json", "--port", port)
    assert json.loads(done.stdout) == {"web.a": [[20, 2.0]]}
    backwards = run_cli("get", "web.a", "--from", "30", "--until", "20", "--port", port)
    assert backwards.returncode == 1 and "error" in backwards.stderr


def test_delete_needs_yes_without_a_terminal(threaded_server: ServerInfo) -> None:
    port = str(threaded_server.port)
    fill(threaded_server.port)
    refused = run_without_terminal("delete", "web.*", "--port", port)
    assert refused.returncode == 2
    assert "--yes" in refused.stderr and refused.stdout == ""
    assert run_cli("keys", "web.*", "--port", port).stdout == "web.a\nweb.b\n"
    done = run_without_terminal("delete", "web.*", "--yes", "--port", port)
    assert (done.returncode, done.stdout) == (0, "deleted 2 keys\n")
    assert run_cli("keys", "web.*", "--port", port).stdout == ""


def test_delete_asks_on_a_terminal(threaded_server: ServerInfo) -> None:
    port = str(threaded_server.port)
    fill(threaded_server.port)
    kept = run_on_terminal(b"n\n", "delete", "top", "--port", port)
    assert kept.returncode == 1
    assert run_cli("keys", "*", "--port", port).stdout == "top\n"
    done = run_on_terminal(b"y\n", "delete", "top", "--port", port)
    assert (done.returncode, done.stdout.splitlines()[-1]) == (0, "deleted 1 key")
    assert run_cli("keys", "*", "--port", port).stdout == ""
