"""A real Prometheus (Debian's 2.42) for end-to-end tests: on free ports, always killed."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from net import NETWORK_TIMEOUT

PROMETHEUS_MISSING = "prometheus is not installed (apt-get install prometheus)"


def find_prometheus() -> str | None:
    """The path of the prometheus program, or None."""
    return shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
    )


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Prometheus:
    """A running Prometheus: its port and its HTTP API."""

    def __init__(self, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
        self.port = port
        self.process = process
        self.log = log

    def api(self, path: str, **params: object) -> Any:
        """``GET /api/v1/<path>?params``: the ``data`` of a successful answer."""
        query = urllib.parse.urlencode(params)
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{query}"
        try:
            with urllib.request.urlopen(url, timeout=NETWORK_TIMEOUT) as response:
                document = json.load(response)
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{url}: {exc.code} {exc.read()!r}") from None
        assert document["status"] == "success", document
        return document["data"]

    def wait_ready(self, timeout: float) -> None:
        """Wait (bounded) until ``/-/ready`` answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                url = f"http://127.0.0.1:{self.port}/-/ready"
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"prometheus not ready in {timeout} s: {self.log.read_text()[-3000:]}")


@contextmanager
def running_prometheus(program: str, directory: Path, config: str) -> Iterator[Prometheus]:
    """Prometheus with ``config`` (``{port}`` stands for its own port), killed at the end.

    ``--storage.remote.flush-deadline=2s``: without it, a stopping
    Prometheus waits up to a minute for a remote write to succeed.
    """
    port = free_port()
    (directory / "prometheus.yml").write_text(config.replace("{port}", str(port)))
    log = directory / "prometheus.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                program,
                f"--config.file={directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.remote.flush-deadline=2s",
                "--log.level=warn",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        prometheus = Prometheus(port, process, log)
        prometheus.wait_ready(NETWORK_TIMEOUT * 2)
        yield prometheus
    finally:
        process.kill()
        process.wait(timeout=NETWORK_TIMEOUT)
