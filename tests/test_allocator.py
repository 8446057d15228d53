"""The server process keeps freed heap memory for reuse (glibc's trim and mmap thresholds)."""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys

import pytest
from processes import ServeProcess

# Eight 512 KiB buffers made and freed, round after round, as a request's
# buffers are: the page faults of the last 20 rounds.
_ROUNDS = """
import resource, sys
if sys.argv[1] == "tuned":
    from trio_metrics.cli._allocator import keep_freed_memory
    assert keep_freed_memory() is not None
def round_():
    held = [bytearray(512 * 1024) for _ in range(8)]
    del held
for _ in range(5):
    round_()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    round_()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

glibc_only = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="the thresholds are glibc's (mallopt)"
)


def _page_faults(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = subprocess.run(
        [sys.executable, "-c", _ROUNDS, mode],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    )
    return int(done.stdout)


@glibc_only
def test_buffers_freed_and_made_again_do_not_fault_their_pages_in_again() -> None:
    untuned = _page_faults("default")
    tuned = _page_faults("tuned")
    # 20 rounds of 4 MiB: about 20,000 faults when the heap is trimmed each time.
    assert untuned > 5_000, untuned
    assert tuned < 500, tuned


@glibc_only
def test_the_users_own_glibc_settings_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    from trio_metrics.cli._allocator import keep_freed_memory

    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert keep_freed_memory() is None


@glibc_only
def test_serve_sets_them_and_says_so_at_debug_level() -> None:
    server = ServeProcess("--log-level", "debug")
    try:
        status, log = server.stop(signal.SIGTERM)
    finally:
        server.ensure_stopped()
    assert status == 0, log
    assert "malloc keeps up to 8 MiB of freed memory for reuse" in log
