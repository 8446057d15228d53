"""The server's counters in Prometheus' text exposition format (version 0.0.4), sans-IO.

:func:`render_metrics` turns the ``stats`` counters, the store's key and
point counts and any extra :class:`Figure` values (the HTTP server's own,
and those of other subsystems) into the text that ``GET /metrics`` serves.
Every name gets the ``trio_metrics_`` prefix, and a counter the ``_total``
suffix.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Final, Literal

import attrs

__all__ = [
    "CONTENT_TYPE",
    "PREFIX",
    "Figure",
    "durability_figures",
    "render",
    "render_metrics",
    "server_figures",
]

#: The ``Content-Type`` of the text format this module writes.
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
#: The prefix of every metric name.
PREFIX: Final = "trio_metrics_"

Kind = Literal["counter", "gauge", "untyped"]
#: Label names and values of one sample, in the order they are written.
Labels = tuple[tuple[str, str], ...]

_NAME: Final = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


Samples = tuple[tuple[Labels, float], ...]


def _check_labels(instance: object, attribute: attrs.Attribute[Samples], samples: Samples) -> None:
    for labels, _value in samples:
        for name, _ in labels:
            if not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
                raise ValueError(f"invalid label name {name!r}")


@attrs.frozen
class Figure:
    """One metric family: its kind, its help text and its samples.

    A plain figure has one sample without labels (:meth:`single`); a
    labelled one has a sample per label value (:meth:`by_label`).
    """

    kind: Kind
    help: str
    samples: Samples = attrs.field(validator=_check_labels)

    @classmethod
    def single(cls, kind: Kind, help: str, value: float) -> Figure:
        """A figure with one unlabelled sample."""
        return cls(kind, help, (((), value),))

    @classmethod
    def by_label(cls, kind: Kind, help: str, label: str, values: Mapping[str, float]) -> Figure:
        """A figure with one sample per ``label`` value, in the mapping's order."""
        return cls(kind, help, tuple((((label, name),), value) for name, value in values.items()))


# What each ``stats`` counter is in Prometheus' terms. The command counters
# become one family with a ``kind`` label; ``commands`` is their sum, which
# Prometheus computes itself, so it is left out.
_GAUGES: Final = {
    "connections_open": ("connections_open", "Connections open now."),
    "graphite_connections_open": (
        "graphite_connections_open",
        "Graphite plaintext connections open now.",
    ),
    "connections_unauthenticated": (
        "connections_unauthenticated",
        "Connections open now that have not authenticated yet.",
    ),
}
_COUNTERS: Final = {
    "connections_total": ("connections", "Connections accepted since start."),
    "connections_refused": (
        "connections_refused",
        "Connections closed at once because max_connections were open.",
    ),
    "connections_idle_closed": (
        "connections_idle_closed",
        "Connections closed by the idle timeout.",
    ),
    "connection_failures": (
        "connection_failures",
        "Connections closed after an unexpected error while serving them.",
    ),
    "connections_closed_at_stop": (
        "connections_closed_at_stop",
        "Connections open when the server stopped, and closed by it.",
    ),
    "errors": ("errors", "Wrong commands, over-long lines included, and refused puts."),
    "puts_refused": (
        "puts_refused",
        "Puts the store could not take, answered with the error answer.",
    ),
    "lines_too_long": ("lines_too_long", "Command lines longer than max_line_length."),
    "answer_copy_waits": (
        "answer_copy_waits",
        "Gets that waited for room in the answer copy budget.",
    ),
    "graphite_connections_total": (
        "graphite_connections",
        "Graphite plaintext connections accepted since start.",
    ),
    "graphite_connections_refused": (
        "graphite_connections_refused",
        "Graphite connections closed at once because max_connections were open.",
    ),
    "graphite_connections_idle_closed": (
        "graphite_connections_idle_closed",
        "Graphite connections closed by the idle timeout.",
    ),
    "graphite_connection_failures": (
        "graphite_connection_failures",
        "Graphite connections closed after an unexpected error.",
    ),
    "graphite_points": ("graphite_points", "Points stored from Graphite plaintext lines."),
    "graphite_bad_lines": ("graphite_bad_lines", "Graphite lines dropped as malformed."),
    "graphite_lines_too_long": (
        "graphite_lines_too_long",
        "Graphite lines longer than max_line_length.",
    ),
    "graphite_nan_values": ("graphite_nan_values", "Graphite lines dropped for a nan value."),
    "tls_handshakes": ("tls_handshakes", "TLS handshakes completed, every listener."),
    "tls_handshake_failures": ("tls_handshake_failures", "TLS handshakes that failed."),
    "tls_handshake_timeouts": (
        "tls_handshake_timeouts",
        "Connections closed for not finishing their TLS handshake in time.",
    ),
    "tls_plaintext_refused": (
        "tls_plaintext_refused",
        "Connections closed for speaking plaintext to a TLS port.",
    ),
    "auth_failures": ("auth_failures", "auth commands with a wrong token."),
    "auth_refused_commands": (
        "auth_refused_commands",
        "Commands refused because their connection had not authenticated.",
    ),
    "connections_refused_unauthenticated": (
        "connections_refused_unauthenticated",
        "Connections closed at once because max_unauthenticated were open.",
    ),
    "auth_timeouts": (
        "auth_timeouts",
        "Connections closed for not authenticating within the auth timeout.",
    ),
}
_COMMAND_KINDS: Final = {
    "puts": "put",
    "gets": "get",
    "stats_requests": "stats",
    "pings": "ping",
    "keys_requests": "keys",
    "ranges": "range",
    "deletes": "delete",
    "auth_successes": "auth",
    "errors": "error",
}
_NOT_RENDERED: Final = {"commands"}


def server_figures(stats: Mapping[str, int], keys: int, points: int) -> dict[str, Figure]:
    """The figures of the ``stats`` counters (``ServerStats.as_dict()``) and the store.

    A counter this module does not know yet is rendered as ``untyped``
    under its own name, so a new counter shows up before it is described.
    """
    figures: dict[str, Figure] = {}
    for stat, (name, help) in _GAUGES.items():
        if stat in stats:
            figures[name] = Figure.single("gauge", help, stats[stat])
    for stat, (name, help) in _COUNTERS.items():
        if stat in stats:
            figures[name] = Figure.single("counter", help, stats[stat])
    figures["commands"] = Figure.by_label(
        "counter",
        "Commands answered, by kind; kind=error counts wrong commands.",
        "kind",
        {kind: stats[stat] for stat, kind in _COMMAND_KINDS.items() if stat in stats},
    )
    figures["keys"] = Figure.single("gauge", "Keys in the store.", keys)
    figures["points"] = Figure.single("gauge", "Points in the store.", points)
    known = _GAUGES.keys() | _COUNTERS.keys() | _COMMAND_KINDS.keys() | _NOT_RENDERED
    for stat, value in stats.items():
        if stat not in known:
            figures.setdefault(stat, Figure.single("untyped", f"The {stat} counter.", value))
    return figures


# The write-ahead log's figures (``DurableStore.figures_as_dict()``).
_DURABILITY_COUNTERS: Final = {
    "log_records": ("log_records", "Batches of puts appended to the write-ahead log."),
    "log_writes": ("log_writes", "Writes to the log (each a group of batches)."),
    "log_bytes_written": ("log_written_bytes", "Bytes written to the log since start."),
    "fsyncs": ("log_fsyncs", "Fsyncs of the log since start."),
    "compactions": ("compactions", "Compactions of the log into a snapshot."),
    "compaction_failures": ("compaction_failures", "Compactions that failed."),
    "points_expired": (
        "points_expired",
        "Puts older than their key's longest retention: acknowledged and dropped.",
    ),
    "steps_expired": ("steps_expired", "Tier steps dropped by roll-up as they grew too old."),
    "points_rolled_up": (
        "points_rolled_up",
        "Finest-tier points aggregated into coarser tiers by roll-up.",
    ),
    "roll_up_rounds": ("roll_up_rounds", "Rounds of roll-up over every key."),
}
_DURABILITY_GAUGES: Final = {
    "log_bytes": ("log_bytes", "Bytes of the log segments since the snapshot."),
    "snapshot_bytes": ("snapshot_bytes", "Bytes of the newest snapshot."),
    "recovered_points": ("recovered_points", "Points recovered at start-up."),
    "compressed_points": ("compressed_points", "Points held in compressed blocks."),
    "compressed_bytes": ("compressed_bytes", "Bytes of the compressed blocks."),
}
# The Redis store's figures (``RedisFigures.as_dict()``), under their own names.
_REDIS_FIGURES: Final[dict[str, tuple[Kind, str]]] = {
    "redis_round_trips": ("counter", "Round trips to Redis (a pipeline counts one)."),
    "redis_pipelines": ("counter", "Pipelines sent to Redis."),
    "redis_pipeline_commands": ("counter", "Commands sent in pipelines."),
    "redis_pipeline_commands_max": ("gauge", "Most commands in one pipeline."),
    "redis_errors": ("counter", "Redis operations that failed or timed out (each try)."),
    "redis_timeouts": ("counter", "Redis operations cut off by --redis-timeout."),
    "redis_retries": ("counter", "Tries repeated after a Redis error."),
    "redis_failures": ("counter", "Redis operations given up (their puts were not acknowledged)."),
    "redis_wait_shortfalls": (
        "counter",
        "Batches that fewer replicas than --redis-wait-replicas acknowledged in time.",
    ),
    "redis_registry_reads": ("counter", "Reads of the whole key registry."),
    "redis_redirects": (
        "counter",
        "A batch's writes a master redirected (MOVED, ASK), sent again where it said.",
    ),
}
_DURABILITY_MILLISECONDS: Final[dict[str, tuple[str, Kind, str]]] = {
    "fsync_ms": ("log_fsync_seconds", "counter", "Time spent in fsyncs of the log."),
    "last_compaction_ms": (
        "last_compaction_seconds",
        "gauge",
        "How long the last compaction took.",
    ),
    "recovery_ms": ("recovery_seconds", "gauge", "How long recovery took at start-up."),
}


def durability_figures(figures: Mapping[str, int]) -> dict[str, Figure]:
    """The figures of the store (a data directory's log, the retention tiers),
    for :func:`render_metrics`' ``extra``."""
    result: dict[str, Figure] = {}
    tiers = {
        stat[len("tier") : -len("_points")]: count
        for stat, count in figures.items()
        if stat.startswith("tier") and stat.endswith("_points")
    }
    if tiers:
        result["tier_points"] = Figure.by_label(
            "gauge", "Points held per retention tier (0: the finest).", "tier", tiers
        )
    if "roll_up_longest_step_us" in figures:
        result["roll_up_longest_step_seconds"] = Figure.single(
            "gauge",
            "The longest single step of roll-up (a pause of the event loop).",
            figures["roll_up_longest_step_us"] / 1e6,
        )
    for stat, (name, help) in _DURABILITY_COUNTERS.items():
        if stat in figures:
            result[name] = Figure.single("counter", help, figures[stat])
    for stat, (name, help) in _DURABILITY_GAUGES.items():
        if stat in figures:
            result[name] = Figure.single("gauge", help, figures[stat])
    for stat, (name, kind, help) in _DURABILITY_MILLISECONDS.items():
        if stat in figures:
            result[name] = Figure.single(kind, help, figures[stat] / 1000)
    for stat, (kind, help) in _REDIS_FIGURES.items():
        if stat in figures:
            result[stat] = Figure.single(kind, help, figures[stat])
    return result


def render_metrics(
    stats: Mapping[str, int],
    keys: int,
    points: int,
    extra: Mapping[str, Figure] | None = None,
) -> str:
    """The whole ``/metrics`` text: :func:`server_figures`, then ``extra``.

    ``extra`` maps names (without prefix or ``_total``) to figures, so a
    subsystem adds its own without changes here. Raises :exc:`ValueError`
    if an extra name is not a valid metric name or is already taken.
    """
    figures = server_figures(stats, keys, points)
    for name, figure in (extra or {}).items():
        if name in figures:
            raise ValueError(f"metric {name!r} is defined twice")
        figures[name] = figure
    return render(figures)


def render(figures: Mapping[str, Figure]) -> str:
    """Write ``figures`` in the text format: HELP and TYPE lines, then the samples.

    Raises :exc:`ValueError` for a name that is not a valid metric name.
    """
    return "".join(_family_lines(name, figure) for name, figure in figures.items())


def _family_lines(name: str, figure: Figure) -> str:
    full = PREFIX + name + ("_total" if figure.kind == "counter" else "")
    if not _NAME.fullmatch(full):
        raise ValueError(f"invalid metric name {full!r}")
    help = figure.help.replace("\\", "\\\\").replace("\n", "\\n")
    lines = [f"# HELP {full} {help}\n", f"# TYPE {full} {figure.kind}\n"]
    lines.extend(f"{full}{_labels(labels)} {_number(value)}\n" for labels, value in figure.samples)
    return "".join(lines)


def _labels(labels: Iterable[tuple[str, str]]) -> str:
    pairs = [f'{name}="{_escape_label(value)}"' for name, value in labels]
    return "{" + ",".join(pairs) + "}" if pairs else ""


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))
