"""Peak memory of a compaction whose keys are long.

    python bench/compaction_memory.py                    # 4,000 keys of 60 KB
    python bench/compaction_memory.py --keys 200         # a quick look

Fills a durable store in a temporary directory (``--fsync never``, no
automatic compaction) with ``--keys`` keys of ``--key-bytes`` bytes, each
with ``--points`` points, then resets this process's peak RSS (writing 5
to /proc/self/clear_refs, Linux), compacts once, and reports the RSS
before the compaction and the peak during it (VmHWM), in MiB.
"""

from __future__ import annotations

import argparse
import gc
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import trio

from trio_metrics.storage._durable import open_durable_store

_NEVER = 1 << 62


def status_mib(field: str) -> float:
    """A ``kB`` figure of /proc/self/status (``VmRSS``, ``VmHWM``) in MiB."""
    status = Path("/proc/self/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB$", status, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no {field} in /proc/self/status")
    return int(match.group(1)) / 1024


def reset_peak() -> None:
    """Make VmHWM start again from the current RSS."""
    Path("/proc/self/clear_refs").write_text("5")


async def measure(directory: Path, keys: int, key_bytes: int, points: int) -> tuple[float, float]:
    """Fill, compact; return (RSS before the compaction, peak during it) in MiB."""
    async with open_durable_store(directory, fsync="never", compact_min_bytes=_NEVER) as store:
        stamps = list(range(1, points + 1))
        for number in range(keys):
            prefix = f"key{number:07d}."
            key = prefix + "x" * (key_bytes - len(prefix))
            await store.put_batch([key] * points, [float(number)] * points, stamps)
        gc.collect()
        before = status_mib("VmRSS")
        reset_peak()
        await store.compact()
        peak = status_mib("VmHWM")
        print(f"snapshot: {store.figures.snapshot_bytes:,} bytes")
    return before, peak


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=4000)
    parser.add_argument("--key-bytes", type=int, default=60_000)
    parser.add_argument("--points", type=int, default=3, help="points per key")
    options = parser.parse_args(argv)
    print(
        f"{options.keys:,} keys of {options.key_bytes:,} bytes, {options.points} points each",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="compaction-memory-") as workdir:
        before, peak = trio.run(
            measure, Path(workdir), options.keys, options.key_bytes, options.points
        )
    print(f"RSS before compaction: {before:.1f} MiB")
    print(f"peak during compaction: {peak:.1f} MiB (+{peak - before:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
