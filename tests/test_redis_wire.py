"""The batch writes as the Redis store queues them on a connection: each recorded
pipeline command becomes exactly the command Redis documents, and anything else
is left to the client's own pipeline."""

from __future__ import annotations

import math

import pytest
from coredis import PureToken

from trio_metrics.storage._redis import _Recorder, _wire_command, _Wired


def _recorded(fill: str, *args: object, **kwargs: object) -> object:
    recorder = _Recorder()
    getattr(recorder, fill)(*args, **kwargs)
    (command,) = recorder.commands
    wired = _wire_command(command)
    if wired is None:
        return None
    assert isinstance(wired, _Wired)
    return wired.name, wired.serialized_arguments


@pytest.mark.parametrize(
    ("method", "args", "kwargs", "expected"),
    [
        (
            "hset",
            ("ts:{a.b}:7", {"896": "1.5", "897": "-2.0"}),
            {},
            (b"HSET", ("ts:{a.b}:7", "896", "1.5", "897", "-2.0")),
        ),
        ("zadd", ("idx:{a.b}", {"7": 7, "8": 8}), {}, (b"ZADD", ("idx:{a.b}", 7, "7", 8, "8"))),
        (
            "zadd",
            ("keys:{r3}", {"a.b": 41}),
            {"condition": PureToken.NX},
            (b"ZADD", ("keys:{r3}", b"NX", 41, "a.b")),
        ),
        (
            "zremrangebyscore",
            ("idx:{a.b}", -math.inf, 12),
            {},
            (b"ZREMRANGEBYSCORE", ("idx:{a.b}", b"-inf", 12)),
        ),
        (
            "expireat",
            ("ts:{a.b}:7", 1_700_000_000),
            {},
            (b"EXPIREAT", ("ts:{a.b}:7", 1_700_000_000)),
        ),
        ("incrby", ("points:{r0}", 25), {}, (b"INCRBY", ("points:{r0}", 25))),
        ("get", ("deletions:{r0}",), {}, (b"GET", ("deletions:{r0}",))),
        (
            "set",
            ("deletions:{r0}", b"tok"),
            {"condition": PureToken.NX},
            (b"SET", ("deletions:{r0}", b"tok", b"NX")),
        ),
    ],
)
def test_each_write_of_a_batch_is_the_documented_command(
    method: str, args: tuple[object, ...], kwargs: dict[str, object], expected: object
) -> None:
    assert _recorded(method, *args, **kwargs) == expected


@pytest.mark.parametrize(
    ("method", "args", "kwargs"),
    [
        ("hgetall", ("ts:{a.b}:7",), {}),
        ("zrange", ("idx:{a.b}", 0, -1), {}),
        ("set", ("deletions:{r0}", b"tok"), {"condition": PureToken.XX}),
        ("zadd", ("keys:{r3}", {"a.b": 41}), {"condition": PureToken.XX}),
        ("set", ("fence:{a}", b"1"), {"px": 1000}),
    ],
)
def test_other_commands_go_through_the_clients_pipeline(
    method: str, args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    assert _recorded(method, *args, **kwargs) is None
