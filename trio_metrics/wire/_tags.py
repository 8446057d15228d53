"""Labelled series as keys and back: Graphite's tag syntax, with a reversible escaping.

A series of labels ``{__name__="node_load1", instance="a:9100", job="node"}``
is the key ``node_load1;instance=a:9100;job=node``: the metric name, then
``;name=value`` for every other label, sorted by name. Labels with an empty
value are left out (Prometheus reads an empty label as no label).

A key holds printable characters but no space, and ``;``/``=`` are the
syntax, so a character that cannot stand for itself is written ``%XX`` for
each byte of its UTF-8 form (upper-case hex):

- everywhere: ``%`` itself, ``;``, ``*``, the space and every character
  that is not printable (whitespace, controls: ``str.isprintable``);
- in a tag name, also ``=``, ``!`` and ``^`` (Graphite's tag names cannot
  hold them);
- in a tag value, a ``~`` as its first character (Graphite reads it as a
  regular expression).

Every other character (``.``, ``:``, ``/``, letters of any script) stands
for itself, so the keys of usual Prometheus series read as they are written.

:func:`labels_from_key` reads a key back. A key is *tagged* only if it is
exactly what :func:`key_from_labels` makes of the labels it reads as, so the
two are inverse on tagged keys; any other key (``palm.cpu``, ``a;b``) is a
plain Graphite path, which :func:`prometheus_labels` shows as
``{__name__="palm_cpu", graphite_path="palm.cpu"}``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final
from urllib.parse import unquote

__all__ = [
    "GRAPHITE_PATH_LABEL",
    "METRIC_NAME_LABEL",
    "key_from_labels",
    "labels_from_key",
    "prometheus_labels",
    "prometheus_name",
]

#: The label that holds a series' metric name.
METRIC_NAME_LABEL: Final = "__name__"
#: The label that holds the exact key of a series without tags.
GRAPHITE_PATH_LABEL: Final = "graphite_path"

_ALWAYS: Final = frozenset("%;* ")
_NAME_EXTRA: Final = frozenset("=!^")
_NOT_PROMETHEUS_NAME: Final = re.compile(r"[^a-zA-Z0-9_:]")


def _needs_escape(char: str, reserved: frozenset[str]) -> bool:
    return char in _ALWAYS or char in reserved or not char.isprintable()


def _escape(text: str, reserved: frozenset[str] = frozenset()) -> str:
    if text.isprintable() and not any(char in _ALWAYS or char in reserved for char in text):
        return text  # the usual case: nothing to do
    return "".join(
        "".join(f"%{byte:02X}" for byte in char.encode()) if _needs_escape(char, reserved) else char
        for char in text
    )


def _escape_value(value: str) -> str:
    escaped = _escape(value)
    return "%7E" + escaped[1:] if escaped.startswith("~") else escaped


def key_from_labels(labels: Iterable[tuple[str, str]]) -> str:
    """The key of a series with ``labels`` (``(name, value)`` pairs, any order).

    Raises :exc:`ValueError` for an empty label name, a name given twice,
    labels that leave nothing to write (no name and no non-empty label), or
    text that is not Unicode (a lone surrogate).
    """
    try:
        return _key_from_labels(labels)
    except UnicodeEncodeError:
        raise ValueError("a label is not Unicode text (it holds a lone surrogate)") from None


def _key_from_labels(labels: Iterable[tuple[str, str]]) -> str:
    metric = ""
    tags: dict[str, str] = {}
    for name, value in labels:
        if not name:
            raise ValueError("a label name is empty")
        if name == METRIC_NAME_LABEL:
            if metric:
                raise ValueError(f"label {name!r} given twice")
            metric = value
        elif name in tags:
            raise ValueError(f"label {name!r} given twice")
        else:
            tags[name] = value
    parts = [_escape(metric)]
    parts.extend(
        f"{_escape(name, _NAME_EXTRA)}={_escape_value(value)}"
        for name, value in sorted(tags.items())
        if value
    )
    key = ";".join(parts)
    if not key:
        raise ValueError("a series needs a metric name or a label with a value")
    return key


def _unescape(text: str) -> str | None:
    # Lenient here (a lower-case or stray ``%`` passes); the caller's
    # round-trip check refuses every key that is not written exactly so.
    if "%" not in text:
        return text
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        return None


def labels_from_key(key: str) -> tuple[tuple[str, str], ...] | None:
    """The labels a tagged key stands for, sorted by name; None for a plain key.

    The inverse of :func:`key_from_labels`: a key is tagged only when
    writing its labels back gives exactly ``key``.
    """
    if ";" not in key:
        return None
    metric, *tags = key.split(";")
    labels: list[tuple[str, str]] = []
    name_text = _unescape(metric)
    if name_text is None:
        return None
    if name_text:
        labels.append((METRIC_NAME_LABEL, name_text))
    for tag in tags:
        name, equals, value = tag.partition("=")
        if not equals:
            return None
        name_text, value_text = _unescape(name), _unescape(value)
        if not name_text or not value_text:
            return None
        labels.append((name_text, value_text))
    try:
        canonical = key_from_labels(labels)
    except ValueError:
        return None
    if canonical != key:
        return None
    return tuple(sorted(labels))


def prometheus_name(key: str) -> str:
    """``key`` as a Prometheus metric name: ``_`` for each character outside ``[a-zA-Z0-9_:]``."""
    return _NOT_PROMETHEUS_NAME.sub("_", key)


def prometheus_labels(key: str) -> tuple[tuple[str, str], ...]:
    """The labels Prometheus sees for ``key``, sorted by name.

    A tagged key gives its own labels; a plain key gives
    ``__name__`` = :func:`prometheus_name` of it and ``graphite_path`` = the key.
    """
    labels = labels_from_key(key)
    if labels is not None:
        return labels
    return tuple(sorted(((METRIC_NAME_LABEL, prometheus_name(key)), (GRAPHITE_PATH_LABEL, key))))
