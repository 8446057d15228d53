"""Compressed blocks of points round-trip bit for bit."""

from __future__ import annotations

import math
import random
import struct
from array import array

import hypothesis.strategies as st
from hypothesis import given, settings

from trio_metrics.storage._blocks import average_bases, compress_block


def bits(values: array[float]) -> list[int]:
    return [struct.unpack("<Q", struct.pack("<d", value))[0] for value in values]


@settings(max_examples=300, deadline=None)
@given(
    stamps=st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=300).map(sorted),
    values=st.data(),
)
def test_any_points_round_trip_bit_for_bit(stamps: list[int], values: st.DataObject) -> None:
    numbers = values.draw(
        st.lists(
            st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True),
            min_size=len(stamps),
            max_size=len(stamps),
        )
    )
    # With bases to try too (any base, any values): still bit for bit.
    bases = values.draw(st.lists(st.floats(1e-300, 1e300), max_size=2))
    for block in (compress_block(stamps, numbers), compress_block(stamps, numbers, bases)):
        got_stamps, got_values = block.decompress()
        assert list(got_stamps) == stamps
        assert bits(got_values) == bits(array("d", numbers))
        assert (block.first, block.last, block.count) == (stamps[0], stamps[-1], len(stamps))


def test_the_awkward_values_survive() -> None:
    stamps = [1, 2, 3, 2**53 + 1, 2**63 - 1]
    numbers = [-0.0, 5e-324, 2.2250738585072014e-308, float(2**53 + 1), -math.inf]
    _, got = compress_block(stamps, numbers).decompress()
    assert bits(got) == bits(array("d", numbers))
    assert math.copysign(1.0, got[0]) == -1.0


def test_gauges_on_a_step_take_about_a_byte_a_point() -> None:
    stamps = list(range(1_700_000_000, 1_700_000_000 + 10 * 1024, 10))
    numbers = [round(20 + 5 * math.sin(i / 50), 1) for i in range(1024)]
    block = compress_block(stamps, numbers)
    assert block.nbytes / len(stamps) < 2.0  # 16 as arrays


def hourly_averages_of_minute_averages(seed: int) -> list[float]:
    """1,024 steps of a three-tier cascade (10 s -> 1 min -> 1 h, averages)
    over a gauge at one decimal: what the coarsest tier compresses."""
    rng = random.Random(seed)
    value, points = 50.0, []
    for _ in range(360 * 1024):
        value = max(0.0, min(100.0, value + rng.gauss(0, 0.3)))
        points.append(round(value, 1))
    minutes = [sum(points[i : i + 6]) / 6 for i in range(0, len(points), 6)]
    return [sum(minutes[i : i + 60]) / 60 for i in range(0, len(minutes), 60)]


def test_averages_of_averages_compress_with_their_common_base() -> None:
    """pcodec alone misses the base of these (seed 0: about 6.5 bytes a value);
    the bases of averages over 360 slots find it (about 2.5), bit for bit."""
    numbers = hourly_averages_of_minute_averages(0)
    stamps = list(range(0, 3600 * len(numbers), 3600))
    alone = compress_block(stamps, numbers)
    hinted = compress_block(stamps, numbers, average_bases(360))
    assert len(alone.values) / len(numbers) > 5
    assert len(hinted.values) / len(numbers) < 3
    assert bits(hinted.decompress()[1]) == bits(array("d", numbers))


def test_average_bases_are_a_tenth_power_over_the_slots() -> None:
    assert average_bases(360) == (1 / 360, 0.1 / 360, 0.01 / 360, 0.001 / 360)
