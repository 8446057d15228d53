"""Graphite-style globs: node by node, linear to compile, checked against a reference."""

from __future__ import annotations

import fnmatch
import itertools
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_metrics.wire import MAX_GLOB_BYTES, MAX_GLOB_VARIANTS, GlobError, compile_glob

KEYS = [
    "web.cpu",
    "web.mem",
    "Web.cpu",
    "db.cpu",
    "db.disk.sda",
    "web01.cpu",
    "web02.cpu",
    "web.cpu.user",
    "a..b",
    "solo",
    "x*y.z",
]


def matching(pattern: str) -> list[str]:
    glob = compile_glob(pattern)
    return [key for key in KEYS if glob.matches(key)]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("web.*", ["web.cpu", "web.mem"]),  # case-sensitive, and * stays in its node
        ("*.cpu", ["web.cpu", "Web.cpu", "db.cpu", "web01.cpu", "web02.cpu"]),
        ("*", ["solo"]),
        ("*.*", ["web.cpu", "web.mem", "Web.cpu", "db.cpu", "web01.cpu", "web02.cpu", "x*y.z"]),
        ("*.*.*", ["db.disk.sda", "web.cpu.user", "a..b"]),
        ("web??.cpu", ["web01.cpu", "web02.cpu"]),
        ("web0[2-9].cpu", ["web02.cpu"]),
        ("web0[!2].cpu", ["web01.cpu"]),
        ("[dW]*.cpu", ["Web.cpu", "db.cpu"]),
        ("{web,db}.cpu", ["web.cpu", "db.cpu"]),
        ("{web,db}.{cpu,disk}.*", ["db.disk.sda", "web.cpu.user"]),
        ("web{,01}.cpu", ["web.cpu", "web01.cpu"]),
        ("{w*,D*}.cpu", ["web.cpu", "web01.cpu", "web02.cpu"]),
        ("a.*.b", ["a..b"]),
        ("x[*]y.z", ["x*y.z"]),
        ("db.cpu", ["db.cpu"]),
        ("nothing*", []),
    ],
)
def test_documented_examples(pattern: str, expected: list[str]) -> None:
    assert matching(pattern) == expected


@pytest.mark.parametrize(
    ("pattern", "prefix"),
    [("web.*", "web."), ("db.cpu", "db.cpu"), ("*.cpu", ""), ("w?b", "w"), ("a.{b,c}", "a.")],
)
def test_the_literal_prefix(pattern: str, prefix: str) -> None:
    assert compile_glob(pattern).prefix == prefix


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("", "empty"),
        ("web.[a-", "no closing ']'"),
        ("[", "no closing ']'"),
        ("[a.b]", "'.' at offset 2 inside the '['"),
        ("[z-a]", "range z-a"),
        ("{a,b", "no closing '}'"),
        ("{a.b}", "'.' at offset 2 inside the '{'"),
        ("{a,{b}}", "'{' at offset 3 inside"),
        ("a}", "'}' at offset 1 closes no '{'"),
        ("{a,b}" * 9, f"over {MAX_GLOB_VARIANTS} alternatives"),
        ("{a,b}" * 8 + "x" * 10, "multiply out to over 4096 pieces"),
        ("{a,b}" * 7 + "." + "{a,b}" * 7 + ".{a,b}", f"over {MAX_GLOB_VARIANTS} alternatives"),
        ("x" * (MAX_GLOB_BYTES + 1), f"at most {MAX_GLOB_BYTES}"),
        ("é" * (MAX_GLOB_BYTES // 2 + 1), "bytes"),
    ],
)
def test_a_malformed_or_long_pattern_is_refused(pattern: str, message: str) -> None:
    with pytest.raises(GlobError, match=re.escape(message)):
        compile_glob(pattern)


def test_a_glob_error_is_a_value_error() -> None:
    assert issubclass(GlobError, ValueError)


def test_the_longest_pattern_compiles() -> None:
    compile_glob("x" * MAX_GLOB_BYTES)
    compile_glob("[]" + "a" * (MAX_GLOB_BYTES - 3) + "]")


# --- cost: compiling is linear, matching never backtracks ---------------------


def test_no_regular_expression_is_compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each pattern is new to a cache keyed by pattern, which would only grow."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a regular expression was compiled")

    monkeypatch.setattr(re, "compile", refuse)
    monkeypatch.setattr(re, "_compile", refuse)
    monkeypatch.setattr(fnmatch, "fnmatchcase", refuse)
    for number in range(50):
        glob = compile_glob(f"web{number}.[a-z]*.{{cpu,mem}}?")
        assert glob.matches(f"web{number}.x.cpu1")


def _seconds(work: object) -> float:
    started = time.perf_counter()
    assert callable(work)
    work()
    return time.perf_counter() - started


@pytest.mark.parametrize(
    "pattern",
    [
        "[" * MAX_GLOB_BYTES,  # malformed: refused after one pass
        "[[" * (MAX_GLOB_BYTES // 2 - 1) + "]",
        "*a" * (MAX_GLOB_BYTES // 2),
        "*[a]" * (MAX_GLOB_BYTES // 4),
        "{a,b}" * 8 + "x" * (MAX_GLOB_BYTES - 40),
        "{" + ",".join("a" * 3 for _ in range(MAX_GLOB_VARIANTS)) + "}",
    ],
)
def test_hostile_patterns_compile_and_match_quickly(pattern: str) -> None:
    key = "a" * 65_000 + "b"

    def work() -> None:
        try:
            glob = compile_glob(pattern[:MAX_GLOB_BYTES])
        except GlobError:
            return
        glob.matches(key)
        glob.matches("a" * 2000)

    assert _seconds(work) < 0.5


def test_a_star_piece_with_classes_is_found_in_one_pass() -> None:
    # A naive matcher tries all 65,000 places, each over 250 classes.
    glob = compile_glob("*" + "[a]" * 250 + "[b]*")
    key = "a" * 65_000
    assert _seconds(lambda: glob.matches(key)) < 0.5
    assert not glob.matches(key)
    assert glob.matches(key + "b")


# --- against a reference: fnmatch per node, braces multiplied out -------------


def _reference(pattern: str, key: str) -> bool:
    """Graphite's reading: braces expanded, then each node matched with fnmatch."""
    groups = re.split(r"(\{[^{}]*\})", pattern)
    choices = [g[1:-1].split(",") if g.startswith("{") else [g] for g in groups]
    for parts in itertools.product(*choices):
        nodes = "".join(parts).split(".")
        key_nodes = key.split(".")
        if len(nodes) == len(key_nodes) and all(
            fnmatch.fnmatchcase(k, p) for p, k in zip(nodes, key_nodes, strict=True)
        ):
            return True
    return False


_ALPHABET = "ab."
_node_piece = st.sampled_from(["a", "b", "*", "?", "[ab]", "[!a]", "[a-b]", "{a,b*}", "{,a}"])
_patterns = st.lists(st.lists(_node_piece, min_size=1, max_size=4), min_size=1, max_size=3).map(
    lambda nodes: ".".join("".join(node) for node in nodes)
)


@settings(max_examples=400, deadline=None)
@given(_patterns, st.lists(st.text(_ALPHABET, min_size=1, max_size=8), max_size=10))
def test_matches_like_the_reference(pattern: str, keys: list[str]) -> None:
    glob = compile_glob(pattern)
    for key in keys:
        assert glob.matches(key) == _reference(pattern, key), (pattern, key)
