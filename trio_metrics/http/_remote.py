"""Prometheus remote storage: ``POST /api/v1/write`` in and ``POST /api/v1/read`` out.

:class:`RemoteStorage` answers both routes over the server's store. The
message formats are :mod:`._remote_codec`'s; the labels <-> key mapping is
:mod:`trio_metrics.wire`'s (``key_from_labels``, ``prometheus_labels``).

Remote write answers 204 once every point of the request is stored as
durably as the store promises (one ``Store.put_batch`` per request, so one
log write); a body that cannot be read gets a 4xx, which Prometheus drops,
and a failing store a 5xx, which Prometheus retries.

Remote read answers the ``SAMPLES`` response type: per query, the series
whose labels pass every matcher, with their points in the time range.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Final

import attrs
import trio

from ..storage import KeyPages, Store
from ..wire import (
    METRIC_NAME_LABEL,
    key_from_labels,
    labels_from_key,
    prometheus_labels,
)
from ._limits import HttpLimits
from ._messages import Request, Response
from ._prometheus import Figure
from ._remote_codec import (
    Query,
    RemoteFormatError,
    SeriesKeys,
    WriteBatch,
    compress,
    decode_read_request,
    decode_write_request,
    decompress,
    encode_read_response,
    encode_samples,
)

__all__ = [
    "DECODED_BYTES_PER_BODY_BYTE",
    "MAX_WRITE_SERIES",
    "PROTOBUF",
    "RemoteStats",
    "RemoteStorage",
]

#: The content type of both directions' bodies.
PROTOBUF: Final = "application/x-protobuf"
#: The most series one remote write request may hold (Prometheus sends up
#: to ``max_samples_per_send``, 500 by default in 2.42, one series each).
MAX_WRITE_SERIES: Final = 50_000
#: A body may decompress to at most this many times ``--http-max-body-bytes``.
DECODED_BYTES_PER_BODY_BYTE: Final = 16
# Larger requests are decoded in a worker thread, so the event loop is not
# held for tens of milliseconds.
_THREAD_DECODE_BYTES: Final = 1 << 20
# Series per step of a read; other tasks run between steps.
_READ_STEP: Final = 256
_PROMETHEUS_NAME: Final = re.compile(r"[a-zA-Z0-9_:]+")
_LABELS_CACHE: Final = 100_000


@attrs.define
class RemoteStats:
    """Remote write and remote read counters, shown by ``/metrics``."""

    write_requests: int = 0
    write_bytes: int = 0
    write_series: int = 0
    write_samples: int = 0
    write_stale: int = 0
    write_unstorable: int = 0
    write_metadata: int = 0
    write_rejected: int = 0
    write_seconds: float = 0.0
    read_requests: int = 0
    read_bytes: int = 0
    read_queries: int = 0
    read_series: int = 0
    read_samples: int = 0
    read_rejected: int = 0
    read_seconds: float = 0.0

    def figures(self) -> dict[str, Figure]:
        """The counters as ``/metrics`` figures."""
        return {
            "remote_write_requests": Figure.single(
                "counter", "Remote write requests answered 204.", self.write_requests
            ),
            "remote_write_bytes": Figure.single(
                "counter",
                "Bytes of remote write bodies received (compressed), rejected ones included.",
                self.write_bytes,
            ),
            "remote_write_series": Figure.single(
                "counter", "Series in stored remote write requests.", self.write_series
            ),
            "remote_write_samples": Figure.by_label(
                "counter",
                "Samples of stored remote write requests, by what became of them.",
                "outcome",
                {
                    "stored": self.write_samples,
                    "stale_marker": self.write_stale,
                    "unstorable": self.write_unstorable,
                },
            ),
            "remote_write_metadata": Figure.single(
                "counter", "Metadata entries received (and ignored).", self.write_metadata
            ),
            "remote_write_rejected": Figure.single(
                "counter",
                "Remote write requests refused with a 4xx (a body that cannot be read).",
                self.write_rejected,
            ),
            "remote_write_seconds": Figure.single(
                "counter",
                "Seconds spent on remote write requests, from the body read to the answer.",
                self.write_seconds,
            ),
            "remote_read_requests": Figure.single(
                "counter", "Remote read requests answered 200.", self.read_requests
            ),
            "remote_read_bytes": Figure.single(
                "counter", "Bytes of remote read answers sent (compressed).", self.read_bytes
            ),
            "remote_read_queries": Figure.single(
                "counter", "Queries in answered remote read requests.", self.read_queries
            ),
            "remote_read_series": Figure.single(
                "counter", "Series sent in remote read answers.", self.read_series
            ),
            "remote_read_samples": Figure.single(
                "counter", "Samples sent in remote read answers.", self.read_samples
            ),
            "remote_read_rejected": Figure.single(
                "counter",
                "Remote read requests refused with a 4xx (bad body, or over the sample limit).",
                self.read_rejected,
            ),
            "remote_read_seconds": Figure.single(
                "counter",
                "Seconds spent on remote read requests, from the body read to the answer.",
                self.read_seconds,
            ),
        }


class RemoteStorage:
    """Prometheus' remote write and remote read over ``store``.

    ``limits.max_body_bytes`` bounds the compressed bodies (the HTTP layer
    refuses larger ones) and, times :data:`DECODED_BYTES_PER_BODY_BYTE`, the
    decompressed ones; ``limits.max_points`` bounds the samples of one read
    answer, as Prometheus' own ``remote_read_sample_limit`` does.
    """

    def __init__(self, store: Store, limits: HttpLimits) -> None:
        self.store = store
        self.limits = limits
        self.stats = RemoteStats()
        self.series_keys = SeriesKeys()
        self._labels: dict[str, tuple[tuple[str, str], ...]] = {}

    @property
    def max_decoded_bytes(self) -> int:
        """The largest decompressed body taken."""
        return self.limits.max_body_bytes * DECODED_BYTES_PER_BODY_BYTE

    async def write(self, request: Request) -> Response:
        """``POST /api/v1/write``: 204 once stored; 4xx for a body that cannot be read."""
        began = time.perf_counter()
        self.stats.write_bytes += len(request.body)
        try:
            batch = await self._decode_write(request)
        except RemoteFormatError as exc:
            self.stats.write_rejected += 1
            self.stats.write_seconds += time.perf_counter() - began
            return _refusal(exc)
        try:
            if batch.keys:
                await self.store.put_batch(batch.keys, batch.values, batch.timestamps)
        finally:
            self.stats.write_seconds += time.perf_counter() - began
        self.stats.write_requests += 1
        self.stats.write_series += batch.series
        self.stats.write_samples += len(batch.keys)
        self.stats.write_stale += batch.stale
        self.stats.write_unstorable += batch.unstorable
        self.stats.write_metadata += batch.metadata
        return Response(204, b"", PROTOBUF)

    async def _decode_write(self, request: Request) -> WriteBatch:
        _check_encoding(request)
        data = decompress(request.body, self.max_decoded_bytes)
        if len(data) > _THREAD_DECODE_BYTES:
            return await trio.to_thread.run_sync(
                decode_write_request, data, self.series_keys, MAX_WRITE_SERIES
            )
        return decode_write_request(data, self.series_keys, MAX_WRITE_SERIES)

    async def read(self, request: Request) -> Response:
        """``POST /api/v1/read``: a snappy ``ReadResponse``; 4xx for a bad body or too much."""
        began = time.perf_counter()
        try:
            _check_encoding(request)
            queries = decode_read_request(decompress(request.body, self.max_decoded_bytes))
            results = []
            budget = self.limits.max_points
            for query in queries:
                found = await self._answer(query, budget)
                budget -= sum(len(timestamps) for _, timestamps, _ in found)
                results.append(found)
        except RemoteFormatError as exc:
            self.stats.read_rejected += 1
            self.stats.read_seconds += time.perf_counter() - began
            return _refusal(exc)
        encoded = [
            list(
                zip(
                    (labels for labels, _, _ in found),
                    encode_samples([(t, v) for _, t, v in found]),
                    strict=True,
                )
            )
            for found in results
        ]
        body = compress(encode_read_response(encoded))
        self.stats.read_requests += 1
        self.stats.read_queries += len(queries)
        self.stats.read_series += sum(len(found) for found in results)
        self.stats.read_samples += sum(len(t) for found in results for _, t, _ in found)
        self.stats.read_bytes += len(body)
        self.stats.read_seconds += time.perf_counter() - began
        return Response(200, body, PROTOBUF, headers=(("content-encoding", "snappy"),))

    async def _answer(
        self, query: Query, budget: int
    ) -> list[tuple[tuple[tuple[str, str], ...], Sequence[int], Sequence[float]]]:
        """The series of one query, sorted by labels, within ``budget`` samples."""
        start = max(0, -(-query.start_ms // 1000))  # the first whole second in range
        end = query.end_ms // 1000
        chosen: dict[tuple[tuple[str, str], ...], str] = {}
        pages = KeyPages(self.store, _candidate_prefix(query), lambda key: True)
        while (page := await pages.next()) is not None:
            for key in page:
                labels = self._labels_of(key)
                values = dict(labels)
                if not all(matcher.matches(values) for matcher in query.matchers):
                    continue
                other = chosen.get(labels)
                # Two keys with the same labels: the plain Graphite path wins.
                if other is None or labels_from_key(other) is not None:
                    chosen[labels] = key
        found = []
        taken = 0
        for index, (labels, key) in enumerate(sorted(chosen.items())):
            if index % _READ_STEP == _READ_STEP - 1:
                await trio.lowlevel.checkpoint()
            for series in await self.store.query_range(key, start, end):
                taken += len(series.timestamps)
                if taken > budget:
                    raise RemoteFormatError(
                        f"the answer would hold more than {self.limits.max_points} samples"
                        " (--http-max-points); ask for a shorter range or fewer series"
                    )
                found.append((labels, series.timestamps, series.values))
        return found

    def _labels_of(self, key: str) -> tuple[tuple[str, str], ...]:
        labels = self._labels.get(key)
        if labels is None:
            if len(self._labels) >= _LABELS_CACHE:
                self._labels.clear()
            labels = self._labels[key] = prometheus_labels(key)
        return labels

    def figures(self) -> dict[str, Figure]:
        """The ``/metrics`` figures of both directions."""
        return self.stats.figures()


def _candidate_prefix(query: Query) -> str:
    """The key prefix every key that can match ``query`` starts with ("" for any)."""
    for matcher in query.matchers:
        if matcher.kind == "=" and matcher.name == METRIC_NAME_LABEL and matcher.value:
            name = matcher.value
            if _PROMETHEUS_NAME.fullmatch(name):
                # A plain key shows as this name when each '_' of the name
                # stands for any other character, so only the part before
                # the first '_' is sure; a tagged key starts with the name.
                return name.partition("_")[0]
            return key_from_labels([(METRIC_NAME_LABEL, name)])
    return ""


def _check_encoding(request: Request) -> None:
    encoding = request.header("content-encoding")
    if encoding is None or encoding.lower() != "snappy":
        raise _EncodingError(f"Content-Encoding must be snappy, not {encoding or 'absent'}")


class _EncodingError(RemoteFormatError):
    status = 415


def _refusal(exc: RemoteFormatError) -> Response:
    return Response.error(getattr(exc, "status", 400), str(exc))
