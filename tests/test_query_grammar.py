"""Graphite target expressions: graphite-web's grammar, the expression tree, errors, bounds."""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_metrics.query import (
    MAX_ARGUMENTS,
    MAX_NESTING,
    MAX_TARGET_LENGTH,
    Boolean,
    Call,
    Expression,
    NoneLiteral,
    Number,
    PathExpression,
    String,
    TargetError,
    format_expression,
    parse_target,
)


def path(text: str) -> PathExpression:
    return PathExpression(text)


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("servers.web01.cpu", path("servers.web01.cpu")),
        ("servers.*.cpu", path("servers.*.cpu")),
        ("web0?.cpu.[a-z]*", path("web0?.cpu.[a-z]*")),
        ("servers.{web,db}0[1-3].cpu", path("servers.{web,db}0[1-3].cpu")),
        ("disk.used;host=a", path("disk.used;host=a")),
        ("a\\(b\\).c", path("a(b).c")),  # escaped symbols lose their backslash
        ("1.5", path("1.5")),  # a lone number is a path, as in graphite-web
        ("sumSeries(a.*)", Call("sumSeries", (path("a.*"),))),
        ("sumSeries( a.* , b.c )", Call("sumSeries", (path("a.*"), path("b.c")))),
        ("group()", Call("group")),
        ("constantLine(100)", Call("constantLine", (Number(100),))),
        ("scale(a.b,-2.5)", Call("scale", (path("a.b"), Number(-2.5)))),
        ("scale(a.b,1e3)", Call("scale", (path("a.b"), Number(1000.0)))),
        ("scale(a.b,2E-2)", Call("scale", (path("a.b"), Number(0.02)))),
        ("scale(a.b, 1e+5)", Call("scale", (path("a.b"), path("1e+5")))),  # no "+" exponent
        ("f(a.b,2x)", Call("f", (path("a.b"), path("2x")))),
        (
            "f(a, True, FALSE, none, inf)",
            Call("f", (path("a"), Boolean(True), Boolean(False), NoneLiteral(), Number(math.inf))),
        ),
        ('alias(a.b, "web \\"x\\"")', Call("alias", (path("a.b"), String('web \\"x\\"')))),
        ("alias(a.b, 'it''s')", Call("alias", (path("a.b"), String("it''s", "'")))),
        (
            "summarize(a.b, '1h', func='max', alignToFrom=true)",
            Call(
                "summarize",
                (path("a.b"), String("1h", "'")),
                (("func", String("max", "'")), ("alignToFrom", Boolean(True))),
            ),
        ),
        # The pipe form is the nested call with the piped value first.
        ("a.b|scale(2)", Call("scale", (path("a.b"), Number(2)))),
        (
            "a.b | scale(2) | alias('x')",
            Call("alias", (Call("scale", (path("a.b"), Number(2))), String("x", "'"))),
        ),
        ("f(a.b|g())", Call("f", (Call("g", (path("a.b"),)),))),
    ],
)
def test_targets_parse_to_their_tree(text: str, tree: Expression) -> None:
    assert parse_target(text) == tree


def test_grafana_wraps_every_target_in_aliassub_with_backslashes_kept() -> None:
    """Grafana >= 11.6 sends this; graphite keeps "\\1" as two characters, so that
    re.sub's group reference survives."""
    tree = parse_target('aliasSub(sumSeries(servers.*.cpu), "(^.*$)", "\\1 A")')
    assert tree == Call(
        "aliasSub",
        (
            Call("sumSeries", (path("servers.*.cpu"),)),
            String("(^.*$)"),
            String("\\1 A"),
        ),
    )
    assert isinstance(tree, Call)
    replacement = tree.args[2]
    assert isinstance(replacement, String)
    assert list(replacement.value) == ["\\", "1", " ", "A"]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("sumSeries(a.b", "Expected ')', found end of text (at char 13)"),
        ("sumSeries(a.b))", "Expected end of text, found ')' (at char 14)"),
        ("a.b foo", "found 'foo' (at char 4)"),
        ("f(true.x)", "Expected ')', found '.x)' (at char 6)"),
        ("f(a=1)", "found 'a=1)' (at char 2)"),  # keyword arguments only after a positional one
        ("f(a, b=1, c)", "found ', c)' (at char 8)"),
        ('f(a,"x)', "(at char 3)"),
        ("(a)", "(at char 0)"),
        ("a..b", "(at char 1)"),
    ],
)
def test_bad_targets_say_where_and_what_was_expected(text: str, where: str) -> None:
    with pytest.raises(TargetError) as raised:
        parse_target(text)
    assert where in str(raised.value)
    assert repr(text) in str(raised.value)


@pytest.mark.parametrize("text", ["", "   "])
def test_an_empty_target_is_an_error(text: str) -> None:
    with pytest.raises(TargetError, match="empty target"):
        parse_target(text)


def test_target_error_is_a_value_error() -> None:
    assert issubclass(TargetError, ValueError)


def test_nesting_is_bounded_before_parsing() -> None:
    deepest = "f(" * MAX_NESTING + "a" + ")" * MAX_NESTING
    assert isinstance(parse_target(deepest), Call)
    too_deep = "f(" * (MAX_NESTING + 1) + "a" + ")" * (MAX_NESTING + 1)
    with pytest.raises(TargetError, match="deeper than"):
        parse_target(too_deep)
    hostile = "f(" * 100_000
    with pytest.raises(TargetError):
        parse_target(hostile)
    pipes = "a" + "|f()" * (MAX_NESTING + 1)
    with pytest.raises(TargetError, match="deeper than"):
        parse_target(pipes)


def test_length_and_argument_count_are_bounded() -> None:
    with pytest.raises(TargetError, match="too long"):
        parse_target("a" * (MAX_TARGET_LENGTH + 1))
    with pytest.raises(TargetError, match="arguments"):
        parse_target("group(" + ",".join(["a"] * (MAX_ARGUMENTS + 1)) + ")")
    # Commas inside {} are one path, not arguments.
    many = "{" + ",".join(f"h{i}" for i in range(MAX_ARGUMENTS * 2)) + "}.cpu"
    assert parse_target(f"sumSeries({many})") == Call("sumSeries", (path(many),))


def test_the_worst_target_within_the_bounds_parses_quickly() -> None:
    """A hostile target costs well under a second, not seconds."""
    worst = "group(" + ",".join(["a"] * (MAX_ARGUMENTS - 2)) + ",)"
    began = time.perf_counter()
    with pytest.raises(TargetError):
        parse_target(worst)
    assert time.perf_counter() - began < 1.0


names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_-]{0,6}", fullmatch=True).filter(
    lambda n: n.lower() not in ("true", "false", "none", "inf")
)
paths = st.lists(names, min_size=1, max_size=4).map(".".join).map(PathExpression)
# pyparsing (in graphite-web too) reads a tab as spaces, so strings hold none here.
strings = st.tuples(
    st.text(st.characters(codec="ascii", exclude_characters="\"'\\\n\r\t"), max_size=8),
    st.sampled_from(["'", '"']),
).map(lambda t: String(*t))
numbers = st.one_of(
    st.integers(-(10**9), 10**9),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300),
    st.just(math.inf),
).map(Number)
literals = st.one_of(strings, numbers, st.booleans().map(Boolean), st.just(NoneLiteral()))
identifiers = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,8}", fullmatch=True)


def calls(children: st.SearchStrategy[Expression]) -> st.SearchStrategy[Expression]:
    series = st.one_of(paths, children)
    return st.builds(
        lambda name, first, rest, kwargs: Call(name, (first, *rest), tuple(kwargs)),
        identifiers,
        series,
        st.lists(st.one_of(literals, series), max_size=3),
        st.lists(st.tuples(identifiers, st.one_of(literals, series)), max_size=2),
    )


expressions = st.recursive(paths, lambda children: calls(children) | calls(children), max_leaves=8)


@settings(max_examples=100, deadline=None)
@given(expressions)
def test_glob_free_expressions_round_trip(expression: Expression) -> None:
    text = format_expression(expression)
    assert parse_target(text) == expression
    assert format_expression(parse_target(text)) == text


name_pieces = st.sampled_from(
    [
        "f(",
        "scale(",
        "g2(",
        "a.b",
        "web1.cpu",
        "x",
        "1.5",
        "2",
        "inf",
        "None",
        '"1h"',
        "'s'",
        ",",
        ", ",
        ")",
        " ",
        "=",
        "a=1",
        "{a,b}",
        "\\(",
        "|",
        "é",
        ".",
        '"',
        "e5",
    ]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(name_pieces, min_size=1, max_size=10).map("".join))
def test_first_path_of_a_name_reads_as_graphites_parser(name: str) -> None:
    """The regular-expression shortcut for common names agrees with the parser."""
    from trio_metrics.query._grammar import _first_path_parsed, first_path_expression

    assert first_path_expression(name) == _first_path_parsed(name)


@pytest.mark.parametrize(
    ("name", "first"),
    [
        ("perSecond(servers.web1.cpu)", "servers.web1.cpu"),
        ('movingAverage(scale(a.b.c,2),"5min")', "a.b.c"),
        ("f(a=1)", "f"),  # no call: graphite-web backtracks to the path before "("
        ("scale(1.5,2)", None),  # a number first: no path
        ("plain.name", "plain.name"),
    ],
)
def test_first_path_of_a_name(name: str, first: str | None) -> None:
    from trio_metrics.query._grammar import first_path_expression

    assert first_path_expression(name) == first
