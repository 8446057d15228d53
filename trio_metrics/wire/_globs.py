"""Graphite-style globs over dotted keys, sans-IO: compiled once, matched node by node.

A pattern is cut at each ``.`` into nodes; a key matches when it has as many
nodes and each of its nodes matches the pattern's node at the same place:

- ``*`` matches any run of characters (none included), ``?`` exactly one;
  neither ever matches a ``.``, so ``web.*`` matches ``web.cpu`` but not
  ``web.cpu.user``;
- ``[abc]``, ``[a-z]`` match one character of the set, ``[!a-z]`` one that
  is not in it (``]`` right after ``[`` or ``[!`` is a member, ``-`` first
  or last is a member);
- ``{web,db}`` matches one of the alternatives, each of which may hold
  ``*``, ``?`` and classes (but no ``.`` and no other ``{...}``); several
  groups in one node are multiplied out, to at most :data:`MAX_GLOB_VARIANTS`;
- every other character stands for itself (``[*]`` for a literal ``*``).

:func:`compile_glob` is linear in the pattern's length and uses no regular
expressions, so no cache grows with the patterns it is given; it raises
:exc:`GlobError` for a pattern over :data:`MAX_GLOB_BYTES` or one that does
not parse. Matching a key never backtracks: the fixed-length pieces between
two ``*`` are found leftmost (``str.find``, or a bit-parallel scan for
pieces with ``?`` and classes), so one key costs at most its length times
the pattern's length over the machine word.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Final

import attrs

__all__ = ["MAX_GLOB_BYTES", "MAX_GLOB_VARIANTS", "Glob", "GlobError", "compile_glob"]

#: The longest pattern accepted, in UTF-8 bytes.
MAX_GLOB_BYTES: Final = 1024
#: The most alternatives a pattern may stand for once its ``{...}`` groups are
#: multiplied out, summed over its nodes.
MAX_GLOB_VARIANTS: Final = 256

_SPECIAL: Final = "*?[{"
# Characters, classes and stars of all variants together: bounds the work of
# compiling and of matching one key, however the groups multiply.
_MAX_EXPANDED: Final = 4 * MAX_GLOB_BYTES
# Masks cached per scanned piece: enough for any alphabet keys use, bounded anyway.
_MASK_CACHE_SIZE: Final = 4096


class GlobError(ValueError):
    """A pattern that is too long or does not parse; the message says where."""


@attrs.frozen
class _CharClass:
    """One character of a set (``[a-z]``), or not of it (``[!a-z]``, and ``?``)."""

    chars: frozenset[str]
    ranges: tuple[tuple[str, str], ...]
    negated: bool

    def accepts(self, char: str) -> bool:
        inside = char in self.chars or any(low <= char <= high for low, high in self.ranges)
        return inside != self.negated


_ANY_CHAR: Final = _CharClass(frozenset(), (), negated=True)
_STAR: Final = "*"
# A parsed piece: a literal character, a class or a star; or {...} alternatives of those.
_Simple = str | _CharClass
_Piece = _Simple | tuple[tuple[_Simple, ...], ...]


class _Segment:
    """A fixed-length run of literal text and classes, between two stars."""

    __slots__ = ("_classes", "_literal_masks", "_masks", "items", "length", "literal")

    def __init__(self, pieces: list[_Simple]) -> None:
        items: list[_Simple] = []
        for piece in pieces:
            if isinstance(piece, str) and items and isinstance(items[-1], str):
                items[-1] += piece
            else:
                items.append(piece)
        self.items = tuple(items)
        self.length = sum(len(item) if isinstance(item, str) else 1 for item in items)
        only = items[0] if len(items) == 1 else None
        self.literal = only if isinstance(only, str) else ("" if not items else None)
        # For the bit-parallel scan, made on its first use: bit i is set in
        # the mask of a character when position i of the segment accepts it.
        self._literal_masks: dict[str, int] | None = None
        self._classes: list[tuple[int, _CharClass]] = []
        self._masks: dict[str, int] = {}

    def match_at(self, text: str, start: int) -> bool:
        """Whether the segment matches ``text`` at ``start`` (which leaves room for it)."""
        position = start
        for item in self.items:
            if isinstance(item, str):
                if not text.startswith(item, position):
                    return False
                position += len(item)
            else:
                if not item.accepts(text[position]):
                    return False
                position += 1
        return True

    def find(self, text: str, start: int, stop: int) -> int:
        """The leftmost place in ``text[start:stop]`` where the segment matches, or -1."""
        if self.literal is not None:
            return text.find(self.literal, start, stop)
        # Shift-And: one pass over the text, whatever the segment holds.
        last = 1 << (self.length - 1)
        state = 0
        masks = self._masks
        for index in range(start, stop):
            char = text[index]
            mask = masks.get(char)
            if mask is None:
                mask = self._mask_of(char)
                if len(masks) < _MASK_CACHE_SIZE:
                    masks[char] = mask
            state = ((state << 1) | 1) & mask
            if state & last:
                return index - self.length + 1
        return -1

    def _mask_of(self, char: str) -> int:
        if self._literal_masks is None:
            self._literal_masks = {}
            position = 0
            for item in self.items:
                for each in item if isinstance(item, str) else (item,):
                    if isinstance(each, str):
                        mask = self._literal_masks.get(each, 0)
                        self._literal_masks[each] = mask | (1 << position)
                    else:
                        self._classes.append((1 << position, each))
                    position += 1
        mask = self._literal_masks.get(char, 0)
        for bit, char_class in self._classes:
            if char_class.accepts(char):
                mask |= bit
        return mask


class _Variant:
    """One way a node may look, with its ``{...}`` choices made: segments between stars."""

    __slots__ = ("head", "middle", "starred", "tail")

    def __init__(self, pieces: tuple[_Simple, ...]) -> None:
        segments: list[list[_Simple]] = [[]]
        for piece in pieces:
            if piece == _STAR:
                segments.append([])
            else:
                segments[-1].append(piece)
        self.starred = len(segments) > 1
        self.head = _Segment(segments[0])
        self.tail = _Segment(segments[-1]) if self.starred else self.head
        # Empty middles (from "**") match anywhere: leave them out.
        self.middle = tuple(_Segment(each) for each in segments[1:-1] if each)

    @property
    def matches_anything(self) -> bool:
        """Whether this is a bare ``*``."""
        return self.starred and not self.middle and not self.head.length and not self.tail.length

    def matches(self, node: str) -> bool:
        head, tail = self.head, self.tail
        if not self.starred:
            if head.literal is not None:
                return node == head.literal
            return len(node) == head.length and head.match_at(node, 0)
        end = len(node) - tail.length
        if end < head.length or not head.match_at(node, 0) or not tail.match_at(node, end):
            return False
        # Each middle segment has a fixed length, so its leftmost place leaves
        # the most room for the next: no other place needs trying.
        position = head.length
        for segment in self.middle:
            found = segment.find(node, position, end)
            if found < 0:
                return False
            position = found + segment.length
        return True


@attrs.frozen
class Glob:
    """A compiled pattern (:func:`compile_glob`); ``matches(key)`` tests one key.

    ``prefix`` is the literal text every matching key starts with (up to the
    first ``*``, ``?``, ``[`` or ``{``), for looking keys up in sorted order.
    """

    pattern: str
    prefix: str
    node_count: int
    #: ``(node index, test)`` for each node that does not match everything.
    _checks: tuple[tuple[int, Callable[[str], bool]], ...] = attrs.field(repr=False)

    def matches(self, key: str) -> bool:
        """Whether ``key`` matches, node by node."""
        nodes = key.split(".")
        if len(nodes) != self.node_count:
            return False
        return all(test(nodes[index]) for index, test in self._checks)


def compile_glob(pattern: str) -> Glob:
    """Compile ``pattern``; raises :exc:`GlobError` if it is too long or malformed."""
    size = len(pattern.encode("utf-8", "surrogatepass"))
    if size > MAX_GLOB_BYTES:
        raise GlobError(f"a glob of {size} bytes: at most {MAX_GLOB_BYTES}")
    if not pattern:
        raise GlobError("the glob is empty")
    nodes = [_expand(node) for node in _parse_nodes(pattern)]
    if sum(len(node) for node in nodes) > MAX_GLOB_VARIANTS:
        raise _too_many_variants()
    if sum(len(variant) for node in nodes for variant in node) > _MAX_EXPANDED:
        raise _too_large()
    checks = [(index, _node_test(node)) for index, node in enumerate(nodes)]
    first_special = min((i for i in map(pattern.find, _SPECIAL) if i >= 0), default=len(pattern))
    return Glob(
        pattern,
        pattern[:first_special],
        len(nodes),
        # Equality tests first: they are the cheapest and usually the most selective.
        tuple(
            sorted(
                ((index, test) for index, test in checks if test is not None),
                key=lambda check: not isinstance(check[1], _LiteralTest),
            )
        ),
    )


class _LiteralTest(str):
    """A node that is one literal: the test is equality."""

    __slots__ = ()

    def __call__(self, node: str) -> bool:
        return node == self


def _node_test(variants: list[tuple[_Simple, ...]]) -> Callable[[str], bool] | None:
    """The cheapest test of a node against its variants; None if it matches anything."""
    compiled = [_Variant(variant) for variant in variants]
    if any(variant.matches_anything for variant in compiled):
        return None
    literals = [v.head.literal for v in compiled if not v.starred and v.head.literal is not None]
    if len(literals) == len(compiled):
        if len(literals) == 1:
            return _LiteralTest(literals[0])
        return frozenset(literals).__contains__
    if len(compiled) == 1:
        return compiled[0].matches
    return lambda node: any(variant.matches(node) for variant in compiled)


def _parse_nodes(pattern: str) -> Iterator[list[_Piece]]:
    """The pattern's nodes as pieces, in one pass."""
    node: list[_Piece] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == ".":
            yield node
            node = []
            index += 1
        elif char == "{":
            alternatives, index = _parse_alternatives(pattern, index)
            node.append(alternatives)
        elif char == "}":
            raise GlobError(f"'}}' at offset {index} closes no '{{'")
        else:
            piece, index = _parse_simple(pattern, index)
            node.append(piece)
    yield node


def _parse_simple(pattern: str, index: int) -> tuple[_Simple, int]:
    """The piece at ``index`` outside braces' syntax (a character, ``*``, ``?``, a class)."""
    char = pattern[index]
    if char == "?":
        return _ANY_CHAR, index + 1
    if char == "[":
        return _parse_class(pattern, index)
    return char, index + 1  # "*" is _STAR itself


def _parse_alternatives(pattern: str, start: int) -> tuple[tuple[tuple[_Simple, ...], ...], int]:
    """The ``{a,b}`` group that opens at ``start``, and the index after it."""
    alternatives: list[tuple[_Simple, ...]] = []
    current: list[_Simple] = []
    index = start + 1
    while index < len(pattern):
        char = pattern[index]
        if char == "}":
            alternatives.append(tuple(current))
            return tuple(alternatives), index + 1
        if char == ",":
            alternatives.append(tuple(current))
            current = []
            index += 1
        elif char in ".{":
            raise GlobError(f"{char!r} at offset {index} inside the '{{' at offset {start}")
        else:
            piece, index = _parse_simple(pattern, index)
            current.append(piece)
    raise GlobError(f"the '{{' at offset {start} has no closing '}}'")


def _parse_class(pattern: str, start: int) -> tuple[_CharClass, int]:
    """The ``[...]`` class that opens at ``start``, and the index after it."""
    index = start + 1
    negated = pattern.startswith("!", index)
    index += negated
    members: list[str] = []
    first = True
    while index < len(pattern) and (pattern[index] != "]" or first):
        if pattern[index] == ".":
            raise GlobError(f"'.' at offset {index} inside the '[' at offset {start}")
        members.append(pattern[index])
        index += 1
        first = False
    if index >= len(pattern):
        raise GlobError(f"the '[' at offset {start} has no closing ']'")
    chars: set[str] = set()
    ranges: list[tuple[str, str]] = []
    position = 0
    while position < len(members):
        if position + 2 < len(members) and members[position + 1] == "-":
            low, high = members[position], members[position + 2]
            if low > high:
                raise GlobError(f"the range {low}-{high} in the '[' at offset {start} is empty")
            ranges.append((low, high))
            position += 3
        else:
            chars.add(members[position])
            position += 1
    return _CharClass(frozenset(chars), tuple(ranges), negated), index + 1


def _expand(node: list[_Piece]) -> list[tuple[_Simple, ...]]:
    """The node's variants, each ``{...}`` group multiplied out (within the bounds)."""
    variants: list[list[_Simple]] = [[]]
    for piece in node:
        alternatives = piece if isinstance(piece, tuple) else ((piece,),)
        count = len(variants) * len(alternatives)
        if count > MAX_GLOB_VARIANTS:
            raise _too_many_variants()
        # Checked before the pieces are made, so a hostile pattern costs no more.
        size = sum(map(len, variants)) * len(alternatives) + len(variants) * sum(
            map(len, alternatives)
        )
        if size > _MAX_EXPANDED:
            raise _too_large()
        if len(alternatives) == 1:
            for variant in variants:
                variant.extend(alternatives[0])
        else:
            variants = [[*variant, *choice] for variant in variants for choice in alternatives]
    return [tuple(variant) for variant in variants]


def _too_many_variants() -> GlobError:
    return GlobError(f"the glob's {{...}} groups make over {MAX_GLOB_VARIANTS} alternatives")


def _too_large() -> GlobError:
    return GlobError(f"the glob's {{...}} groups multiply out to over {_MAX_EXPANDED} pieces")
