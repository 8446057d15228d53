# mypy: disable-error-code="func-returns-value"
# (the tests check that put() returns None, as the client contract says)
"""The client against a fake socket, in the style of the course's own unittest.

The course's test replaces ``socket.create_connection`` (and ``socket.socket``)
with a fake that knows only ``sendall``/``send``, ``recv`` and ``close``, maps
each exact request to one canned answer, and hands that answer out in a
single ``recv``. A client that calls anything else on the socket, sends other
bytes, or reads again after an answer is complete fails here as it would
there. This is the one place a fake stands in for a real socket: the point
is to prove we need nothing more from it.
"""

from __future__ import annotations

import unittest
from collections import deque
from typing import Any, ClassVar
from unittest.mock import patch

from trio_metrics import Client, ClientError

CANNED = {
    b"put test 0.5 1\n": b"ok\n\n",
    b"put test 2.0 2\n": b"ok\n\n",
    b"put test 0.4 2\n": b"ok\n\n",
    b"put load 301 3\n": b"ok\n\n",
    b"get key_not_exists\n": b"ok\n\n",
    b"get test\n": b"ok\ntest 0.5 1\ntest 0.4 2\n\n",
    b"get get_client_error\n": b"error\nwrong command\n\n",
    b"get *\n": b"ok\ntest 0.5 1\ntest 0.4 2\nload 301 3\n\n",
    b"get unordered\n": b"ok\nunordered 2 20\nunordered 1 10\n\n",
    b"get malformed\n": b"ok\nmalformed 1.0\n\n",
}


class UnexpectedUse(Exception):
    """The client used the fake socket in a way the course's fake forbids."""


class CannedSocket:
    """Answers each known request with one canned ``recv``; nothing else exists."""

    created: ClassVar[list[tuple[Any, ...]]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        CannedSocket.created.append(args)
        self.answers: deque[bytes] = deque()
        self.closed = False

    def sendall(self, data: bytes) -> None:
        self.send(data)

    def send(self, data: bytes) -> int:
        if data not in CANNED:
            raise UnexpectedUse(f"request outside the protocol: {data!r}")
        self.answers.append(CANNED[data])
        return len(data)

    def recv(self, size: int) -> bytes:
        if not self.answers:
            raise UnexpectedUse("recv with no answer waiting")
        return self.answers.popleft()

    def close(self) -> None:
        self.closed = True


def fake_create_connection(*args: Any, **kwargs: Any) -> CannedSocket:
    return CannedSocket(*args, **kwargs)


@patch("socket.socket", fake_create_connection)
@patch("socket.create_connection", fake_create_connection)
class CourseStyleClientTest(unittest.TestCase):
    client: Client

    @classmethod
    def setUpClass(cls) -> None:
        with (
            patch("socket.create_connection", fake_create_connection),
            patch("socket.socket", fake_create_connection),
        ):
            cls.client = Client("127.0.0.1", 10000, timeout=2)

    def test_connects_once_with_address_and_timeout(self) -> None:
        self.assertIn((("127.0.0.1", 10000), 2), CannedSocket.created)

    def test_put_sends_exact_requests(self) -> None:
        for key, value, timestamp in [
            ("test", 0.5, 1),
            ("test", 2.0, 2),
            ("test", 0.4, 2),
            ("load", 301, 3),
        ]:
            self.assertIsNone(self.client.put(key, value, timestamp=timestamp))

    def test_get_one_key(self) -> None:
        self.assertEqual(self.client.get("test"), {"test": [(1, 0.5), (2, 0.4)]})

    def test_get_all_keys(self) -> None:
        self.assertEqual(self.client.get("*"), {"test": [(1, 0.5), (2, 0.4)], "load": [(3, 301.0)]})

    def test_get_missing_key_is_empty(self) -> None:
        self.assertEqual(self.client.get("key_not_exists"), {})

    def test_error_answer_raises_client_error(self) -> None:
        self.assertRaises(ClientError, self.client.get, "get_client_error")

    def test_points_are_sorted_by_timestamp(self) -> None:
        self.assertEqual(self.client.get("unordered"), {"unordered": [(10, 1.0), (20, 2.0)]})

    def test_malformed_answer_raises_client_error(self) -> None:
        self.assertRaises(ClientError, self.client.get, "malformed")

    def test_close_closes_the_socket(self) -> None:
        client = Client("127.0.0.1", 10000, timeout=2)
        client.close()
        self.assertTrue(client._sock.closed)  # type: ignore[attr-defined]


if __name__ == "__main__":
    unittest.main()
