"""Bytes a point of compressed blocks, by kind of values, in-process.

    python bench/retention_blocks.py

Each row is one block of 1,024 values (``compress_block``, what the roll-up
task makes; timestamps 60 s apart, so the values dominate), as the
retention tiers produce them from collectd-like gauges (a random walk,
rounded as said): the points as put, whisper's averages of 6 or 60 slots,
averages of averages (three seeds), steps of 5 or 6 known slots
(xFilesFactor), and gauges with more decimals or none. Columns: pcodec's
default alone; with the common bases of averages tried as well (what the
roll-up task does, :func:`average_bases`); pcodec's ``classic`` mode (no
search for a common base); and the averages kept as the float sums they
divide (``sum / count`` gives back the average bit for bit; a count column,
a constant, would cost next to nothing). Every block is decompressed and
checked bit for bit.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable

import numpy
from pcodec import ChunkConfig, ModeSpec, standalone

from trio_metrics.storage._blocks import BLOCK_POINTS, average_bases, compress_block

Values = list[float]


def walk(rng: random.Random, count: int, decimals: int | None) -> Values:
    """A gauge between 0 and 100 moving a little each step, rounded to ``decimals``."""
    value, out = 50.0, []
    for _ in range(count):
        value = max(0.0, min(100.0, value + rng.gauss(0, 0.3)))
        out.append(value if decimals is None else round(value, decimals))
    return out


def averages(
    values: Values, sizes: Callable[[], int], count: int = BLOCK_POINTS
) -> tuple[Values, Values]:
    """whisper's averages of ``count`` consecutive runs of ``sizes()`` values,
    and their sums."""
    means: Values = []
    sums: Values = []
    start = 0
    while len(means) < count:
        size = sizes()
        part = values[start : start + size]
        start += size
        means.append(sum(part) / len(part))
        sums.append(float(sum(part)))
    return means, sums


def bits(values: Values) -> list[int]:
    return [struct.unpack("<Q", struct.pack("<d", value))[0] for value in values]


def block_bytes(values: Values, slots: int | None = None) -> float:
    """Bytes a point of the values' column in a block (with the common bases
    of averages over ``slots`` to try), checked bit for bit."""
    stamps = list(range(0, 60 * len(values), 60))
    bases = () if slots is None else average_bases(slots)
    block = compress_block(stamps, values, bases)
    _, back = block.decompress()
    assert bits(list(back)) == bits(values)
    return len(block.values) / len(values)


def classic_bytes(values: Values) -> float:
    config = ChunkConfig(mode_spec=ModeSpec.classic())
    column = numpy.asarray(values, dtype=numpy.float64)
    return len(standalone.simple_compress(column, config)) / len(values)


def main() -> int:
    rng = random.Random(1)
    n = BLOCK_POINTS
    # (what, values, their sums if averages, slots averaged)
    rows: list[tuple[str, Values, Values | None, int | None]] = [
        ("one decimal, as put", walk(rng, n, 1), None, None),
        ("one decimal, averages of 6", *averages(walk(rng, 6 * n, 1), lambda: 6), 6),
        ("one decimal, averages of 60", *averages(walk(rng, 60 * n, 1), lambda: 60), 60),
        (
            "one decimal, averages of 5 or 6 known",
            *averages(walk(rng, 6 * n, 1), lambda: rng.choice((5, 6))),
            6,
        ),
        ("two decimals, averages of 6", *averages(walk(rng, 6 * n, 2), lambda: 6), 6),
        ("full precision, as put", walk(rng, n, None), None, None),
        ("full precision, averages of 6", *averages(walk(rng, 6 * n, None), lambda: 6), 6),
    ]
    for seed in range(3):
        # Three tiers, 10 s -> 1 min -> 1 h: the coarsest holds averages of averages.
        seeded = random.Random(seed)
        minutes, _ = averages(walk(seeded, 360 * n, 1), lambda: 6, 60 * n)
        hours, hour_sums = averages(minutes, lambda: 60)
        rows.append(
            (f"one decimal, hourly averages of minute averages ({seed})", hours, hour_sums, 360)
        )
    print(
        f"{'values (1,024 a block)':56} {'pcodec':>7} {'+bases':>7} {'classic':>8} {'as sums':>8}"
    )
    for name, values, sums, slots in rows:
        as_sums = "" if sums is None else f"{block_bytes(sums):8.2f}"
        hinted = "" if slots is None else f"{block_bytes(values, slots):7.2f}"
        print(
            f"{name:56} {block_bytes(values):7.2f} {hinted:>7}"
            f" {classic_bytes(values):8.2f} {as_sums:>8}"
        )
    print(
        "(bytes a point of the values' column; the timestamps' column adds about 0.01;"
        " +bases: what the roll-up task makes, the common bases of averages tried"
        " when pcodec's own choice takes over 3 bytes a value)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
