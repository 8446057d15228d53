"""A real ``trio-metrics serve`` process for tests where the process is the point."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import IO

from net import NETWORK_TIMEOUT

COMMAND = [sys.executable, "-m", "trio_metrics"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``trio-metrics ARGS`` to the end (bounded) and capture its output."""
    return subprocess.run(
        [*COMMAND, *args],
        capture_output=True,
        text=True,
        timeout=NETWORK_TIMEOUT * 3,
        check=False,
    )


class ServeProcess:
    """``trio-metrics serve --port 0`` in a subprocess; knows its port.

    ``stderr`` is a pipe unless a file is given (a long-running server's
    log must go to a file: nobody drains the pipe while it runs).
    """

    def __init__(
        self, *args: str, stderr: IO[str] | None = None, source: str | None = None
    ) -> None:
        # ``source``: run the package of that checkout instead (a benchmark's
        # baseline); it is both the working directory, which ``-m`` searches
        # first, and the whole PYTHONPATH. A relative path in ``args`` then
        # names a file in that checkout.
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if source is not None:
            env["PYTHONPATH"] = source
        self.process = subprocess.Popen(
            [*COMMAND, "serve", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if stderr is None else stderr,
            text=True,
            env=env,
            cwd=source,
        )
        assert self.process.stdout is not None
        self.banner = self.process.stdout.readline()
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", self.banner)
        if match is None:
            self.process.kill()
            _, err = self.process.communicate(timeout=NETWORK_TIMEOUT)
            raise AssertionError(f"no banner: {self.banner!r} {err!r}")
        self.port = int(match.group(1))

    def stop(self, signum: int) -> tuple[int, str]:
        """Send ``signum`` and wait; return the exit status and the stderr pipe's text."""
        self.process.send_signal(signum)
        _, err = self.process.communicate(timeout=NETWORK_TIMEOUT)
        return self.process.returncode, err or ""

    def ensure_stopped(self) -> None:
        """Kill the process if it still runs and close its pipes (for clean-up)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=NETWORK_TIMEOUT)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()
