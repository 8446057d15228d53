"""Compressed blocks of points round-trip bit for bit."""

from __future__ import annotations

import math
import struct
from array import array

import hypothesis.strategies as st
from hypothesis import given, settings

from trio_metrics.storage._blocks import compress_block


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
    block = compress_block(stamps, numbers)
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
