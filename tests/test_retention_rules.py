"""Retention rules in carbon's forms: retentions, storage-schemas.conf, storage-aggregation.conf."""

from __future__ import annotations

from pathlib import Path

import pytest

from trio_metrics.storage import (
    Aggregation,
    Archive,
    RetentionError,
    RetentionRules,
    load_storage_aggregation,
    load_storage_schemas,
    parse_retention,
)

# carbon's own example files (conf/*.conf.example in carbon's repository), as shipped:
# its [sum] section does say max.
CARBON_SCHEMAS = r"""
# Schema definitions for Whisper files. Entries are scanned in order,
# and first match wins. This file is scanned for changes every 60 seconds.
#
# Definition Syntax:
#
#    [name]
#    pattern = regex
#    retentions = timePerPoint:timeToStore, timePerPoint:timeToStore, ...
#
# Remember: To support accurate aggregation from higher to lower resolution
#           archives, the precision of a longer retention archive must be
#           cleanly divisible by precision of next lower retention archive.
#
#           Valid:    60s:7d,300s:30d (300/60 = 5)
#           Invalid:  180s:7d,300s:30d (300/180 = 3.333)
#
# This retention is set at the time the first metric is sent.
# Changing this file will not affect already-created .wsp files.
# Use whisper-resize.py to change existing data files.

# Carbon's internal metrics. This entry should match what is specified in
# CARBON_METRIC_PREFIX and CARBON_METRIC_INTERVAL settings
[carbon]
pattern = ^carbon\.
retentions = 60:90d

[default_1min_for_1day]
pattern = .*
retentions = 60s:1d
"""

CARBON_AGGREGATION = r"""
# Aggregation methods for whisper files. Entries are scanned in order,
# and first match wins. This file is scanned for changes every 60 seconds
#
#  [name]
#  pattern = <regex>
#  xFilesFactor = <float between 0 and 1>
#  aggregationMethod = <average|sum|last|max|min>
#
#  name: Arbitrary unique name for the rule
#  pattern: Regex pattern to match against the metric name
#  xFilesFactor: Ratio of valid data points required for aggregation to the next retention to occur
#  aggregationMethod: function to apply to data points for aggregation
#
[min]
pattern = \.min$
xFilesFactor = 0.1
aggregationMethod = min

[max]
pattern = \.max$
xFilesFactor = 0.1
aggregationMethod = max

[sum]
pattern = \.count$
xFilesFactor = 0
aggregationMethod = max

[default_average]
pattern = .*
xFilesFactor = 0.5
aggregationMethod = average
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "archives"),
    [
        ("10s:1d,1m:30d,1h:2y", [(10, 8640), (60, 43200), (3600, 17520)]),
        ("60:1440", [(60, 1440)]),  # seconds:points
        ("1min:1d", [(60, 1440)]),
        ("1m:1d", [(60, 1440)]),  # whisper reads m as minutes
        ("15s:7d,1m:21d,15m:5y", [(15, 40320), (60, 30240), (900, 175200)]),
        ("1h:1w", [(3600, 168)]),
        ("10sec:6hours", [(10, 2160)]),
        ("1m:30d,10s:1d", [(10, 8640), (60, 43200)]),  # sorted finest first, as whisper
    ],
)
def test_retentions_read_as_whisper_reads_them(text: str, archives: list[tuple[int, int]]) -> None:
    assert [(a.step, a.points) for a in parse_retention(text).archives] == archives


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10s", "a retention is step:span"),
        ("10s:1d,10s:2d", "same step"),
        ("7s:1d,1m:30d", "does not divide"),
        ("10s:1d,1m:12h", "reach further back"),
        ("10s:50s,1m:1d", "fewer points than one step"),
        ("1mon:1d", "unknown unit 'mon'"),
        ("1x:1d", "unknown unit 'x'"),
        ("1d:10s", "holds no point"),
        ("0s:1d", "from 1"),
        ("ten:1d", "not a number"),
        ("1s:2000y", "1000 years"),
    ],
)
def test_bad_retentions_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(RetentionError, match=message):
        parse_retention(text)


def test_carbons_example_files_act_as_carbon_documents(tmp_path: Path) -> None:
    schemas = load_storage_schemas(write(tmp_path, "storage-schemas.conf", CARBON_SCHEMAS))
    aggregation = load_storage_aggregation(
        write(tmp_path, "storage-aggregation.conf", CARBON_AGGREGATION)
    )
    rules = RetentionRules(schemas, aggregation)
    carbon = rules.policy_for("carbon.agents.a.cpuUsage")
    assert carbon is not None
    assert carbon.retention.archives == (Archive(60, 90 * 1440),)
    assert carbon.aggregation == Aggregation("average", 0.5)
    latency = rules.policy_for("web.latency.max")
    assert latency is not None
    assert latency.retention.archives == (Archive(60, 1440),)
    assert latency.aggregation == Aggregation("max", 0.1)
    hits = rules.policy_for("web.hits.count")
    assert hits is not None and hits.aggregation == Aggregation("max", 0.0)
    # First match in file order: "carbon.x.min" is carbon's for retention, min's for aggregation.
    both = rules.policy_for("carbon.x.min")
    assert both is not None
    assert both.retention.archives == (Archive(60, 90 * 1440),)
    assert both.aggregation.method == "min"


def test_a_pattern_is_searched_not_matched_and_no_match_falls_back(tmp_path: Path) -> None:
    schemas = load_storage_schemas(
        write(tmp_path, "s.conf", "[cpu]\npattern = cpu\nretentions = 10s:1d\n")
    )
    assert RetentionRules(schemas).policy_for("host.cpu.user") is not None  # search
    assert RetentionRules(schemas).policy_for("host.mem") is None  # keep everything
    fallback = RetentionRules(schemas, default=parse_retention("1m:7d"))
    policy = fallback.policy_for("host.mem")
    assert policy is not None and policy.retention.archives == (Archive(60, 7 * 1440),)
    assert RetentionRules().keeps_everything


def test_match_all_sections(tmp_path: Path) -> None:
    schemas = load_storage_schemas(
        write(tmp_path, "s.conf", "[all]\nmatch-all = true\nretentions = 1m:1d\n")
    )
    assert RetentionRules(schemas).policy_for("anything") is not None


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("[a]\npattern = x\n", 1, "has no retentions"),
        ("[a]\npattern = x\nretentions = 10s:1d,10s:2d\n", 3, "same step"),
        ("[a]\npattern = (\nretentions = 10s:1d\n", 2, "bad pattern"),
        ("[a]\nretentions = 10s:1d\n", 1, "exactly one of pattern or match-all"),
        ("pattern = x\n", 1, "before any"),
        ("[a]\npattern = x\nretention = 10s:1d\n", 3, "unknown setting 'retention'"),
        ("[a]\npattern x\n", 2, "expected name = value"),
        ("[a]\npattern = x\nretentions = 1m:1d\n[a]\n", 4, "appears twice"),
        ("[a\n", 1, "section header"),
        ("[a]\npattern = x\npattern = y\n", 3, "given twice"),
    ],
)
def test_a_bad_schema_file_names_the_file_and_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = write(tmp_path, "storage-schemas.conf", text)
    with pytest.raises(RetentionError, match=message) as caught:
        load_storage_schemas(path)
    assert str(caught.value).startswith(f"{path}:{line}: ")


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("[a]\npattern = x\naggregationMethod = median\n", 3, "unknown aggregationMethod"),
        ("[a]\npattern = x\nxFilesFactor = 2\n", 3, "from 0 to 1"),
        ("[a]\npattern = x\nxFilesFactor = half\n", 3, "from 0 to 1"),
    ],
)
def test_a_bad_aggregation_file_names_the_file_and_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = write(tmp_path, "storage-aggregation.conf", text)
    with pytest.raises(RetentionError, match=message) as caught:
        load_storage_aggregation(path)
    assert str(caught.value).startswith(f"{path}:{line}: ")


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RetentionError, match="cannot read"):
        load_storage_schemas(tmp_path / "nope.conf")
