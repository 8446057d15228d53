"""Prometheus remote write/read messages, sans-IO: our codec against the protobuf runtime's."""

from __future__ import annotations

import contextlib
import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from remote_messages import read_request, read_response, snappy, write_request

from trio_metrics.http import _remote_codec
from trio_metrics.http._prompb import remote_pb2, types_pb2
from trio_metrics.http._remote_codec import (
    STALE_NAN_BITS,
    RemoteFormatError,
    SeriesKeys,
    decode_read_request,
    decode_write_request,
    decompress,
    encode_read_response,
    encode_samples,
)
from trio_metrics.wire import key_from_labels

STALE_NAN = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]
NOW_MS = 1_764_000_000_123

_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,8}", fullmatch=True).filter(
    lambda name: name != "__name__"
)
_texts = st.text(st.characters(blacklist_characters="\0", blacklist_categories=["Cs"]), max_size=8)
_series_labels = st.builds(
    lambda metric, tags: {"__name__": metric, **tags},
    st.text(st.characters(blacklist_characters="\0", blacklist_categories=["Cs"]), min_size=1),
    st.dictionaries(_names, _texts.filter(bool), max_size=4),
)
_samples = st.lists(
    st.tuples(
        st.one_of(st.floats(), st.just(STALE_NAN), st.just(0.0)),
        st.one_of(
            st.integers(-(2**63), 2**63 - 1),
            st.integers(0, 2**40),
            st.integers(NOW_MS - 10**9, NOW_MS + 10**9),  # 6-byte varints: the usual shape
        ),
    ),
    max_size=3,
)


def expected_columns(
    series: list[tuple[dict[str, str], list[tuple[float, int]]]],
) -> tuple[list[str], list[float], list[int]]:
    keys: list[str] = []
    values: list[float] = []
    stamps: list[int] = []
    for labels, samples in series:
        for value, millis in samples:
            if math.isfinite(value) and millis >= 0:
                keys.append(key_from_labels(labels.items()))
                values.append(value)
                stamps.append(millis // 1000)
    return keys, values, stamps


@settings(max_examples=300)
@given(st.lists(st.tuples(_series_labels, _samples), max_size=6))
def test_decoder_reads_what_protobuf_writes(
    series: list[tuple[dict[str, str], list[tuple[float, int]]]],
) -> None:
    data = write_request(series)
    keys = SeriesKeys()
    for _ in range(2):  # the second time, every series is known
        batch = decode_write_request(data, keys, 100)
        assert (batch.keys, batch.values, batch.timestamps) == expected_columns(series)
        assert batch.series == len(series)
        assert batch.samples == sum(len(samples) for _, samples in series)
        stale = sum(
            struct.pack("<d", v) == struct.pack("<Q", STALE_NAN_BITS)
            for _, s in series
            for v, _ in s
        )
        assert batch.stale == stale


_usual_values = st.one_of(
    st.floats(), st.just(STALE_NAN), st.just(0.0), st.just(-0.0), st.floats(-1e6, 1e6)
)
#: Series as Prometheus writes them: one sample, its timestamp a 6-byte varint.
_usual_series = st.tuples(
    _series_labels,
    st.lists(
        st.tuples(_usual_values, st.integers(2**35, 2**42 - 1)),
        min_size=1,
        max_size=1,
    ),
)


@settings(max_examples=200)
@given(
    st.lists(_usual_series, min_size=1, max_size=40),
    st.lists(st.tuples(_series_labels, _samples), max_size=3),
    st.data(),
)
def test_usual_series_read_all_at_once_match_protobuf(
    usual: list[tuple[dict[str, str], list[tuple[float, int]]]],
    others: list[tuple[dict[str, str], list[tuple[float, int]]]],
    data: st.DataObject,
) -> None:
    # Known series of the usual shape are read as columns; any other series
    # among them is decoded on its own, in its place.
    series = list(usual)
    for other in others:
        series.insert(data.draw(st.integers(0, len(series))), other)
    keys = SeriesKeys()
    decode_write_request(write_request(series), keys, 100)
    batch = decode_write_request(write_request(series), keys, 100)
    assert (batch.keys, batch.values, batch.timestamps) == expected_columns(series)
    assert [math.copysign(1, v) for v in batch.values] == [
        math.copysign(1, v) for v in expected_columns(series)[1]
    ]
    assert batch.samples == sum(len(samples) for _, samples in series)
    stale = sum(
        struct.pack("<d", v) == struct.pack("<Q", STALE_NAN_BITS) for _, s in series for v, _ in s
    )
    assert (batch.stale, batch.series) == (stale, len(series))
    assert batch.unstorable == batch.samples - stale - len(batch.keys)


def test_known_series_of_the_usual_shape_are_not_decoded_one_by_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    series = [
        ({"__name__": "m", "i": str(i)}, [(value, NOW_MS + i)])
        for i, value in enumerate([1.5, 0.0, STALE_NAN, math.inf, -2.0] * 20)
    ]
    keys = SeriesKeys()
    decode_write_request(write_request(series), keys, 1000)

    def one_by_one(*args: object) -> None:
        raise AssertionError("a known series of the usual shape was decoded on its own")

    monkeypatch.setattr(_remote_codec, "_add_series", one_by_one)
    batch = decode_write_request(write_request(series), keys, 1000)
    assert (batch.keys, batch.values, batch.timestamps) == expected_columns(series)
    assert (batch.stale, batch.unstorable) == (20, 20)


def test_stale_markers_and_unstorable_samples_are_left_out() -> None:
    data = write_request(
        [
            (
                {"__name__": "up", "job": "a"},
                [(1.5, NOW_MS), (STALE_NAN, NOW_MS + 1000), (math.nan, NOW_MS + 2000)],
            ),
            ({"__name__": "up", "job": "b"}, [(math.inf, NOW_MS), (2.0, -1000)]),
        ]
    )
    batch = decode_write_request(data, SeriesKeys(), 10)
    assert (batch.keys, batch.values, batch.timestamps) == (["up;job=a"], [1.5], [NOW_MS // 1000])
    assert (batch.stale, batch.unstorable, batch.samples) == (1, 3, 5)


def test_milliseconds_are_truncated() -> None:
    data = write_request(
        [({"__name__": "m"}, [(1.0, 1999), (2.0, 2000), (3.0, 1_500_000_000_999)])]
    )
    assert decode_write_request(data, SeriesKeys(), 10).timestamps == [1, 2, 1_500_000_000]


def test_metadata_only_request() -> None:
    request = remote_pb2.WriteRequest()
    request.metadata.add(type=types_pb2.MetricMetadata.COUNTER, metric_family_name="x", help="h")
    request.metadata.add(type=types_pb2.MetricMetadata.GAUGE, metric_family_name="y")
    batch = decode_write_request(request.SerializeToString(), SeriesKeys(), 10)
    assert (batch.keys, batch.metadata, batch.series) == ([], 2, 0)


def _label(name: bytes, value: bytes) -> bytes:
    body = b"\x0a" + bytes([len(name)]) + name + b"\x12" + bytes([len(value)]) + value
    return b"\x0a" + bytes([len(body)]) + body


def test_labels_after_the_samples_still_name_the_series() -> None:
    sample = b"\x12\x0c\x09" + struct.pack("<d", 4.0) + b"\x10\x88\x27"  # 5000 ms
    series = _label(b"__name__", b"m") + sample + _label(b"job", b"j")
    data = b"\x0a" + bytes([len(series)]) + series
    batch = decode_write_request(data, SeriesKeys(), 10)
    assert (batch.keys, batch.values, batch.timestamps) == (["m;job=j"], [4.0], [5])


def test_unknown_fields_are_skipped() -> None:
    sample = b"\x12\x0e\x09" + struct.pack("<d", 4.0) + b"\x10\x88\x27\x18\x01"
    series = _label(b"__name__", b"m") + sample + b"\x1a\x00\x22\x00\x2d\x00\x00\x00\x00"
    data = b"\x0a" + bytes([len(series)]) + series + b"\x28\x05"
    assert decode_write_request(data, SeriesKeys(), 10).keys == ["m"]


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({"__name__": "a", "job": "x\0y"}, "NUL"),
        ({"__name__": "a\0"}, "NUL"),
        ({"__name__": "a", "bad-name": "x"}, "not a Prometheus label name"),
        ({"__name__": "a", "": "x"}, "not a Prometheus label name"),
        ({}, "no labels"),
        ({"__name__": "a" * 70_000}, "longer than"),
    ],
)
def test_series_that_no_key_can_hold(labels: dict[str, str], message: str) -> None:
    with pytest.raises(RemoteFormatError, match=message):
        decode_write_request(write_request([(labels, [(1.0, NOW_MS)])]), SeriesKeys(), 10)


def test_a_label_given_twice_and_a_label_not_utf8() -> None:
    twice = _label(b"__name__", b"m") + _label(b"job", b"a") + _label(b"job", b"b")
    with pytest.raises(RemoteFormatError, match="given twice"):
        decode_write_request(b"\x0a" + bytes([len(twice)]) + twice, SeriesKeys(), 10)
    latin = _label(b"__name__", b"caf\xe9")
    with pytest.raises(RemoteFormatError, match="UTF-8"):
        decode_write_request(b"\x0a" + bytes([len(latin)]) + latin, SeriesKeys(), 10)


def test_too_many_series() -> None:
    data = write_request([({"__name__": f"m{i}"}, [(1.0, NOW_MS)]) for i in range(11)])
    with pytest.raises(RemoteFormatError, match="more than 10 series"):
        decode_write_request(data, SeriesKeys(), 10)


@given(st.data())
def test_any_cut_or_damage_is_refused_cleanly(data: st.DataObject) -> None:
    whole = write_request(
        [({"__name__": "node_load1", "job": "node"}, [(0.5, NOW_MS)]), ({"__name__": "x"}, [])]
    )
    cut = data.draw(st.integers(0, len(whole) - 1))
    damaged = bytearray(whole[:cut])
    if damaged and data.draw(st.booleans()):
        damaged[data.draw(st.integers(0, len(damaged) - 1))] = data.draw(st.integers(0, 255))
    try:
        batch = decode_write_request(bytes(damaged), SeriesKeys(), 10)
    except RemoteFormatError:
        return
    assert len(batch.keys) <= 1  # a cut on a field boundary is a shorter valid message


@given(st.binary(max_size=64))
def test_random_bytes_decode_or_raise_remote_format_error(data: bytes) -> None:
    with contextlib.suppress(RemoteFormatError):
        decode_write_request(data, SeriesKeys(), 10)


def test_the_key_cache_starts_afresh_when_full() -> None:
    keys = SeriesKeys(max_entries=2)
    data = write_request([({"__name__": f"m{i}"}, [(1.0, NOW_MS)]) for i in range(5)])
    assert decode_write_request(data, keys, 10).keys == [f"m{i}" for i in range(5)]
    assert len(keys) <= 2


# --- snappy -------------------------------------------------------------------


def test_decompress_checks_the_declared_size_first() -> None:
    body = snappy(b"x" * 1000)
    assert decompress(body, 1000) == b"x" * 1000
    with pytest.raises(RemoteFormatError, match="over the limit of 999"):
        decompress(body, 999)


@pytest.mark.parametrize(
    "body", [b"", b"\xff\xff\xff", snappy(b"hello world" * 10)[:-3], b"\x05ab"]
)
def test_decompress_refuses_broken_blocks(body: bytes) -> None:
    with pytest.raises(RemoteFormatError):
        decompress(body, 1 << 20)


# --- remote read --------------------------------------------------------------


def test_read_request_matchers() -> None:
    data = read_request(
        (1000, 2000, [("=", "__name__", "up"), ("!=", "job", "a"), ("=~", "i", "b|c")]),
        (0, 5, [("!~", "x", "y.*")]),
    )
    first, second = decode_read_request(data)
    assert (first.start_ms, first.end_ms, second.end_ms) == (1000, 2000, 5)
    assert [(m.kind, m.name, m.value) for m in first.matchers] == [
        ("=", "__name__", "up"),
        ("!=", "job", "a"),
        ("=~", "i", "b|c"),
    ]
    regex = first.matchers[2]
    assert regex.matches({"i": "b"}) and not regex.matches({"i": "bb"})  # fully anchored
    assert not regex.matches({})
    assert second.matchers[0].matches({"x": "z"}) and not second.matchers[0].matches({"x": "yy"})
    assert first.matchers[1].matches({}) and not first.matchers[1].matches({"job": "a"})


_STREAMED = remote_pb2.ReadRequest.STREAMED_XOR_CHUNKS


def test_read_request_refusals() -> None:
    with pytest.raises(RemoteFormatError, match="regular expression"):
        decode_read_request(read_request((0, 1, [("=~", "a", "(")])))
    with pytest.raises(RemoteFormatError, match="not a ReadRequest"):
        decode_read_request(b"\x0a\x05ab")
    streamed = remote_pb2.ReadRequest(accepted_response_types=[_STREAMED]).SerializeToString()
    with pytest.raises(RemoteFormatError, match="SAMPLES"):
        decode_read_request(streamed)
    both = remote_pb2.ReadRequest(
        accepted_response_types=[_STREAMED, remote_pb2.ReadRequest.SAMPLES]
    ).SerializeToString()
    assert decode_read_request(both) == []


@given(
    st.lists(
        st.lists(
            st.tuples(
                st.lists(st.tuples(_texts, _texts), max_size=3),
                st.lists(
                    st.tuples(
                        st.one_of(st.integers(0, 2**53), st.integers(1_500_000_000, 1_800_000_000)),
                        st.floats(allow_nan=False),
                    ),
                    max_size=4,
                ),
            ),
            max_size=3,
        ),
        max_size=3,
    )
)
def test_protobuf_reads_what_our_encoder_writes(
    results: list[list[tuple[list[tuple[str, str]], list[tuple[int, float]]]]],
) -> None:
    encoded = encode_read_response(
        [
            zip(
                (labels for labels, _ in result),
                encode_samples([([t for t, _ in p], [v for _, v in p]) for _, p in result]),
                strict=True,
            )
            for result in results
        ]
    )
    decoded = read_response(encoded)
    assert decoded == [
        [(dict(labels), [(v, t * 1000) for t, v in points]) for labels, points in result]
        for result in results
    ]
