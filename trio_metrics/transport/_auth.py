"""Token authentication shared by every listener: the settings, the token file, the checks.

:class:`AuthSettings` names the token file and the rules around it;
:func:`load_tokens` reads the file (refusing one that group or others may
read, as ssh does with a private key); :class:`Authenticator` checks a
token in constant time and slows down repeated failures from one address
(:class:`FailureDelay`). Tokens are never logged, never counted by value,
and never shown in a ``repr``.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import re
import stat
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Final

import attrs
import trio

__all__ = [
    "DEFAULT_AUTH_TIMEOUT",
    "DEFAULT_MAX_UNAUTHENTICATED",
    "MIN_TOKEN_LENGTH",
    "AuthSettings",
    "Authenticator",
    "FailureDelay",
    "TokenFileError",
    "is_valid_token",
    "load_tokens",
]

#: Connections that have not authenticated yet, served at once by default.
DEFAULT_MAX_UNAUTHENTICATED: Final = 64
#: Seconds a connection has to authenticate by default.
DEFAULT_AUTH_TIMEOUT: Final = 10.0
#: The shortest token accepted: shorter ones are guessable.
MIN_TOKEN_LENGTH: Final = 16
# Letters, digits and the characters of base64 and URL-safe base64: one
# word on the protocol's line, in an HTTP header, and free of the ':' that
# separates a name from its token.
_TOKEN: Final = re.compile(r"[A-Za-z0-9._~+/=-]+")
_NAME: Final = re.compile(r"[A-Za-z0-9._@-]+")


class TokenFileError(OSError):
    """The token file is missing, readable by group or others, or not in the expected form."""


def is_valid_token(token: str) -> bool:
    """Whether ``token`` may be a token: at least 16 of ``A-Z a-z 0-9 . _ ~ + / = -``."""
    return len(token) >= MIN_TOKEN_LENGTH and _TOKEN.fullmatch(token) is not None


def _positive_int(instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name} must be a whole number of at least 1, not {value!r}")


def _positive_seconds(instance: object, attribute: attrs.Attribute[float], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{attribute.name} must be a number of seconds, not {value!r}")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{attribute.name} must be a positive number of seconds, not {value!r}")


@attrs.frozen
class AuthSettings:
    """Token authentication for every listener of a server.

    - ``token_file``: one token per line, optionally ``name:token`` (the
      name shows in logs); blank lines and ``#`` comments are skipped. It
      must not be readable by group or others.
    - ``metrics_open``: serve HTTP ``/metrics`` without a token (for a
      Prometheus that scrapes without one); ``/healthz`` is always open.
    - ``graphite_allow_unauthenticated``: let the Graphite port take
      points without client certificates (Graphite lines have no place for
      a token); without it, a Graphite port needs mutual TLS.
    - ``max_unauthenticated``: connections that have not authenticated yet,
      at once, on the main port and on the HTTP port each (there: until a
      request shows a known bearer token); more are closed at once, so a
      flood of them cannot take the slots of authenticated clients.
    - ``auth_timeout``: seconds a main-port connection has to authenticate
      (from its first byte) before it is closed.
    """

    token_file: Path = attrs.field(converter=Path)
    metrics_open: bool = False
    graphite_allow_unauthenticated: bool = False
    max_unauthenticated: int = attrs.field(
        default=DEFAULT_MAX_UNAUTHENTICATED, validator=_positive_int
    )
    auth_timeout: float = attrs.field(default=DEFAULT_AUTH_TIMEOUT, validator=_positive_seconds)


def load_tokens(path: Path) -> dict[str, str]:
    """The tokens of the file at ``path``, by name (``token-<line>`` for an unnamed one).

    Raises :exc:`TokenFileError` if the file cannot be read, is readable by
    group or others, holds no token, or has a bad line (its number is
    named; its text never is, since it may be a token).
    """
    try:
        with open(path, "rb") as file:
            mode = os.fstat(file.fileno()).st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise TokenFileError(
                    f"token file {path} is open to group or others (mode {stat.S_IMODE(mode):04o});"
                    f" run: chmod 600 {path}"
                )
            text = file.read()
    except TokenFileError:
        raise
    except OSError as exc:
        raise TokenFileError(f"cannot read token file {path}: {exc.strerror or exc}") from None
    tokens: dict[str, str] = {}
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.decode("utf-8", "replace").strip()
        if not line or line.startswith("#"):
            continue
        name, colon, token = line.rpartition(":")
        if not colon:
            name = f"token-{number}"
        problem = _line_problem(name, token, tokens, seen)
        if problem:
            raise TokenFileError(f"token file {path}, line {number}: {problem}")
        tokens[name] = token
        seen.add(token)
    if not tokens:
        raise TokenFileError(f"token file {path} holds no token")
    return tokens


def _line_problem(name: str, token: str, tokens: dict[str, str], seen: set[str]) -> str | None:
    if _NAME.fullmatch(name) is None:
        return "a name is letters, digits and . _ @ - only"
    if not is_valid_token(token):
        return f"a token is at least {MIN_TOKEN_LENGTH} of the characters A-Z a-z 0-9 . _ ~ + / = -"
    if name in tokens:
        return f"the name {name!r} is used twice"
    if token in seen:
        return "the same token is given twice"
    return None


class FailureDelay:
    """How long to hold back the answer to a failed attempt from one address.

    The first failure waits ``base`` seconds, each further one twice as
    long, up to ``cap``; an address that has not failed for ``forget``
    seconds starts again from nothing. At most ``max_addresses`` are
    remembered (the oldest go first), so a spray of addresses costs
    bounded memory.
    """

    def __init__(
        self,
        *,
        base: float = 0.05,
        cap: float = 5.0,
        forget: float = 600.0,
        max_addresses: int = 10_000,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.base = base
        self.cap = cap
        self._forget = forget
        self._max_addresses = max_addresses
        self._clock = clock
        # address -> (failures, time of the last one)
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def failed(self, address: str) -> float:
        """Record a failure from ``address``; return the seconds to hold back its answer."""
        now = self._clock()
        count, last = self._failures.pop(address, (0, now))
        if now - last > self._forget:
            count = 0
        count += 1
        self._failures[address] = (count, now)
        while len(self._failures) > self._max_addresses:
            self._failures.popitem(last=False)
        return float(min(self.cap, self.base * 2 ** min(count - 1, 64)))

    def succeeded(self, address: str) -> None:
        """Forget the failures of ``address``."""
        self._failures.pop(address, None)


def _digest(token: str) -> bytes:
    # Compared as digests: compare_digest on tokens of different lengths
    # would tell an attacker the length.
    return hashlib.sha256(token.encode("utf-8")).digest()


class Authenticator:
    """Checks tokens against a token file's, in constant time, slowing down failures.

    Raises :exc:`TokenFileError` as :func:`load_tokens` does.
    """

    def __init__(self, settings: AuthSettings, delay: FailureDelay | None = None) -> None:
        self.settings = settings
        self.delay = FailureDelay() if delay is None else delay
        self._digests = self._load()

    def _load(self) -> list[tuple[str, bytes]]:
        return [
            (name, _digest(token)) for name, token in load_tokens(self.settings.token_file).items()
        ]

    def reload(self) -> None:
        """Read the token file again (connections already authenticated stay so)."""
        self._digests = self._load()

    @property
    def names(self) -> list[str]:
        """The names of the tokens, for the start-up log."""
        return [name for name, _ in self._digests]

    def check(self, token: str) -> str | None:
        """The name of ``token``, or ``None``: every known token is compared, always."""
        given = _digest(token)
        found = None
        for name, digest in self._digests:
            if hmac.compare_digest(given, digest):
                found = name
        return found

    async def authenticate(self, token: str, address: str) -> str | None:
        """The name of ``token``, or ``None`` after the failure delay of ``address``."""
        name = self.check(token)
        if name is None:
            await trio.sleep(self.delay.failed(address))
        else:
            self.delay.succeeded(address)
        return name
