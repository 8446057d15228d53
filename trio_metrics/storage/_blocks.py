"""Compressed blocks of points: how old, finished data is held in memory.

A :class:`Block` holds a run of consecutive points of one series, its
timestamps and values each compressed with pcodec (a numerical codec
written in Rust: timestamps on a regular step cost well under a byte a
point, slowly changing gauges about one; it finds deltas, common
multiples and float bit patterns by itself, where a Gorilla-style
delta-of-delta and XOR coder of our own would be slower Python and no
smaller). Both columns round-trip bit for bit: -0.0, subnormals and every
int64 timestamp included.

pcodec and numpy are imported on first use, so a server without
retention rules never loads them.
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING, Any, Final

import attrs

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["BLOCK_POINTS", "Block", "average_bases", "compress_block", "load_codec"]

#: Points per block: large enough that the codec's own header is noise,
#: small enough that a read of a short range decompresses little.
BLOCK_POINTS: Final = 1024


@attrs.frozen
class Block:
    """Compressed consecutive points: ``count`` of them, from ``first`` to ``last``."""

    first: int
    last: int
    count: int
    stamps: bytes
    values: bytes

    @property
    def nbytes(self) -> int:
        """Bytes of compressed data held."""
        return len(self.stamps) + len(self.values)

    def decompress(self) -> tuple[array[int], array[float]]:
        """The block's timestamps and values, as the store's typed arrays."""
        standalone, _ = _codec()
        stamps: array[int] = array("q")
        stamps.frombytes(standalone.simple_decompress(self.stamps).tobytes())
        values: array[float] = array("d")
        values.frombytes(standalone.simple_decompress(self.values).tobytes())
        return stamps, values


#: Above this many bytes a value, a block of averages is tried again with
#: the common bases its values may be near multiples of (see :func:`average_bases`).
HINT_ABOVE_BYTES_A_VALUE: Final = 3


def compress_block(
    stamps: Sequence[int], values: Sequence[float], bases: Sequence[float] = ()
) -> Block:
    """A :class:`Block` of the points (timestamps ascending, at least one point).

    pcodec looks for a common base of the values by itself, from a sample;
    for averages of averages it sometimes misses it (6.5 bytes a value
    instead of 2.5). When the values take more than
    :data:`HINT_ABOVE_BYTES_A_VALUE` bytes each, each of ``bases`` is
    tried as well and the smallest result kept: any of them decompresses
    to the same values, bit for bit.
    """
    standalone, numpy = _codec()
    config = standalone_config()
    stamp_column = numpy.asarray(stamps, dtype=numpy.int64)
    value_column = numpy.asarray(values, dtype=numpy.float64)
    compressed_values = standalone.simple_compress(value_column, config)
    if bases and len(compressed_values) > HINT_ABOVE_BYTES_A_VALUE * len(value_column):
        from pcodec import ChunkConfig, ModeSpec

        for base in bases:
            hinted = ChunkConfig(mode_spec=ModeSpec.try_float_mult(base))
            candidate = standalone.simple_compress(value_column, hinted)
            if len(candidate) < len(compressed_values):
                compressed_values = candidate
    return Block(
        int(stamp_column[0]),
        int(stamp_column[-1]),
        len(stamp_column),
        standalone.simple_compress(stamp_column, config),
        compressed_values,
    )


def average_bases(slots: int) -> tuple[float, ...]:
    """The bases that averages over ``slots`` slots of values with 0 to 3
    decimals are multiples of (before rounding): ``10**-d / slots``.

    For a coarser tier of averages of averages, ``slots`` is the product
    of the tiers' slots (its step over the finest tier's).
    """
    return tuple(10.0**-decimals / slots for decimals in range(4))


def standalone_config() -> Any:
    """pcodec's default chunk settings."""
    from pcodec import ChunkConfig

    return ChunkConfig()


def load_codec() -> None:
    """Import pcodec and numpy now (a first import takes about 0.1 s)."""
    _codec()


def _codec() -> tuple[Any, Any]:
    import numpy
    from pcodec import standalone

    return standalone, numpy
