"""Graphite target expressions: the grammar (pyparsing) and the expression tree.

The grammar follows graphite-web 1.1.8's, element by element, so that the
same text means the same thing: path expressions with globs, calls with
positional then keyword arguments, single- or double-quoted strings whose
backslashes are kept as they are (``"\\1 A"`` is the four characters
``\\1 A``), ints, floats, scientific numbers (only before ``,``, ``)`` or the
end), ``true``/``false``, ``None``, ``inf`` and the pipe form
``a.b|scale(2)``, which means ``scale(a.b,2)``.

Where we differ on purpose (docs/graphite.md lists it): text left over after
a complete expression is an error (graphite-web ignores it), paths may hold
any printable Unicode, ``template()`` is not supported, and the input's
length and nesting depth are bounded.
"""

from __future__ import annotations

import math
import re
import threading
from typing import Final

import attrs
import pyparsing as pp

__all__ = [
    "MAX_ARGUMENTS",
    "MAX_NESTING",
    "MAX_TARGET_LENGTH",
    "Boolean",
    "Call",
    "Expression",
    "NoneLiteral",
    "Number",
    "PathExpression",
    "String",
    "TargetError",
    "first_path_expression",
    "format_expression",
    "parse_target",
]

#: The longest target text we parse (Grafana's longest glob lists stay far below).
MAX_TARGET_LENGTH: Final = 20_000
#: The deepest nesting of calls (pipes included): a deeper one is refused before
#: parsing, so a hostile target cannot exhaust the stack.
MAX_NESTING: Final = 40
#: The most arguments, over all calls of one target.
MAX_ARGUMENTS: Final = 500


class TargetError(ValueError):
    """A target that cannot be evaluated: bad syntax, an unknown function or
    wrong arguments. The message says what, in graphite-web's words where it has them."""


@attrs.frozen
class PathExpression:
    """A metric path, globs and all, as written (``servers.*.cpu.{user,system}``)."""

    text: str


@attrs.frozen
class String:
    """A quoted string: ``value`` is the text between the quotes, backslashes kept."""

    value: str
    quote: str = '"'


@attrs.frozen
class Number:
    """An int (``5``), a float (``0.5``, ``1e3``) or ``inf``."""

    value: int | float


@attrs.frozen
class Boolean:
    """``true`` or ``false`` (any case)."""

    value: bool


@attrs.frozen
class NoneLiteral:
    """``None`` (any case)."""


@attrs.frozen
class Call:
    """``name(args..., key=value...)``; a pipe ``x|name(args)`` is ``name(x, args)``."""

    name: str
    args: tuple[Expression, ...] = ()
    kwargs: tuple[tuple[str, Expression], ...] = ()
    #: The call's text as written in the target (graphite's ``call.raw``: a
    #: ``seriesByTag`` call's series carry it as their pathExpression); empty
    #: for a call not parsed from text. Not part of equality.
    raw: str = attrs.field(default="", eq=False, repr=False)


Expression = PathExpression | String | Number | Boolean | NoneLiteral | Call


def _build_grammar() -> tuple[pp.ParserElement, pp.ParserElement]:
    expression = pp.Forward()

    int_text = r"-?\d+"
    float_text = r"-?\d+\.\d+"
    after_number = pp.FollowedBy(",") ^ pp.FollowedBy(")") ^ pp.FollowedBy(pp.LineEnd())
    scientific = pp.Combine(
        (pp.Regex(float_text) | pp.Regex(int_text)) + pp.CaselessLiteral("e") + pp.Regex(int_text)
    ).set_parse_action(lambda t: Number(float(t[0])))
    floating = pp.Regex(float_text).set_parse_action(lambda t: Number(float(t[0])))
    integer = pp.Regex(int_text).set_parse_action(lambda t: Number(int(t[0])))
    number = (scientific + after_number) | (floating + after_number) | (integer + after_number)

    boolean = (pp.CaselessKeyword("true") | pp.CaselessKeyword("false")).set_parse_action(
        lambda t: Boolean(t[0] == "true")
    )
    none = pp.CaselessKeyword("none").set_parse_action(lambda: NoneLiteral())
    infinity = pp.CaselessKeyword("inf").set_parse_action(lambda: Number(math.inf))
    # pyparsing's quoted string of graphite-web's time: any escape is kept as written.
    string = pp.Regex(
        r'"(?:[^"\n\r\\]|(?:"")|(?:\\(?:[^x]|x[0-9a-fA-F]+)))*"'
        r"|'(?:[^'\n\r\\]|(?:'')|(?:\\(?:[^x]|x[0-9a-fA-F]+)))*'"
    ).set_parse_action(lambda t: String(t[0][1:-1], t[0][0]))

    identifier = pp.Word(pp.alphas + "_", pp.alphanums + "_")
    left, right = pp.Suppress("("), pp.Suppress(")")
    comma, equal = pp.Suppress(","), pp.Suppress("=")

    arg = boolean | number | none | string | infinity | expression
    kwarg = pp.Group(identifier + equal + arg)
    args = pp.DelimitedList(~kwarg + arg)
    kwargs = pp.DelimitedList(kwarg)
    position = pp.Empty().set_parse_action(lambda s, loc, t: loc)
    call = (
        position("start")
        + identifier("name")
        + left
        # Once "name(" is read, only a call can follow: stop there with the
        # error's true position rather than backtracking to a path "name".
        - pp.Optional(pp.Group(args)("args") + pp.Optional(comma + pp.Group(kwargs)("kwargs")))
        + right
        + position.copy().leave_whitespace()("end")
    ).set_parse_action(_make_call)

    symbols = "(){},.'\"\\|"
    escaped = pp.Suppress("\\") + pp.Word(symbols + "=", exact=1)
    # Any printable character but the symbols (graphite's UTF8_METRICS set).
    plain = pp.Regex(r"[^\x00-\x20\x7f-\xa0\s(){},.'\"\\|]+")
    partial = pp.Combine(pp.OneOrMore(escaped | plain))
    enumeration = pp.Combine(
        pp.Literal("{") + pp.DelimitedList(partial, combine=True) + pp.Literal("}")
    )
    element = pp.Combine((partial | enumeration) + pp.ZeroOrMore(enumeration | partial))
    path = pp.DelimitedList(element, delim=".", combine=True).set_parse_action(
        lambda t: PathExpression(t[0])
    )

    piped = pp.Suppress("|") + call
    expression <<= ((call | path) + pp.ZeroOrMore(piped)).set_parse_action(_apply_pipes)
    return expression, path


def _make_call(text: str, loc: int, tokens: pp.ParseResults) -> Call:
    args = tuple(tokens["args"]) if "args" in tokens else ()
    kwargs = tuple((str(k[0]), k[1]) for k in tokens["kwargs"]) if "kwargs" in tokens else ()
    raw = text[tokens["start"] : tokens["end"]]
    return Call(str(tokens["name"]), args, kwargs, raw)


def _apply_pipes(tokens: pp.ParseResults) -> Expression:
    head: Expression = tokens[0]
    for call in tokens[1:]:
        head = Call(call.name, (head, *call.args), call.kwargs, call.raw)
    return head


_GRAMMAR, _PATH = _build_grammar()
# pyparsing's parser objects are not promised to be thread-safe (graphite-web
# locks its grammar too); a caller may parse in worker threads.
_GRAMMAR_LOCK: Final = threading.Lock()


def _shape(text: str) -> tuple[int, int]:
    """How deep calls nest (parentheses outside strings, plus pipes) and how many
    arguments there are (commas outside strings and ``{}``): each argument costs
    pyparsing about 0.3 ms, so both are bounded before parsing."""
    depth = deepest = braces = commas = 0
    quote = ""
    escaped = False
    for char in text:
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth -= 1
        elif char == "|":
            deepest += 1
        elif char == "{":
            braces += 1
        elif char == "}":
            braces -= 1
        elif char == "," and braces <= 0:
            commas += 1
    return deepest, commas


def parse_target(text: str) -> Expression:
    """Parse one target; :class:`TargetError` says where and what was expected."""
    if len(text) > MAX_TARGET_LENGTH:
        raise TargetError(
            f"target is too long: {len(text)} characters, at most {MAX_TARGET_LENGTH}"
        )
    if not text.strip():
        raise TargetError("empty target")
    depth, commas = _shape(text)
    if depth > MAX_NESTING:
        raise TargetError(f"target nests calls deeper than {MAX_NESTING} levels")
    if commas >= MAX_ARGUMENTS:
        raise TargetError(f"target has more than {MAX_ARGUMENTS} arguments in all")
    try:
        with _GRAMMAR_LOCK:
            result = _GRAMMAR.parse_string(text, parse_all=True)
    except pp.ParseBaseException as error:
        raise TargetError(
            f"invalid target {text!r}: {error.msg}, found {_found(text, error.loc)}"
            f" (at char {error.loc})"
        ) from None
    except RecursionError:
        raise TargetError(f"target nests calls deeper than {MAX_NESTING} levels") from None
    expression: Expression = result[0]
    return expression


def _found(text: str, loc: int) -> str:
    if loc >= len(text):
        return "end of text"
    return repr(text[loc : loc + 10])


_NAME_PART: Final = r"[^\x00-\x20\x7f-\xa0\s(){},.'\"\\|=]+"
_SIMPLE_PATH: Final = rf"{_NAME_PART}(?:\.{_NAME_PART})*"
_SIMPLE_ARGUMENT: Final = rf"(?:{_SIMPLE_PATH}|\"[^\"\\\n\r]*\"|'[^'\\\n\r]*')"
#: A name such as ``summarize(scale(a.b,2), "1h", "sum")``: calls, each with one
#: nested call or a path first and only paths, numbers and plain strings after it.
_SIMPLE_NAME: Final = re.compile(
    rf"(?P<calls>(?:[A-Za-z_]\w*\(\s*)+)(?P<path>{_SIMPLE_PATH})"
    rf"(?:\s*,\s*{_SIMPLE_ARGUMENT})*(?P<closing>(?:\s*\))+)\s*"
)
_LITERAL_PATH: Final = re.compile(r"-?\d+(\.\d+)?([eE]-?\d+)?|true|false|none|inf", re.IGNORECASE)


def first_path_expression(name: str) -> str | None:
    """The first metric path in a series name such as ``scale(a.b.c,2)`` (graphite's
    ``_getFirstPathExpression``: read as far as the grammar goes, then the first
    argument of each call down to a path)."""
    simple = _SIMPLE_NAME.fullmatch(name)
    if (
        simple
        and simple["calls"].count("(") == simple["closing"].count(")")
        and not _LITERAL_PATH.fullmatch(simple["path"])
    ):
        # The common shape, read without the parser (about a millisecond a name).
        return simple["path"]
    return _first_path_parsed(name)


def _first_path_parsed(name: str) -> str | None:
    try:
        with _GRAMMAR_LOCK:
            expression: Expression = _GRAMMAR.parse_string(name, parse_all=False)[0]
    except (pp.ParseBaseException, RecursionError):
        # graphite-web's grammar backtracks from a broken call to the path before
        # its parenthesis ("movingAverage(a b)" gives "movingAverage").
        try:
            with _GRAMMAR_LOCK:
                expression = _PATH.parse_string(name, parse_all=False)[0]
        except pp.ParseBaseException:
            return None
    while isinstance(expression, Call) and expression.args:
        expression = expression.args[0]
    return expression.text if isinstance(expression, PathExpression) else None


_PLAIN_FLOAT: Final = re.compile(r"-?\d+(\.\d+)?(e-?\d+)?")


def format_expression(expression: Expression) -> str:
    """The text of an expression, which :func:`parse_target` reads back as the same tree."""
    match expression:
        case PathExpression(text):
            return text
        case String(value, quote):
            return f"{quote}{value}{quote}"
        case Boolean(value):
            return "true" if value else "false"
        case NoneLiteral():
            return "None"
        case Number(value):
            return _format_number(value)
        case Call(name, args, kwargs):
            parts = [format_expression(arg) for arg in args]
            parts += [f"{key}={format_expression(value)}" for key, value in kwargs]
            return f"{name}({','.join(parts)})"
    raise TypeError(f"not an expression: {expression!r}")


def _format_number(value: int | float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value) and value > 0:
        return "inf"
    text = repr(value).replace("e+", "e")
    if not _PLAIN_FLOAT.fullmatch(text):
        raise ValueError(f"{value!r} has no spelling in a target")
    return text
