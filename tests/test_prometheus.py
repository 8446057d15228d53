"""The /metrics renderer, checked with Prometheus' own text parser."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from trio_metrics.http._prometheus import Figure, render, render_metrics
from trio_metrics.transport._stats import ServerStats


def families(text: str) -> dict[str, tuple[str, str, list[tuple[dict[str, str], float]]]]:
    return {
        family.name: (
            family.type,
            family.documentation,
            [(sample.labels, sample.value) for sample in family.samples],
        )
        for family in text_string_to_metric_families(text)
    }


def test_server_counters_by_name_kind_and_label() -> None:
    stats = ServerStats(
        connections_open=2,
        connections_total=9,
        connections_refused=1,
        puts=50,
        gets=7,
        stats_requests=3,
        errors=4,
        lines_too_long=2,
    )
    parsed = families(render_metrics(stats.as_dict(), keys=5, points=120))
    assert parsed["trio_metrics_connections_open"][:1] == ("gauge",)
    assert parsed["trio_metrics_connections_open"][2] == [({}, 2.0)]
    assert parsed["trio_metrics_connections"][2] == [({}, 9.0)]
    assert parsed["trio_metrics_connections"][0] == "counter"
    assert parsed["trio_metrics_connections_refused"][2] == [({}, 1.0)]
    assert parsed["trio_metrics_commands"][2] == [
        ({"kind": "put"}, 50.0),
        ({"kind": "get"}, 7.0),
        ({"kind": "stats"}, 3.0),
        ({"kind": "ping"}, 0.0),
        ({"kind": "keys"}, 0.0),
        ({"kind": "range"}, 0.0),
        ({"kind": "delete"}, 0.0),
        ({"kind": "auth"}, 0.0),
        ({"kind": "error"}, 4.0),
    ]
    assert parsed["trio_metrics_errors"][2] == [({}, 4.0)]
    assert parsed["trio_metrics_lines_too_long"][2] == [({}, 2.0)]
    assert parsed["trio_metrics_keys"] == ("gauge", "Keys in the store.", [({}, 5.0)])
    assert parsed["trio_metrics_points"] == ("gauge", "Points in the store.", [({}, 120.0)])
    # The sum of the command kinds is Prometheus' business, not a family of its own.
    assert "trio_metrics_commands_total" not in parsed


def test_extra_figures_are_added_without_changing_the_renderer() -> None:
    extra = {
        "wal_fsyncs": Figure.single("counter", "fsync calls of the log.", 12),
        "wal_bytes": Figure.single("counter", "Bytes written to the log.", 4096),
        "wal_segment_age_seconds": Figure.single("gauge", "Age of the open segment.", 1.5),
    }
    text = render_metrics(ServerStats().as_dict(), 0, 0, extra)
    parsed = families(text)
    assert parsed["trio_metrics_wal_fsyncs"] == ("counter", "fsync calls of the log.", [({}, 12)])
    assert parsed["trio_metrics_wal_bytes"][2] == [({}, 4096.0)]
    assert parsed["trio_metrics_wal_segment_age_seconds"][2] == [({}, 1.5)]
    assert "# TYPE trio_metrics_wal_fsyncs_total counter\n" in text
    assert "trio_metrics_wal_fsyncs_total 12\n" in text


def test_a_counter_this_module_does_not_know_is_shown_untyped() -> None:
    stats = {**ServerStats().as_dict(), "graphite_lines": 17}
    parsed = families(render_metrics(stats, 0, 0))
    assert parsed["trio_metrics_graphite_lines"] == (
        "unknown",  # the parser's name for "untyped"
        "The graphite_lines counter.",
        [({}, 17.0)],
    )


def test_a_name_defined_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="defined twice"):
        render_metrics(ServerStats().as_dict(), 0, 0, {"keys": Figure.single("gauge", "x", 1)})


@pytest.mark.parametrize("name", ["has space", "dash-ed", "dot.ted", "new\nline"])
def test_an_invalid_metric_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="invalid metric name"):
        render({name: Figure.single("gauge", "x", 1)})


def test_an_invalid_label_name_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid label name"):
        Figure.by_label("counter", "x", "bad-label", {"a": 1})


def test_help_and_label_values_are_escaped() -> None:
    figure = Figure.by_label("counter", 'Line one\nback\\slash "quoted"', "route", {'a"b\\c\nd': 3})
    parsed = families(render({"odd": figure}))
    assert parsed["trio_metrics_odd"] == (
        "counter",
        'Line one\nback\\slash "quoted"',
        [({"route": 'a"b\\c\nd'}, 3.0)],
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [(7, "7"), (0.25, "0.25"), (float("inf"), "+Inf"), (float("-inf"), "-Inf"), (1e300, "1e+300")],
)
def test_numbers_are_written_as_prometheus_reads_them(value: float, text: str) -> None:
    rendered = render({"x": Figure.single("gauge", "x", value)})
    assert rendered.endswith(f"\ntrio_metrics_x {text}\n")
    assert families(rendered)["trio_metrics_x"][2] == [({}, value)]
