"""KeyTexts: the str of plain keys by their bytes, remembered within a bound."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_metrics.wire._key_texts import KeyTexts


def test_keys_are_decoded_and_the_same_str_comes_back_next_time() -> None:
    texts = KeyTexts()
    first = texts.decode([b"palm.cpu", b"load", b"palm.cpu"])
    assert first == ["palm.cpu", "load", "palm.cpu"]
    again = texts.decode([b"load", b"palm.cpu"])
    assert again == ["load", "palm.cpu"]
    assert again is not None and again[1] is first[0]
    assert len(texts) == 2


@pytest.mark.parametrize("refused", [b"*", b""])
def test_star_and_an_empty_token_are_no_keys(refused: bytes) -> None:
    texts = KeyTexts()
    assert texts.decode([b"a", refused, b"b"]) is None
    assert texts.decode([b"a", b"b"]) == ["a", "b"]
    assert texts.decode([refused, b"a"]) is None  # even with every other key known


def test_a_full_memory_starts_over_and_never_grows_past_its_capacity() -> None:
    texts = KeyTexts(capacity=3)
    assert texts.decode([b"a", b"b"]) == ["a", "b"]
    assert texts.decode([b"c", b"d"]) == ["c", "d"]
    assert len(texts) == 2  # forgot a and b to make room
    assert texts.decode([b"k%d" % n for n in range(5)]) == [f"k{n}" for n in range(5)]
    assert len(texts) <= 3


def test_long_keys_are_bounded_by_their_bytes() -> None:
    texts = KeyTexts(capacity=100, max_bytes=1000)
    long_keys = [b"k%d." % n + b"x" * 400 for n in range(3)]
    assert texts.decode(long_keys[:2]) == [key.decode() for key in long_keys[:2]]
    assert len(texts) == 2
    assert texts.decode(long_keys[2:]) == [long_keys[2].decode()]
    assert len(texts) == 1  # the first two were forgotten to make room
    assert texts.remembered_bytes <= 1000
    # A batch whose keys alone are over the bound is decoded, not remembered.
    assert texts.decode([b"y" * 1001]) == ["y" * 1001]
    assert texts.remembered_bytes <= 1000


@pytest.mark.parametrize("arguments", [{"capacity": 0}, {"max_bytes": 0}])
def test_the_bounds_must_be_positive(arguments: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must be at least 1"):
        KeyTexts(**arguments)


@settings(max_examples=300)
@given(
    st.lists(
        st.lists(st.sampled_from([b"a", b"b.c", b"d-1", b"e", b"f", b"*", b""]), max_size=8),
        max_size=6,
    ),
    st.integers(1, 4),
)
def test_decode_is_always_the_plain_decoding(batches: list[list[bytes]], capacity: int) -> None:
    texts = KeyTexts(capacity, max_bytes=6)
    for raw in batches:
        expected = None if (b"*" in raw or b"" in raw) else [key.decode() for key in raw]
        assert texts.decode(raw) == expected
        assert len(texts) <= capacity
        assert texts.remembered_bytes <= 6
