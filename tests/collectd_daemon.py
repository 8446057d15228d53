"""collectd as a real Graphite sender: its configuration, and running it against a server."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from net import NETWORK_TIMEOUT

from trio_metrics import Client

#: The host name collectd puts first in every key it sends.
HOST = "trio-e2e"
#: Read plugins, each with the body of its ``<Plugin>`` block ("" for its defaults).
BASIC_PLUGINS: Mapping[str, str] = {"cpu": "", "load": "", "memory": ""}

COLLECTD_MISSING = (
    "collectd is not installed; it is run as a real Graphite sender"
    " (Debian: apt-get install --no-install-recommends collectd-core)"
)

Points = list[tuple[int, float]]


def find_collectd() -> str | None:
    """The collectd program (Debian keeps it in /usr/sbin), or None."""
    return shutil.which("collectd", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"]))


def collectd_conf(
    directory: Path,
    graphite_port: int,
    *,
    host: str = HOST,
    plugins: Mapping[str, str] = BASIC_PLUGINS,
    interval: float = 1,
) -> str:
    """A collectd.conf that reads ``plugins`` and writes to 127.0.0.1:``graphite_port``."""
    reads = []
    for name, body in plugins.items():
        reads.append(f"LoadPlugin {name}")
        if body:
            lines = "".join(f"  {line.strip()}\n" for line in body.strip().splitlines())
            reads.append(f"<Plugin {name}>\n{lines}</Plugin>")
    read_section = "\n".join(reads)
    return f"""\
Hostname "{host}"
FQDNLookup false
BaseDir "{directory}"
PIDFile "{directory}/collectd.pid"
Interval {interval}

LoadPlugin logfile
<Plugin logfile>
  LogLevel info
  File STDOUT
</Plugin>

{read_section}

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


class Collectd:
    """A running collectd process and its log file."""

    def __init__(self, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.process = process
        self.log_path = log_path

    def log(self) -> str:
        """What collectd has logged so far."""
        return self.log_path.read_text(errors="replace")

    def wait_for_points(
        self, client: Client, keys: Sequence[str], *, at_least: int = 1, timeout: float = 15.0
    ) -> dict[str, Points]:
        """Wait until each of ``keys`` has ``at_least`` points in the store; return them.

        Raises AssertionError, with collectd's log, if they do not arrive within
        ``timeout`` seconds or collectd exits first.
        """
        deadline = time.monotonic() + timeout
        while True:
            metrics = client.get("*")
            if all(len(metrics.get(key, [])) >= at_least for key in keys):
                return {key: metrics[key] for key in keys}
            if self.process.poll() is not None or time.monotonic() > deadline:
                counts = {key: len(metrics.get(key, [])) for key in keys}
                raise AssertionError(
                    f"collectd did not deliver {at_least} point(s) of each key within"
                    f" {timeout}s (exit status {self.process.poll()}); points: {counts};"
                    f" first keys stored: {sorted(metrics)[:10]}; collectd log:\n{self.log()}"
                )
            time.sleep(0.2)


@contextmanager
def running_collectd(
    program: str,
    directory: Path,
    graphite_port: int,
    *,
    host: str = HOST,
    plugins: Mapping[str, str] = BASIC_PLUGINS,
    interval: float = 1,
) -> Iterator[Collectd]:
    """Run collectd in the foreground, its config and log in ``directory``; stop it on exit."""
    conf = directory / "collectd.conf"
    conf.write_text(
        collectd_conf(directory, graphite_port, host=host, plugins=plugins, interval=interval)
    )
    log_path = directory / "collectd.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [program, "-f", "-C", str(conf)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        yield Collectd(process, log_path)
    finally:
        process.terminate()
        try:
            process.wait(NETWORK_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(NETWORK_TIMEOUT)
