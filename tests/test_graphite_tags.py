"""Graphite tag queries in the query layer: expression matching against a plain model of
graphite-web's rules (hypothesis), the key index reads (narrowed by name=, bounded
otherwise), and seriesByTag/aliasByTags/groupByTags evaluated over a real in-memory store."""

from __future__ import annotations

import math
import re
from functools import partial

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_metrics.query import (
    FetchBudget,
    RenderContext,
    TagExpressionError,
    TagQuery,
    TagScanLimitError,
    TargetError,
    evaluate_targets,
    fetch_series,
    find_tagged,
    key_tags,
    tag_query_of,
)
from trio_metrics.storage import MetricStore

TAG_NAMES = ("name", "host", "dc", "job")
texts = st.text(alphabet="ab.:-", min_size=1, max_size=3)
# Regular expressions from a small alphabet, none starting with "^" (graphite-web's SQL
# and its filters read a leading "^" differently).
regexes = (
    st.lists(st.sampled_from(("a", "b", ".", "*", "|", "$", "[ab]", "+", ":")), max_size=4)
    .map("".join)
    .filter(lambda text: _compiles(text))
)


def _compiles(text: str) -> bool:
    try:
        re.compile(text)
    except re.error:
        return False
    return True


def model_matches(expressions: list[tuple[str, str, str]], tags: dict[str, str]) -> bool:
    """graphite-web's rules, written out plainly."""
    for tag, operator, spec in expressions:
        value = tags.get(tag, "")
        if operator == "=" and value != spec:
            return False
        if operator == "!=" and value == spec:
            return False
        if operator == "=~" and not re.match("^(" + spec + ")", value):
            return False
        if operator == "!=~" and re.match("^(" + spec + ")", value):
            return False
    return True


def model_valid(expressions: list[tuple[str, str, str]]) -> bool:
    return not model_matches(expressions, {}) or not expressions


expression = st.one_of(
    st.tuples(
        st.sampled_from(TAG_NAMES), st.sampled_from(("=", "!=")), st.one_of(st.just(""), texts)
    ),
    st.tuples(st.sampled_from(TAG_NAMES), st.sampled_from(("=~", "!=~")), regexes),
)
tag_sets = st.dictionaries(st.sampled_from(TAG_NAMES[1:]), texts, max_size=3)


def key_of(name: str, tags: dict[str, str]) -> str:
    return ";".join([name, *(f"{tag}={value}" for tag, value in sorted(tags.items()))])


@given(
    st.lists(expression, min_size=1, max_size=3),
    texts,
    st.dictionaries(st.sampled_from(TAG_NAMES[1:]), texts, min_size=1, max_size=3),
)
@settings(max_examples=400, deadline=None)
def test_expressions_match_as_graphite_rules_say(
    expressions: list[tuple[str, str, str]], name: str, tags: dict[str, str]
) -> None:
    texts_ = [tag + operator + spec for tag, operator, spec in expressions]
    if not model_valid(expressions):
        with pytest.raises(TagExpressionError):
            TagQuery.parse(texts_)
        return
    query = TagQuery.parse(texts_)
    key = key_of(name, tags)
    assert query.matches_key(key) == model_matches(expressions, {**tags, "name": name})
    assert not query.matches_key(name)  # a key without tags is no tagged series


@given(
    st.lists(expression, min_size=1, max_size=3),
    st.lists(st.tuples(st.sampled_from(("cpu", "cpu.x", "mem")), tag_sets), max_size=12),
)
@settings(max_examples=100, deadline=None)
async def test_the_key_index_read_finds_what_the_model_does(
    expressions: list[tuple[str, str, str]], series: list[tuple[str, dict[str, str]]]
) -> None:
    if not model_valid(expressions):
        return
    store = MetricStore()
    keys = sorted({key_of(name, tags) for name, tags in series if tags})
    plain = ["cpu", "cpu.a", "cpu;x", "mem.b;c"]
    await store.put_batch([*keys, *plain], [1.0] * (len(keys) + 4), [1] * (len(keys) + 4))
    query = TagQuery.parse([tag + operator + spec for tag, operator, spec in expressions])
    expected = [key for key in keys if model_matches(expressions, key_tags(key) or {})]
    assert await find_tagged(store, query) == expected


async def test_a_name_narrows_the_read_and_other_queries_are_bounded() -> None:
    store = MetricStore()
    others = [f"other{i:04};job=x" for i in range(3000)]
    await store.put_batch(others, [1.0] * 3000, [1] * 3000)
    await store.put_batch(["cpu;job=x", "cpu;job=y"], [1.0, 2.0], [1, 1])
    narrowed = TagQuery.parse(["name=cpu", "job=x"])
    assert await find_tagged(store, narrowed, max_keys=10) == ["cpu;job=x"]
    with pytest.raises(TagScanLimitError, match="over 1000 keys"):
        await find_tagged(store, TagQuery.parse(["job=y"]), max_keys=1000)
    assert await find_tagged(store, TagQuery.parse(["job=y"]), max_keys=5000) == ["cpu;job=y"]


def test_graphite_refuses_a_query_that_matches_everything() -> None:
    for texts_ in (["job="], ["job!=x"], ["job=~.*"], ["job!=~x"]):
        with pytest.raises(TagExpressionError, match="At least one tagspec"):
            TagQuery.parse(texts_)
    TagQuery.parse(["job!="])  # the tag must be present: matches no empty value


def test_a_bad_regex_is_a_clear_error() -> None:
    with pytest.raises(TagExpressionError, match="Invalid regular expression"):
        TagQuery.parse(["job=~a("])


def test_tag_query_of_reads_only_string_arguments() -> None:
    query = tag_query_of("seriesByTag('name=cpu', \"job=~x.*\")")
    assert [(e.tag, e.operator, e.spec) for e in query.expressions] == [
        ("name", "=", "cpu"),
        ("job", "=~", "x.*"),
    ]
    with pytest.raises(TargetError):
        tag_query_of("sumSeries(a.b)")


def test_tags_of_keys_as_graphite_parses_them() -> None:
    assert key_tags("node_load1;instance=a:9100;job=node") == {
        "instance": "a:9100",
        "job": "node",
        "name": "node_load1",
    }
    assert key_tags("a.b.c") is None
    assert key_tags("a;b") is None
    assert key_tags("m;t=~v") is None
    assert key_tags("~m;t=v") == {"t": "v", "name": "m"}


BASE = 1_700_000_000


async def tagged_store() -> MetricStore:
    store = MetricStore()
    series = {
        "load;dc=x;host=a": [1.0, 2.0, 3.0],
        "load;dc=x;host=b": [10.0, 20.0, 30.0],
        "load;dc=y;host=c": [100.0, 200.0, 300.0],
        "load.other;dc=x;host=a": [5.0, 5.0, 5.0],
        "load.plain": [7.0, 7.0, 7.0],
    }
    for key, values in series.items():
        await store.put_batch([key] * 3, values, [BASE, BASE + 10, BASE + 20])
    return store


async def render(
    store: MetricStore, target: str
) -> list[tuple[str, dict[str, str], str, list[float]]]:
    context = RenderContext(BASE, BASE + 30, BASE + 30)
    found = await evaluate_targets(
        [target], context, partial(fetch_series, store, budget=FetchBudget())
    )
    return [
        (
            s.name,
            dict(s.tags),
            s.path_expression,
            [v for v in s.values.tolist() if not math.isnan(v)],
        )
        for s in found
    ]


async def test_series_by_tag_names_series_by_key_with_their_tags() -> None:
    store = await tagged_store()
    target = "seriesByTag('name=load', 'host!=c')"
    assert await render(store, target) == [
        ("load;dc=x;host=a", {"dc": "x", "host": "a", "name": "load"}, target, [1.0, 2.0, 3.0]),
        ("load;dc=x;host=b", {"dc": "x", "host": "b", "name": "load"}, target, [10.0, 20.0, 30.0]),
    ]
    # A plain key fetched by a glob has graphite's tags of a plain name.
    assert (await render(store, "load.plain"))[0][1] == {"name": "load.plain"}


async def test_alias_by_tags_and_group_by_tags() -> None:
    store = await tagged_store()
    aliased = await render(store, "seriesByTag('dc=x')|aliasByTags('host', 'name')")
    assert [name for name, *_ in aliased] == ["a.load.other", "a.load", "b.load"]
    grouped = await render(store, "seriesByTag('name=load')|groupByTags('sum', 'dc')")
    assert [(name, tags, values) for name, tags, _, values in grouped] == [
        ("load;dc=x", {"dc": "x", "name": "load"}, [11.0, 22.0, 33.0]),
        ("load;dc=y", {"dc": "y", "name": "load"}, [100.0, 200.0, 300.0]),
    ]
    # Different names: the callback names the groups.
    mixed = await render(store, "seriesByTag('dc=x')|groupByTags('max', 'dc')")
    assert [(name, values) for name, _, _, values in mixed] == [("max;dc=x", [10.0, 20.0, 30.0])]


async def test_series_by_tag_errors_are_target_errors() -> None:
    store = await tagged_store()
    for target in ("seriesByTag('dc=')", "seriesByTag('bad')", "seriesByTag(1)", "seriesByTag()"):
        with pytest.raises(TargetError):
            await render(store, target)
