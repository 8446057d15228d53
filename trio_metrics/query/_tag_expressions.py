"""Graphite's tags of a series name, and tag expressions (``job=node``), as graphite-web reads them.

A name with tags is ``metric;tag=value;...`` (the key syntax of
:mod:`trio_metrics.wire`, read as graphite-web's ``TaggedSeries.parse``
reads it: the text as written, ``%XX`` escapes and all). Its tags are every
``tag=value`` plus ``name``, the metric (Prometheus' ``__name__``). A name
without tags has the tags ``{"name": name}``.

A tag expression is ``tag=value``, ``tag!=value``, ``tag=~regex`` or
``tag!=~regex``. A tag a series lacks has the empty value; a regular
expression is anchored at the start of the value only (``^(regex)``, as
graphite-web does, unless it starts with ``^`` already). A query of
expressions matches a series when all of them do, and at least one of them
must not match the empty value (else it would match every series).

Pure code: :mod:`._tagged` reads the store.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Final

import attrs

__all__ = [
    "TAG_QUERY_CALL",
    "TagExpression",
    "TagExpressionError",
    "TagQuery",
    "key_tags",
    "series_tags",
]

#: The function whose call text the store reads as a tag query.
TAG_QUERY_CALL: Final = "seriesByTag"
# graphite-web reads no tags from a name that looks like a function call.
_CALL_NAME: Final = re.compile(r"^[a-z]+[(].+[)]$", re.IGNORECASE)
_EXPRESSION: Final = re.compile(r"^([^;!=]+)(!?=~?)([^;]*)$")
#: The longest regular expression a tag expression may hold.
MAX_REGEX_LENGTH: Final = 1_000


class TagExpressionError(ValueError):
    """A tag expression or query graphite-web would refuse; the message is its own."""


def key_tags(key: str) -> dict[str, str] | None:
    """The tags of a key in Graphite's tag syntax (``name`` included), or None for a
    key without tags or one graphite-web cannot read as tagged (``a;b``, ``;x=1``)."""
    if ";" not in key:
        return None
    metric, *segments = key.split(";")
    if not metric:
        return None
    tags: dict[str, str] = {}
    for segment in segments:
        tag, equals, value = segment.partition("=")
        if not equals or not tag or not value:
            return None
        # ";" and "=" cannot be in a tag once split; graphite also refuses "!" and "^".
        if "!" in tag or "^" in tag or value[0] == "~":
            return None
        tags[tag] = value
    name = metric.lstrip("~")
    if not name:
        return None
    tags["name"] = name
    return tags


def series_tags(name: str) -> dict[str, str]:
    """graphite-web's ``TimeSeries.tags`` of a series named ``name``: the key's tags,
    or ``{"name": name}`` for a name without tags or that looks like a call."""
    if _CALL_NAME.match(name):
        return {"name": name}
    tags = key_tags(name)
    return {"name": name} if tags is None else tags


def _anchored(regex: str) -> re.Pattern[str]:
    if len(regex) > MAX_REGEX_LENGTH:
        raise TagExpressionError(
            f"a tag expression's regular expression is over {MAX_REGEX_LENGTH} characters"
        )
    try:
        return re.compile(regex if regex.startswith("^") else f"^({regex})")
    except re.error as error:
        raise TagExpressionError(f"Invalid regular expression {regex!r}: {error}") from None


@attrs.frozen
class TagExpression:
    """A parsed tag expression: ``tag``, ``operator`` (``=``, ``!=``, ``=~``, ``!=~``), ``spec``."""

    tag: str
    operator: str
    spec: str
    regex: re.Pattern[str] | None = attrs.field(default=None, eq=False, repr=False)

    @classmethod
    def parse(cls, text: str) -> TagExpression:
        """The expression ``text``; :exc:`TagExpressionError` if graphite-web would refuse it."""
        found = _EXPRESSION.match(text)
        if found is None:
            raise TagExpressionError(f"Invalid tagspec {text}")
        tag, operator, spec = found.groups()
        regex = _anchored(spec) if operator.endswith("~") else None
        return cls(tag, operator, spec, regex)

    def matches_value(self, value: str) -> bool:
        """Whether a series whose tag holds ``value`` (``""``: absent) passes."""
        if self.regex is not None:
            found = self.regex.match(value) is not None
            return found if self.operator == "=~" else not found
        if self.operator == "=":
            return value == self.spec
        return value != self.spec

    def matches(self, tags: Mapping[str, str]) -> bool:
        """Whether a series with ``tags`` passes."""
        return self.matches_value(tags.get(self.tag, ""))


@attrs.frozen
class TagQuery:
    """Expressions that must all match; built by :meth:`parse`."""

    expressions: tuple[TagExpression, ...]
    # Text every matching key holds (";job=node" for job=node): most keys that do
    # not match are passed over without being parsed.
    _needles: tuple[str, ...] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        needles = tuple(
            f";{expression.tag}={expression.spec}"
            for expression in self.expressions
            if expression.operator == "=" and expression.spec and expression.tag != "name"
        )
        object.__setattr__(self, "_needles", needles)

    @classmethod
    def parse(cls, texts: Sequence[str]) -> TagQuery:
        """The query of ``texts``; :exc:`TagExpressionError` for a bad expression, or when
        every expression matches the empty value (graphite-web's rule)."""
        expressions = tuple(TagExpression.parse(text) for text in texts)
        if all(expression.matches_value("") for expression in expressions):
            raise TagExpressionError("At least one tagspec must not match the empty string")
        return cls(expressions)

    def matches(self, tags: Mapping[str, str]) -> bool:
        """Whether a series with ``tags`` passes every expression."""
        return all(expression.matches(tags) for expression in self.expressions)

    def matches_key(self, key: str) -> bool:
        """Whether the stored key ``key`` is a tagged series the query matches."""
        for needle in self._needles:
            if needle not in key:
                return False
        tags = key_tags(key)
        return tags is not None and self.matches(tags)

    def metric_name(self) -> str | None:
        """The one metric name every match has (a ``name=value`` expression), if any:
        the key index is then read only from ``value;`` on."""
        for expression in self.expressions:
            if expression.tag == "name" and expression.operator == "=" and expression.spec:
                return expression.spec
        return None
