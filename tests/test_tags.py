"""Labelled series as keys (wire._tags): the escaping, and the round trip both ways."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_metrics.wire import (
    is_valid_key,
    key_from_labels,
    labels_from_key,
    prometheus_labels,
    prometheus_name,
)


def test_usual_series_reads_as_written() -> None:
    labels = [("job", "node"), ("__name__", "node_load1"), ("instance", "a:9100")]
    assert key_from_labels(labels) == "node_load1;instance=a:9100;job=node"


def test_characters_a_key_cannot_hold_are_escaped() -> None:
    key = key_from_labels([("__name__", "a b;c*"), ("x=y", "~v%;\u65e5 \n"), ("e", "")])
    assert key == "a%20b%3Bc%2A;x%3Dy=%7Ev%25%3B\u65e5%20%0A"
    assert labels_from_key(key) == (("__name__", "a b;c*"), ("x=y", "~v%;\u65e5 \n"))


def test_tilde_is_escaped_only_first_in_a_value() -> None:
    assert key_from_labels([("__name__", "m"), ("a", "b~c"), ("d", "~e")]) == "m;a=b~c;d=%7Ee"


def test_series_without_a_name() -> None:
    assert key_from_labels([("job", "x")]) == ";job=x"
    assert labels_from_key(";job=x") == (("job", "x"),)


@pytest.mark.parametrize(
    "labels",
    [[], [("__name__", "")], [("", "v")], [("a", "1"), ("a", "2")], [("job", "x\ud800")]],
)
def test_labels_no_key_can_stand_for(labels: list[tuple[str, str]]) -> None:
    with pytest.raises(ValueError):
        key_from_labels(labels)


@pytest.mark.parametrize(
    "key",
    [
        "palm.cpu",  # no tags
        "a;b",  # a tag without '='
        "a;b=",  # an empty value
        "a;=b",  # an empty name
        "m;b=1;a=2",  # not sorted
        "m;a=%2a",  # lower-case escape
        "m;a=%zz",  # stray '%'
        "m;a=%FF",  # not UTF-8
        "m;a=~b",  # a '~' that should be escaped
        "m;a=1;a=2",  # a name twice
    ],
)
def test_keys_that_are_not_tagged(key: str) -> None:
    assert labels_from_key(key) is None
    assert prometheus_labels(key) == (
        ("__name__", prometheus_name(key)),
        ("graphite_path", key),
    )


def test_plain_path_in_prometheus() -> None:
    assert prometheus_labels("palm.cpu") == (
        ("__name__", "palm_cpu"),
        ("graphite_path", "palm.cpu"),
    )
    assert prometheus_name("a-b/c:d_\u00e9") == "a_b_c:d__"


_label_names = st.text(min_size=1, max_size=12).filter(lambda name: name != "__name__")
_label_sets = st.tuples(
    st.text(max_size=12), st.dictionaries(_label_names, st.text(min_size=1, max_size=12))
).filter(lambda pair: bool(pair[0] or pair[1]))


@given(_label_sets)
def test_labels_to_key_and_back(pair: tuple[str, dict[str, str]]) -> None:
    metric, tags = pair
    labels = [("__name__", metric), *tags.items()]
    key = key_from_labels(labels)
    assert is_valid_key(key)
    if any(tags.values()):
        assert labels_from_key(key) == tuple(sorted((n, v) for n, v in labels if v))
    else:
        # A name alone is a plain key: Prometheus sees it with graphite_path.
        assert labels_from_key(key) is None
        assert ";" not in key


def test_a_name_alone_is_a_plain_key() -> None:
    assert key_from_labels([("__name__", "up")]) == "up"
    assert prometheus_labels("up") == (("__name__", "up"), ("graphite_path", "up"))


@given(st.text(min_size=1, max_size=30))
def test_any_key_that_reads_as_labels_writes_back_the_same(key: str) -> None:
    labels = labels_from_key(key)
    if labels is not None:
        assert key_from_labels(labels) == key
    exposed = dict(prometheus_labels(key))
    if labels is None:
        assert exposed["graphite_path"] == key
