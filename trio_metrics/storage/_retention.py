"""Retention rules: how long each key's points are kept, and at which steps.

The forms are carbon's, so that Graphite users bring their files as they are:

- a retention such as ``10s:1d,1m:30d,1h:2y``: archives of ``step:span``,
  finest first; either side may be a bare number (seconds for the step,
  a count of points for the span, as in carbon's ``60:1440``); units are any
  prefix of ``seconds``, ``minutes``, ``hours``, ``days``, ``weeks``,
  ``years`` (so ``s``, ``m``, ``min``, ``h``, ``d``, ``w``, ``y``), as
  whisper reads them;
- ``storage-schemas.conf``: sections with ``pattern =`` (a regular
  expression searched in the key) or ``match-all = true``, and
  ``retentions =``;
- ``storage-aggregation.conf``: sections with ``pattern =``,
  ``xFilesFactor =`` and ``aggregationMethod =``.

The first matching section wins, in file order, as in carbon. A key that
no schema section matches falls back to the default retention (``serve
--retention``); with none, it keeps every point at full precision (carbon
would give it 60 s for 7 days instead; we keep today's behaviour). A key
that no aggregation section matches is averaged with an xFilesFactor of
0.5, whisper's defaults.

Every mistake is a :exc:`RetentionError` whose message names the file, the
line and what is wrong, raised while the server starts.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import attrs

__all__ = [
    "AGGREGATION_METHODS",
    "Aggregation",
    "AggregationRule",
    "Archive",
    "Retention",
    "RetentionError",
    "RetentionPolicy",
    "RetentionRules",
    "SchemaRule",
    "load_storage_aggregation",
    "load_storage_schemas",
    "parse_retention",
]

#: whisper's aggregation methods, by the names its files use.
AGGREGATION_METHODS: Final = (
    "average",
    "sum",
    "last",
    "max",
    "min",
    "avg_zero",
    "absmax",
    "absmin",
)

_UNIT_SECONDS: Final = {
    "seconds": 1,
    "minutes": 60,
    "hours": 3600,
    "days": 86400,
    "weeks": 7 * 86400,
    "years": 365 * 86400,
}
_AMOUNT: Final = re.compile(r"(\d+)([a-z]*)")
# Longer than any real retention, and small enough that step * points stays exact.
_MAX_SECONDS: Final = 1000 * 365 * 86400


class RetentionError(ValueError):
    """A retention, schema or aggregation rule that cannot be used, and why."""


@attrs.frozen
class Archive:
    """One tier: a value per ``step`` seconds, for ``points`` steps."""

    step: int
    points: int

    @property
    def span(self) -> int:
        """How many seconds back the archive reaches."""
        return self.step * self.points

    def __str__(self) -> str:
        return f"{self.step}s:{self.span}s"


@attrs.frozen
class Retention:
    """Archives finest first, checked by whisper's rules (see :func:`parse_retention`)."""

    archives: tuple[Archive, ...]

    @property
    def longest(self) -> int:
        """Seconds covered by the coarsest archive: older points are dropped."""
        return self.archives[-1].span

    def __str__(self) -> str:
        return ",".join(map(str, self.archives))


@attrs.frozen
class Aggregation:
    """How a coarser tier's step is computed from the finer tier's points."""

    method: str = "average"
    x_files_factor: float = 0.5


@attrs.frozen
class RetentionPolicy:
    """What one key gets: its archives and how they are aggregated."""

    retention: Retention
    aggregation: Aggregation


@attrs.frozen
class SchemaRule:
    """A ``storage-schemas.conf`` section; ``pattern`` None matches every key."""

    name: str
    pattern: re.Pattern[str] | None
    retention: Retention

    def matches(self, key: str) -> bool:
        """Whether the rule applies to ``key`` (carbon: a regex *search*)."""
        return self.pattern is None or self.pattern.search(key) is not None


@attrs.frozen
class AggregationRule:
    """A ``storage-aggregation.conf`` section."""

    name: str
    pattern: re.Pattern[str] | None
    aggregation: Aggregation

    def matches(self, key: str) -> bool:
        """Whether the rule applies to ``key`` (carbon: a regex *search*)."""
        return self.pattern is None or self.pattern.search(key) is not None


@attrs.frozen
class RetentionRules:
    """Every rule the server was given; :meth:`policy_for` picks a key's."""

    schemas: tuple[SchemaRule, ...] = ()
    aggregations: tuple[AggregationRule, ...] = ()
    default: Retention | None = None

    @property
    def keeps_everything(self) -> bool:
        """True when no rule was given: every point is kept at full precision."""
        return not self.schemas and self.default is None

    def policy_for(self, key: str) -> RetentionPolicy | None:
        """``key``'s policy, or None when it keeps every point for ever."""
        retention = next(
            (rule.retention for rule in self.schemas if rule.matches(key)), self.default
        )
        if retention is None:
            return None
        aggregation = next(
            (rule.aggregation for rule in self.aggregations if rule.matches(key)),
            Aggregation(),
        )
        return RetentionPolicy(retention, aggregation)


def parse_retention(text: str) -> Retention:
    """``10s:1d,1m:30d`` as a :class:`Retention`; raises :exc:`RetentionError`.

    whisper's rules hold: no two archives with one step, each step divides
    the coarser ones, each coarser archive reaches further back, and each
    archive has at least as many points as one coarser step consolidates.
    """
    archives = sorted(
        (_parse_archive(part) for part in text.split(",")), key=lambda archive: archive.step
    )
    for finer, coarser in itertools.pairwise(archives):
        if finer.step == coarser.step:
            raise RetentionError(f"two archives have the same step ({finer.step}s): {text!r}")
        if coarser.step % finer.step:
            raise RetentionError(
                f"step {finer.step}s does not divide the coarser step {coarser.step}s: {text!r}"
            )
        if coarser.span <= finer.span:
            raise RetentionError(
                f"archive {coarser} must reach further back than the finer {finer}: {text!r}"
            )
        if finer.points < coarser.step // finer.step:
            raise RetentionError(
                f"archive {finer} holds fewer points than one step of {coarser} needs: {text!r}"
            )
    return Retention(tuple(archives))


def _parse_archive(text: str) -> Archive:
    step_text, colon, span_text = text.strip().partition(":")
    if not colon:
        raise RetentionError(f"a retention is step:span, such as 10s:1d, not {text.strip()!r}")
    step = _seconds(step_text, text)  # a bare step is seconds
    points = int(span_text) if span_text.isdigit() else _seconds(span_text, text) // step
    if points < 1:
        raise RetentionError(f"archive {text.strip()!r} holds no point")
    if step * points > _MAX_SECONDS:
        raise RetentionError(f"archive {text.strip()!r} reaches back more than 1000 years")
    return Archive(step, points)


def _seconds(amount: str, archive: str) -> int:
    match = _AMOUNT.fullmatch(amount.strip())
    if match is None:
        raise RetentionError(f"{amount.strip()!r} is not a number with a unit in {archive!r}")
    number, unit = int(match.group(1)), match.group(2) or "seconds"
    if number < 1 or len(match.group(1)) > 12:
        raise RetentionError(f"{amount.strip()!r} must be a whole number from 1 in {archive!r}")
    for name, seconds in _UNIT_SECONDS.items():
        if name.startswith(unit):
            return number * seconds
    raise RetentionError(f"unknown unit {unit!r} in {archive!r}: use s, min (or m), h, d, w or y")


def load_storage_schemas(path: Path) -> tuple[SchemaRule, ...]:
    """The sections of a carbon ``storage-schemas.conf``, in file order."""
    rules: list[SchemaRule] = []
    for section in _sections(path):
        section.refuse_unknown({"pattern", "match-all", "retentions"})
        where = section.where("retentions")
        text = section.options.get("retentions")
        if text is None:
            raise RetentionError(f"{section.where()}: section [{section.name}] has no retentions")
        try:
            retention = parse_retention(text)
        except RetentionError as exc:
            raise RetentionError(f"{where}: {exc}") from None
        rules.append(SchemaRule(section.name, section.pattern(), retention))
    return tuple(rules)


def load_storage_aggregation(path: Path) -> tuple[AggregationRule, ...]:
    """The sections of a carbon ``storage-aggregation.conf``, in file order."""
    rules: list[AggregationRule] = []
    for section in _sections(path):
        section.refuse_unknown({"pattern", "match-all", "xfilesfactor", "aggregationmethod"})
        method = section.options.get("aggregationmethod", "average")
        if method not in AGGREGATION_METHODS:
            raise RetentionError(
                f"{section.where('aggregationmethod')}: unknown aggregationMethod {method!r}:"
                f" use one of {', '.join(AGGREGATION_METHODS)}"
            )
        factor_text = section.options.get("xfilesfactor", "0.5")
        try:
            factor = float(factor_text)
        except ValueError:
            factor = math.nan
        if not 0.0 <= factor <= 1.0:
            raise RetentionError(
                f"{section.where('xfilesfactor')}: xFilesFactor must be a number"
                f" from 0 to 1, not {factor_text!r}"
            )
        rules.append(AggregationRule(section.name, section.pattern(), Aggregation(method, factor)))
    return tuple(rules)


@attrs.define
class _Section:
    """One ``[name]`` of an ini-style file, with the line of every option."""

    path: Path
    name: str
    line: int
    options: dict[str, str] = attrs.Factory(dict)
    lines: dict[str, int] = attrs.Factory(dict)

    def where(self, option: str | None = None) -> str:
        return f"{self.path}:{self.lines.get(option, self.line) if option else self.line}"

    def refuse_unknown(self, known: set[str]) -> None:
        for option in self.options:
            if option not in known:
                raise RetentionError(
                    f"{self.where(option)}: unknown setting {option!r} in [{self.name}]"
                )

    def pattern(self) -> re.Pattern[str] | None:
        match_all = self.options.get("match-all")
        pattern = self.options.get("pattern")
        if (match_all is None) == (pattern is None):
            raise RetentionError(
                f"{self.where()}: section [{self.name}] needs exactly one of pattern or match-all"
            )
        if match_all is not None:
            if match_all.lower() != "true":
                raise RetentionError(f"{self.where('match-all')}: match-all can only be true")
            return None
        assert pattern is not None
        try:
            return re.compile(pattern)
        except re.error as exc:
            raise RetentionError(
                f"{self.where('pattern')}: bad pattern {pattern!r}: {exc}"
            ) from None


def _sections(path: Path) -> Iterator[_Section]:
    """The sections of ``path`` (carbon's ini dialect: ``#``/``;`` comments,
    ``=`` or ``:`` between a case-insensitive name and its value)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RetentionError(f"{path}: cannot read: {exc}") from None
    section: _Section | None = None
    names: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            if not line.endswith("]") or len(line) < 3:
                raise RetentionError(f"{path}:{number}: a section header is [name], not {line!r}")
            if section is not None:
                yield section
            name = line[1:-1].strip()
            if name in names:
                raise RetentionError(f"{path}:{number}: section [{name}] appears twice")
            names.add(name)
            section = _Section(path, name, number)
            continue
        separator = min((i for i in (line.find("="), line.find(":")) if i > 0), default=-1)
        if separator < 0:
            raise RetentionError(f"{path}:{number}: expected name = value, not {line!r}")
        if section is None:
            raise RetentionError(f"{path}:{number}: a setting before any [section]")
        option = line[:separator].strip().lower()
        if option in section.options:
            raise RetentionError(f"{path}:{number}: {option!r} given twice in [{section.name}]")
        section.options[option] = line[separator + 1 :].strip()
        section.lines[option] = number
    if section is not None:
        yield section
