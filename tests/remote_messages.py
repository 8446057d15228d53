"""Prometheus remote write/read bodies for tests, made with the protobuf runtime's encoder."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cramjam

from trio_metrics.http._prompb import remote_pb2, types_pb2

#: Headers Prometheus 2.42 sends with a remote write.
WRITE_HEADERS = {
    "content-encoding": "snappy",
    "content-type": "application/x-protobuf",
    "x-prometheus-remote-write-version": "0.1.0",
}
#: Headers Prometheus 2.42 sends with a remote read.
READ_HEADERS = {
    "content-encoding": "snappy",
    "content-type": "application/x-protobuf",
    "x-prometheus-remote-read-version": "0.1.0",
}

Labels = Mapping[str, str]
Samples = Sequence[tuple[float, int]]


def write_request(series: Sequence[tuple[Labels, Samples]]) -> bytes:
    """A ``WriteRequest`` of ``(labels, [(value, timestamp_ms), ...])``, one entry per series."""
    request = remote_pb2.WriteRequest()
    for labels, samples in series:
        entry = request.timeseries.add()
        for name, text in labels.items():
            entry.labels.add(name=name, value=text)
        for value, timestamp in samples:
            entry.samples.add(value=value, timestamp=timestamp)
    return request.SerializeToString()


def read_request(*queries: tuple[int, int, Sequence[tuple[str, str, str]]]) -> bytes:
    """A ``ReadRequest`` of ``(start_ms, end_ms, [(type, name, value), ...])`` queries.

    ``type`` is ``=``, ``!=``, ``=~`` or ``!~``.
    """
    kinds = {
        "=": types_pb2.LabelMatcher.EQ,
        "!=": types_pb2.LabelMatcher.NEQ,
        "=~": types_pb2.LabelMatcher.RE,
        "!~": types_pb2.LabelMatcher.NRE,
    }
    request = remote_pb2.ReadRequest()
    for start, end, matchers in queries:
        query = request.queries.add(start_timestamp_ms=start, end_timestamp_ms=end)
        for kind, name, value in matchers:
            query.matchers.add(type=kinds[kind], name=name, value=value)
    return request.SerializeToString()


def read_response(data: bytes) -> list[list[tuple[dict[str, str], list[tuple[float, int]]]]]:
    """A ``ReadResponse`` as lists (per query) of (labels, [(value, timestamp_ms)])."""
    response = remote_pb2.ReadResponse.FromString(data)
    return [
        [
            (
                {label.name: label.value for label in series.labels},
                [(sample.value, sample.timestamp) for sample in series.samples],
            )
            for series in result.timeseries
        ]
        for result in response.results
    ]


def snappy(data: bytes) -> bytes:
    """``data`` as a snappy block."""
    return bytes(cramjam.snappy.compress_raw(data))


def unsnappy(data: bytes) -> bytes:
    """A snappy block decompressed."""
    return bytes(cramjam.snappy.decompress_raw(data))
