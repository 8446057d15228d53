"""The server's counters, which operators read with the ``stats`` command."""

from __future__ import annotations

import attrs

__all__ = ["ServerStats"]


@attrs.define
class ServerStats:
    """Counters of one running server; plain integers, updated in place."""

    connections_open: int = 0
    connections_total: int = 0
    #: Closed at once because ``max_connections`` were already open.
    connections_refused: int = 0
    #: Closed by the idle timeout.
    connections_idle_closed: int = 0
    #: Closed after an unexpected error while serving them (a bug, or a
    #: failing store: see the log).
    connection_failures: int = 0
    #: Open when the server stopped, and closed by it.
    connections_closed_at_stop: int = 0
    puts: int = 0
    gets: int = 0
    stats_requests: int = 0
    #: The extension words ``ping``, ``keys``, ``range`` and ``delete``.
    pings: int = 0
    keys_requests: int = 0
    ranges: int = 0
    deletes: int = 0
    #: Wrong commands, over-long lines included, and refused puts.
    errors: int = 0
    #: Puts the store could not take (its disk failed, Redis did not
    #: acknowledge them in time): each got the error answer, not ``ok``.
    puts_refused: int = 0
    lines_too_long: int = 0
    #: ``get`` answers that waited for room in the copy budget.
    answer_copy_waits: int = 0
    # Graphite plaintext listener (trio_metrics.ingest); zero when it is off.
    graphite_connections_open: int = 0
    graphite_connections_total: int = 0
    graphite_connections_refused: int = 0
    graphite_connections_idle_closed: int = 0
    graphite_connection_failures: int = 0
    #: Points stored from Graphite lines.
    graphite_points: int = 0
    #: Lines refused (over-long and cut-off ones included); each is logged, rate-limited.
    graphite_bad_lines: int = 0
    graphite_lines_too_long: int = 0
    #: Well-formed lines with a ``nan`` value, dropped without a warning.
    graphite_nan_values: int = 0
    # TLS, every listener together; zero when TLS is off.
    #: Handshakes completed.
    tls_handshakes: int = 0
    #: Handshakes that failed (a certificate refused either way, a bad protocol version ...).
    tls_handshake_failures: int = 0
    #: Connections closed for not finishing their handshake in time.
    tls_handshake_timeouts: int = 0
    #: Connections closed because they spoke plaintext to a TLS port.
    tls_plaintext_refused: int = 0
    # Token authentication of the main port; zero when it is off.
    #: ``auth`` commands that succeeded.
    auth_successes: int = 0
    #: ``auth`` commands with a token the server does not know (each is also an error).
    auth_failures: int = 0
    #: Commands refused because their connection had not authenticated (each is also an error).
    auth_refused_commands: int = 0
    #: Connections open now that have not authenticated yet.
    connections_unauthenticated: int = 0
    #: Closed at once because the budget of unauthenticated connections was spent.
    connections_refused_unauthenticated: int = 0
    #: Closed for not authenticating within the auth timeout.
    auth_timeouts: int = 0

    @property
    def commands(self) -> int:
        """Every command answered, wrong ones included."""
        return (
            self.puts
            + self.gets
            + self.stats_requests
            + self.pings
            + self.keys_requests
            + self.ranges
            + self.deletes
            + self.auth_successes
            + self.errors
        )

    def as_dict(self) -> dict[str, int]:
        """Every counter by name, ``commands`` included."""
        counters = attrs.asdict(self)
        counters["commands"] = self.commands
        return counters
