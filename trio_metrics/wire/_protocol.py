"""The metrics wire format, sans-IO: bytes in, commands out; results in, bytes out.

This module and :mod:`._client_connection` (the client's side: requests out,
answers in) are the only places that know the protocol's text. The server
uses :func:`parse_command` and the ``encode_*`` functions. Nothing here
touches sockets, trio or the store, so every rule is tested without I/O.
"""

from __future__ import annotations

import contextlib
import math
import re
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Final, TypeAlias

import attrs
import orjson

from ._globs import Glob, GlobError, compile_glob
from ._key_texts import KeyTexts

__all__ = [
    "ALL_KEYS",
    "DELETED_NAME",
    "ERROR_ANSWER",
    "GET_ANSWER_END",
    "GET_ANSWER_START",
    "MAX_TIMESTAMP",
    "MAX_TIMESTAMP_DIGITS",
    "OK_ANSWER",
    "PIECE_BYTES",
    "SPACES_OR_TABS",
    "STATS_PREFIX",
    "Auth",
    "Command",
    "Delete",
    "Get",
    "Keys",
    "LineEncoder",
    "Ping",
    "Point",
    "ProtocolError",
    "Put",
    "Range",
    "Stats",
    "encode_deleted_answer",
    "encode_get_answer",
    "encode_key_lines",
    "encode_point_lines",
    "encode_stats_answer",
    "is_valid_key",
    "is_valid_pattern",
    "iter_get_answer",
    "iter_point_lines",
    "parse_command",
    "parse_put_block",
    "parse_timestamp",
    "parse_value",
    "plain_line_tokens",
    "plain_point_columns",
    "points_per_piece",
]

#: The key that selects every stored key in a ``get``.
ALL_KEYS: Final = "*"
#: The largest timestamp the protocol accepts (a signed 64-bit integer).
MAX_TIMESTAMP: Final = 2**63 - 1

#: The answer to a successful ``put``, and to a ``get`` that matches nothing.
OK_ANSWER: Final = b"ok\n\n"
#: The first line of a ``get`` answer that has data lines.
GET_ANSWER_START: Final = b"ok\n"
#: The blank line that ends a ``get`` answer after its data lines.
GET_ANSWER_END: Final = b"\n"
#: The one answer to every wrong command.
ERROR_ANSWER: Final = b"error\nwrong command\n\n"

#: What separates the tokens of a line, in commands and in Graphite lines alike.
SPACES_OR_TABS: Final = re.compile(rb"[ \t]+")
#: The most digits a timestamp can need (19). Python's int() refuses strings
#: over 4300 digits with a ValueError, so longer tokens are rejected early.
MAX_TIMESTAMP_DIGITS: Final = len(str(MAX_TIMESTAMP))

#: A stored point as the protocol shows it: ``(key, value, timestamp)``.
Point: TypeAlias = tuple[str, float, int]


class ProtocolError(ValueError):
    """Bytes that do not follow the protocol: a wrong command or a malformed answer.

    On the server this always becomes the answer :data:`ERROR_ANSWER`; the
    message says what was wrong, for logs and client errors.
    """


def is_valid_key(key: str) -> bool:
    """Whether ``key`` may be stored: one token of printable characters, not ``*``.

    ``str.isprintable`` is false for every whitespace character but the
    ASCII space, so the extra space check makes it "printable non-whitespace".
    """
    return bool(key) and key.isprintable() and " " not in key and key != ALL_KEYS


def _check_key(instance: object, attribute: attrs.Attribute[str], key: str) -> None:
    if not is_valid_key(key):
        raise ProtocolError(f"invalid key {key!r}")


def _check_value(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not math.isfinite(value):
        raise ProtocolError(f"value {value!r} is not a finite number")


def _check_timestamp(instance: object, attribute: attrs.Attribute[int], ts: int) -> None:
    if not 0 <= ts <= MAX_TIMESTAMP:
        raise ProtocolError(f"timestamp {ts!r} is outside 0..2**63-1")


def _check_get_key(instance: object, attribute: attrs.Attribute[str], key: str) -> None:
    if key != ALL_KEYS and not is_valid_key(key):
        raise ProtocolError(f"invalid key {key!r}")


@attrs.frozen
class Put:
    """``put <key> <value> <timestamp>``: store one point (last write wins)."""

    key: str = attrs.field(validator=_check_key)
    value: float = attrs.field(validator=_check_value)
    timestamp: int = attrs.field(validator=_check_timestamp)


@attrs.frozen
class Get:
    """``get <key>`` or ``get *``: read one key's points, or every key's."""

    key: str = attrs.field(validator=_check_get_key)

    @property
    def selects_all(self) -> bool:
        """Whether this is ``get *``."""
        return self.key == ALL_KEYS


@attrs.frozen
class Stats:
    """``stats``: the server's own counters, answered like a ``get``.

    An extension word (the protocol allows new words): each counter comes
    back as a data line ``<name> <value> <timestamp>``, so any client that
    reads ``get`` answers reads it.
    """


def is_valid_pattern(pattern: str) -> bool:
    """Whether ``pattern`` may follow ``keys``, ``range`` or ``delete``.

    One token of printable characters (as a key, but ``*`` is fine) that
    :func:`~trio_metrics.wire.compile_glob` accepts.
    """
    return _pattern_problem(pattern) is None


def _pattern_problem(pattern: str) -> str | None:
    if not pattern or not pattern.isprintable() or " " in pattern:
        return f"pattern {pattern[:40]!r} is not one token of printable characters"
    try:
        compile_glob(pattern)
    except GlobError as exc:
        return f"bad glob {pattern[:40]!r}: {exc}"
    return None


def _check_pattern(instance: object, attribute: attrs.Attribute[str], pattern: str) -> None:
    problem = _pattern_problem(pattern)
    if problem is not None:
        raise ProtocolError(problem)


@attrs.frozen
class Ping:
    """``ping``: answered ``ok`` (an extension word: is the server there?)."""


@attrs.frozen
class Keys:
    """``keys <glob>``: the stored keys that match a Graphite glob, sorted.

    An extension word. The glob is matched node by node, so ``*`` matches
    only the keys without a dot (as ``match=*`` of the HTTP API does). A
    key without glob characters is a glob matching just itself.
    """

    pattern: str = attrs.field(validator=_check_pattern)

    def glob(self) -> Glob:
        """The compiled pattern (it was checked when the command was made)."""
        return compile_glob(self.pattern)


@attrs.frozen
class Range:
    """``range <key|glob> <from> <until>``: the points in ``from..until``, inclusive.

    An extension word, answered like a ``get``; ``from`` may not be past ``until``.
    """

    pattern: str = attrs.field(validator=_check_pattern)
    start: int = attrs.field(validator=_check_timestamp)
    end: int = attrs.field(validator=_check_timestamp)

    def __attrs_post_init__(self) -> None:
        if self.start > self.end:
            raise ProtocolError(f"range from {self.start} is after until {self.end}")

    def glob(self) -> Glob:
        """The compiled pattern (it was checked when the command was made)."""
        return compile_glob(self.pattern)


@attrs.frozen
class Delete:
    """``delete <key|glob>``: remove the matching keys and all their points.

    An extension word; the answer counts the keys removed (:func:`encode_deleted_answer`).
    """

    pattern: str = attrs.field(validator=_check_pattern)

    def glob(self) -> Glob:
        """The compiled pattern (it was checked when the command was made)."""
        return compile_glob(self.pattern)


def _check_token(instance: object, attribute: attrs.Attribute[str], token: str) -> None:
    if not token or not token.isprintable() or " " in token:
        raise ProtocolError("a token is one word of printable characters")


@attrs.frozen
class Auth:
    """``auth <token>``: authenticate this connection (an extension word).

    Answered ``ok`` when the server knows the token, else with the error
    answer. The token never shows in a ``repr``.
    """

    token: str = attrs.field(validator=_check_token, repr=False)


#: A parsed command.
Command: TypeAlias = Put | Get | Stats | Ping | Keys | Range | Delete | Auth


def parse_value(token: bytes) -> float:
    """Parse a ``put`` value: anything ``float()`` accepts that is finite.

    Raises :class:`ProtocolError` otherwise.
    """
    try:
        value = float(token)
    except ValueError:
        # float() on bytes takes ASCII only; on str it also takes other
        # Unicode digits, and the protocol promises what float(str) accepts.
        try:
            value = float(token.decode("utf-8"))
        except ValueError:  # UnicodeDecodeError included
            raise ProtocolError(f"value {token!r} is not a number") from None
    if not math.isfinite(value):
        raise ProtocolError(f"value {token!r} is not a finite number")
    return value


def parse_timestamp(token: bytes) -> int:
    """Parse a timestamp: decimal digits only, at most 2**63-1.

    Raises :class:`ProtocolError` otherwise.
    """
    # bytes.isdigit() is ASCII-only, unlike str.isdigit(), which also says
    # yes to "²" and other characters int() would refuse.
    if not token.isdigit():
        raise ProtocolError(f"timestamp {token[:40]!r} is not a non-negative integer")
    # Leading zeros are digits too, but int() refuses over 4300 of them.
    significant = token.lstrip(b"0")
    if len(significant) > MAX_TIMESTAMP_DIGITS:
        raise ProtocolError(f"timestamp {token[:40]!r}... is larger than 2**63-1")
    timestamp = int(significant) if significant else 0
    if timestamp > MAX_TIMESTAMP:
        raise ProtocolError(f"timestamp {token!r} is larger than 2**63-1")
    return timestamp


def _parse_key(token: bytes) -> str:
    try:
        key = token.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(f"key {token!r} is not UTF-8") from None
    if not is_valid_key(key):
        raise ProtocolError(f"invalid key {key!r}")
    return key


def parse_command(line: bytes) -> Command | None:
    """Parse one line (its ``\\n`` or ``\\r\\n`` already removed, or not).

    Returns the command it holds (:class:`Put`, :class:`Get`, or an
    extension word: :class:`Stats`, :class:`Ping`, :class:`Keys`,
    :class:`Range`, :class:`Delete`, :class:`Auth`), or ``None`` for a
    blank line, which is not a command and gets no answer. Raises
    :class:`ProtocolError` for anything the protocol calls a wrong command.
    """
    tokens = line.split()
    if not tokens:
        return None
    # bytes.split() also splits on "\r", "\v" and "\f", but between tokens
    # the protocol separates on spaces and tabs only (leading and trailing
    # whitespace of any kind is ignored). A line with one of those inside
    # is rare, so only then is it split the strict way.
    if len(tokens) > 1 and (b"\r" in line or b"\x0b" in line or b"\x0c" in line):
        tokens = SPACES_OR_TABS.split(line.strip())
    word = tokens[0]
    if word == b"put":
        if len(tokens) != 4:
            raise ProtocolError(f"put takes 3 arguments, got {len(tokens) - 1}")
        key = _parse_key(tokens[1])
        return Put(key, parse_value(tokens[2]), parse_timestamp(tokens[3]))
    if word == b"get":
        if len(tokens) != 2:
            raise ProtocolError(f"get takes 1 argument, got {len(tokens) - 1}")
        if tokens[1] == b"*":
            return Get(ALL_KEYS)
        return Get(_parse_key(tokens[1]))
    if word == b"stats":
        if len(tokens) != 1:
            raise ProtocolError(f"stats takes no arguments, got {len(tokens) - 1}")
        return Stats()
    return _parse_extension(word, tokens)


def _parse_extension(word: bytes, tokens: list[bytes]) -> Command:
    """The extension words ``ping``, ``keys``, ``range``, ``delete`` and ``auth``.

    Raises :class:`ProtocolError` for an unknown word or a wrong use of one.
    """
    arguments = len(tokens) - 1
    expected = _EXTENSION_ARGUMENTS.get(word)
    if expected is None:
        raise ProtocolError(f"unknown command {word[:40]!r}")
    if arguments != expected:
        raise ProtocolError(f"{word.decode()} takes {expected} arguments, got {arguments}")
    if word == b"ping":
        return Ping()
    if word == b"auth":
        try:
            return Auth(tokens[1].decode("utf-8"))
        except UnicodeDecodeError:
            raise ProtocolError("a token is UTF-8") from None
    pattern = _parse_pattern(tokens[1])
    if word == b"keys":
        return Keys(pattern)
    if word == b"range":
        return Range(pattern, parse_timestamp(tokens[2]), parse_timestamp(tokens[3]))
    return Delete(pattern)


# How many arguments each extension word takes.
_EXTENSION_ARGUMENTS: Final = {b"ping": 0, b"keys": 1, b"range": 3, b"delete": 1, b"auth": 1}


def _parse_pattern(token: bytes) -> str:
    try:
        return token.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(f"pattern {token[:40]!r} is not UTF-8") from None


# A line in the plain form that nearly every client sends ("put", key,
# value, timestamp: single spaces, an ASCII key, a timestamp of at most 19
# digits). Blocks of such lines take the fast path of parse_put_block;
# anything else goes line by line.
_PUT = b"put"


def parse_put_block(
    lines: bytes | list[bytes],
) -> tuple[list[str], list[float], list[int]] | None:
    """Parse a batch of lines that are all plain puts, in one pass; else ``None``.

    ``lines`` is a list of lines, or a block: the lines joined by ``\\n``
    as one ``bytes``, the way a line reader hands out the usual read (no
    object per line at all). Returns ``(keys, values, timestamps)`` exactly
    as :func:`parse_command` would give them line by line, or ``None`` when
    any line is not a plain ``put <key> <value> <timestamp>`` (single
    spaces, printable ASCII key) or is wrong in any way, so that the caller
    runs the batch line by line and gets each line's own answer. It never
    accepts what :func:`parse_command` refuses.
    """
    if isinstance(lines, bytes):
        block = lines
    else:
        try:
            block = b"\n".join(lines)
        except TypeError:  # a marker of an over-long line
            return None
    if b"\n" not in block:
        # One put, as a request-response client sends it: the same checks
        # with less to set up (about half the time of the batch path).
        return _parse_one_put(block)
    # Four tokens per line, so the flat token list can be sliced into
    # columns without looking at lines again.
    tokens = plain_line_tokens(block, 4)
    if tokens is None:
        return None
    commands = tokens[0::4]
    if commands.count(_PUT) != len(commands):
        return None
    return plain_point_columns(tokens[1::4], tokens[2::4], tokens[3::4])


_PRINTABLE_ASCII: Final = bytes(range(0x21, 0x7F))


def plain_line_tokens(block: bytes, fields: int) -> list[bytes] | None:
    """The tokens of ``block`` if each of its lines is ``fields`` plain tokens; else ``None``.

    A plain line is ``fields`` tokens of printable ASCII (no space)
    separated by single spaces; lines are separated by ``\n``. The tokens
    come as one flat list, line after line, ready to be sliced into columns
    (``tokens[0::fields]`` and so on). Checked in a few C-level passes over
    the whole block (no pattern matched byte by byte): what is left once
    every printable ASCII byte is deleted must be exactly the separators of
    plain lines. A token may still be empty (``b""``), where two separators
    meet or one is at either end: :func:`plain_point_columns` refuses those
    (looking for them here would cost a search of the whole block).
    """
    if fields < 1:
        raise ValueError("fields must be at least 1")
    # Any byte that is neither printable ASCII nor a space or "\n" (a tab,
    # a "\r", a control byte, UTF-8) stays here and spoils the comparison.
    separators = block.translate(None, _PRINTABLE_ASCII)
    lines, rest = divmod(len(separators) + 1, fields)
    line_end = b" " * (fields - 1) + b"\n"
    if rest or separators + b"\n" != line_end * lines:
        return None
    return block.replace(b"\n", b" ").split(b" ")


def plain_point_columns(
    raw_keys: list[bytes], raw_values: list[bytes], raw_timestamps: list[bytes]
) -> tuple[list[str], list[float], list[int]] | None:
    """Columns of points from plain tokens (:func:`plain_line_tokens`); ``None`` if any is wrong.

    The caller has checked that every token is printable ASCII without a
    space (empty tokens are allowed). This checks the rest in C-speed
    passes over whole columns: no key is empty or ``*``, every value is a
    finite number, every timestamp is 1 to 19 ASCII digits and at most
    2**63-1 (an empty value or timestamp is no number: JSON refuses the
    ``,,`` it makes, and so do ``float()`` and ``int()``). ``None`` sends the caller to its
    line-by-line path, which says what is wrong with which line. Used by
    the main protocol's :func:`parse_put_block` and the Graphite listener's
    fast path. Keys seen before come back as the ``str`` objects of then.
    """
    keys = _KEY_TEXTS.decode(raw_keys)
    if keys is None:
        return None
    values = _read_floats(raw_values)
    # One C-level sum finds any nan or infinity (an overflowing sum of
    # finite values is only a false alarm: the slow path sorts it out).
    if values is None or not math.isfinite(sum(values)):
        return None
    timestamps = _read_digits(raw_timestamps)
    if timestamps is None or max(timestamps) > MAX_TIMESTAMP:
        return None
    return keys, values, timestamps


# The text of the keys the batch parsers saw last (bounded in number and
# in bytes: a key can be as long as a line).
_KEY_TEXTS: Final = KeyTexts()


_PLAIN_PUT_LINE: Final = re.compile(rb"put ([!-~]+) ([!-~]+) ([0-9]{1,19})")


def _parse_one_put(line: bytes) -> tuple[list[str], list[float], list[int]] | None:
    """:func:`parse_put_block` of a single line."""
    match = _PLAIN_PUT_LINE.fullmatch(line)
    if match is None:
        return None
    raw_key, raw_value, raw_timestamp = match.groups()
    if raw_key == b"*":
        return None
    try:
        value = float(raw_value)
    except ValueError:
        return None
    timestamp = int(raw_timestamp)
    if not math.isfinite(value) or timestamp > MAX_TIMESTAMP:
        return None
    return [raw_key.decode()], [value], [timestamp]


# From this many tokens on, one JSON read beats float() or int() per token
# (below it, building the array costs more than it saves: a lone put).
_READ_AS_JSON_FROM: Final = 8
# What the JSON array of a column of plain numbers is made of. From these
# bytes (no quote, bracket, brace or letter but the exponent's) JSON can
# make nothing but numbers; the brackets around it are added.
_DIGITS_AND_COMMAS: Final = b"0123456789,"
_NUMBER_BYTES: Final = _DIGITS_AND_COMMAS + b"+-.eE"


def _read_digits(tokens: list[bytes]) -> list[int] | None:
    """``int()`` of every token if each is 1 to 19 ASCII digits; else ``None``.

    Read as one JSON array by orjson when there are many. JSON refuses a
    leading zero, which ``int()`` reads: such a column is read by ``int()``.
    Without leading zeros, a number of 20 digits or more is over 2**63-1
    (orjson reads it as a float), which the caller refuses.
    """
    joined = b",".join(tokens)
    if joined.translate(None, _DIGITS_AND_COMMAS):
        return None  # a token holds something besides digits (and commas)
    if len(tokens) >= _READ_AS_JSON_FROM:
        with contextlib.suppress(orjson.JSONDecodeError):
            numbers: list[int] = orjson.loads(b"[%s]" % joined)
            # (More numbers than tokens: a token held a comma.)
            return numbers if len(numbers) == len(tokens) else None
    if not tokens or max(map(len, tokens)) > MAX_TIMESTAMP_DIGITS:
        return None
    try:
        return list(map(int, tokens))
    except ValueError:  # an empty token, or one holding a comma
        return None


def _read_floats(tokens: list[bytes]) -> list[float] | None:
    """``float()`` of every token, or ``None`` if one is not a number.

    Read as one JSON array by orjson in C (exactly rounded, as ``float()``),
    about three times faster than ``float()`` token by token. JSON is
    stricter than ``float()`` (no ``1.``, ``.5``, ``+1``, ``1_0``, ``inf``):
    such a batch, one whose tokens do not each read as one number (a ``,``
    inside one), one with a byte JSON could read as something else than a
    number, and a batch of a few tokens are read by ``float()``.
    """
    if len(tokens) >= _READ_AS_JSON_FROM:
        joined = b",".join(tokens)
        numbers = None
        if not joined.translate(None, _NUMBER_BYTES):
            with contextlib.suppress(orjson.JSONDecodeError):
                numbers = orjson.loads(b"[%s]" % joined)
        if (
            numbers is not None
            and len(numbers) == len(tokens)
            # JSON's "-0" is the integer 0; float(b"-0") is -0.0.
            and b"-0" not in tokens
        ):
            return list(map(float, numbers))
    try:
        return list(map(float, tokens))
    except ValueError:
        return None


#: The most bytes one piece of a streamed ``get`` answer holds.
PIECE_BYTES: Final = 128 * 1024
# The longest a data line can be besides its key: a value's repr (at most
# 24 characters), a timestamp (at most 19 digits), two spaces, a newline.
_LINE_BYTES_BESIDES_KEY: Final = 24 + 19 + 3

#: Encodes one key's points as answer pieces: ``(key, timestamps, values)``.
LineEncoder: TypeAlias = Callable[[str, Sequence[int], Sequence[float]], Iterable[bytes]]


def points_per_piece(key: str) -> int:
    """How many of ``key``'s data lines fit in :data:`PIECE_BYTES` (at least one).

    Sized by the key, so that a long key cannot make a piece, and so the
    memory an answer holds while it is written, grow past the bound.
    """
    return max(1, PIECE_BYTES // (len(key.encode("utf-8")) + _LINE_BYTES_BESIDES_KEY))


def encode_point_lines(key: str, timestamps: Iterable[int], values: Iterable[float]) -> bytes:
    """Encode the data lines ``<key> <value> <timestamp>\\n`` of one key's points.

    Values are written as ``repr(float)``, so that ``float()`` of the text
    gives back exactly the stored number. The numbers are formatted in C by
    orjson (shortest round-trip digits, as ``repr``), about four times
    faster than ``repr`` one by one; the few values whose text would differ
    from ``repr``'s (an exponent: under 1e-4 or from 1e16 on) send their
    piece the ``repr`` way.
    """
    stamps: list[int] = (
        timestamps.tolist()
        if isinstance(timestamps, array) and timestamps.typecode == "q"
        else list(map(int, timestamps))
    )
    numbers: list[float] = (
        values.tolist()
        if isinstance(values, array) and values.typecode == "d"
        else list(map(float, values))
    )
    count = len(stamps)
    if count != len(numbers):
        raise ValueError(f"{count} timestamps but {len(numbers)} values")
    if not count:
        return b""
    # [v, t, None, v, t, None, ...] dumps as "v,t,null,v,t,null": the nulls
    # mark the line ends, so plain replaces turn it into the answer lines.
    flat: list[float | int | None] = [None] * (3 * count)
    flat[0::3] = numbers
    flat[1::3] = stamps
    text = orjson.dumps(flat)
    # "e": an exponent (or inf/nan, never stored); "0.0000": a value under
    # 1e-4 that repr writes with an exponent (or a harmless false alarm).
    if b"e" in text or b"0.0000" in text:
        return _encode_by_repr(key, stamps, numbers)
    name = key.encode("utf-8")
    lines = text[1:-6].replace(b",null,", b"\n").replace(b",", b" ")
    return name + b" " + lines.replace(b"\n", b"\n" + name + b" ") + b"\n"


def _encode_by_repr(key: str, timestamps: Iterable[int], values: Iterable[float]) -> bytes:
    prefix = key + " "
    return "".join(
        [
            f"{prefix}{float(value)!r} {timestamp}\n"
            for timestamp, value in zip(timestamps, values, strict=True)
        ]
    ).encode("utf-8")


def iter_point_lines(
    key: str, timestamps: Sequence[int], values: Sequence[float]
) -> Iterator[bytes]:
    """Encode one key's data lines in pieces of at most :data:`PIECE_BYTES`."""
    step = points_per_piece(key)
    for start in range(0, len(timestamps), step):
        yield encode_point_lines(
            key, timestamps[start : start + step], values[start : start + step]
        )


def iter_get_answer(
    series: Iterable[tuple[str, Sequence[int], Sequence[float]]],
    lines_of: LineEncoder = iter_point_lines,
) -> Iterator[bytes]:
    """Encode a ``get`` answer piece by piece from ``(key, timestamps, values)``.

    ``ok``, one ``<key> <value> <timestamp>`` line per point, then a blank
    line; ``ok`` and the blank line alone when there is no point. The data
    lines come from ``lines_of`` (default :func:`iter_point_lines`; a cache
    of encoded lines can stand in), in pieces, so a huge answer can be
    written out while it is encoded, in bounded memory.
    """
    started = False
    for key, timestamps, values in series:
        if not len(timestamps):
            continue
        # lines_of is called as soon as the series is taken from ``series``,
        # with no suspension between: a cache it consults sees the same
        # moment as the snapshot.
        pieces = lines_of(key, timestamps, values)
        if not started:
            started = True
            yield GET_ANSWER_START
        yield from pieces
    yield GET_ANSWER_END if started else OK_ANSWER


def encode_get_answer(series: Iterable[tuple[str, Sequence[int], Sequence[float]]]) -> bytes:
    """Encode a whole ``get`` answer; see :func:`iter_get_answer`."""
    return b"".join(iter_get_answer(series))


#: The prefix of every counter name in a ``stats`` answer.
STATS_PREFIX: Final = "trio_metrics."


def encode_stats_answer(counters: dict[str, int], now: int) -> bytes:
    """Encode a ``stats`` answer: one ``trio_metrics.<name> <value> <now>`` line each."""
    return encode_get_answer(
        [(STATS_PREFIX + name, [now], [float(value)]) for name, value in counters.items()]
    )


#: The name of the one data line of a ``delete`` answer.
DELETED_NAME: Final = STATS_PREFIX + "deleted"


def encode_deleted_answer(count: int, now: int) -> bytes:
    """Encode a ``delete`` answer: ``ok``, ``trio_metrics.deleted <count> <now>``, blank line."""
    return encode_get_answer([(DELETED_NAME, [now], [float(count)])])


def encode_key_lines(keys: Iterable[str]) -> bytes:
    """Encode the data lines of a ``keys`` answer: ``<key> 0.0 0`` per key.

    In the shape of a ``get`` answer's lines, so that any reader of those
    parses them; the value and the timestamp say nothing.
    """
    return "".join([f"{key} 0.0 0\n" for key in keys]).encode("utf-8")
