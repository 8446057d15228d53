"""Our tag layer against graphite-web 1.1.8's own tag database (LocalDatabaseTagDB, run
in-process by Debian's Python in tests/graphite_tag_oracle.py): the same keys, the same
tag queries, listings and completions must give the same answers.

graphite-web is the oracle only for the keys carbon would tag into its database: keys
with tags whose metric does not start with ``~`` (carbon rewrites those). Our store
also holds plain keys and keys graphite cannot read as tagged, which no answer of ours
may include.
"""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import skip_or_fail
from graphite_web import GRAPHITE_WEB_MISSING, SYSTEM_PYTHON, graphite_web_installed, settings_text
from net import NETWORK_TIMEOUT

from trio_metrics.http._graphite_params import GraphiteInputError, GraphiteParams
from trio_metrics.http._graphite_tags import (
    autocomplete_tags,
    autocomplete_values,
    tag_details,
    tag_list,
)
from trio_metrics.query import TagExpressionError, TagQuery, find_tagged, series_tags
from trio_metrics.storage import MetricStore
from trio_metrics.wire import key_from_labels

ORACLE = Path(__file__).with_name("graphite_tag_oracle.py")
TAGS = ("host", "dc", "env", "job")
VALUES = ("a", "ab", "b", "a.b", "x:9100", "b-1", "c%20d", "aa")
NAMES = ("cpu", "mem", "disk.used", "cpu.x")
SPECS = ("", "a", "ab", "b", "a.*", ".*", "a|b", "[ab]", "b$", "^a", "x:9", "c%20d", ".+", "zz")


def tagged_keys(rng: random.Random) -> list[str]:
    keys = set()
    for _ in range(120):
        labels = [("__name__", rng.choice(NAMES))]
        labels += [(tag, rng.choice(VALUES)) for tag in TAGS if rng.random() < 0.6]
        keys.add(key_from_labels(labels))
    return sorted(keys)


def random_query(rng: random.Random) -> list[str]:
    return [
        rng.choice((*TAGS, "name", "nosuch"))
        + rng.choice(("=", "!=", "=~", "!=~"))
        + rng.choice((*SPECS, *VALUES, *NAMES))
        for _ in range(rng.randint(1, 3))
    ]


def oracle(tmp_path: Path, case: dict[str, Any]) -> Any:
    if not graphite_web_installed():
        skip_or_fail(GRAPHITE_WEB_MISSING)
    (tmp_path / "log").mkdir()
    (tmp_path / "oracle_settings.py").write_text(settings_text(tmp_path, "127.0.0.1:1"))
    done = subprocess.run(
        [str(SYSTEM_PYTHON), str(ORACLE)],
        input=json.dumps(case),
        capture_output=True,
        text=True,
        timeout=NETWORK_TIMEOUT * 6,
        check=False,
        cwd=tmp_path,
        env={
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HOME": str(tmp_path),
            "PYTHONPATH": str(tmp_path),
            "GRAPHITE_SETTINGS_MODULE": "oracle_settings",
            "DJANGO_SETTINGS_MODULE": "graphite.settings",
            "PYTHONDONTWRITEBYTECODE": "1",
        },
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout)


def body(response: Any) -> Any:
    assert response.status == 200, response.body
    return json.loads(response.body)


async def test_tag_layer_answers_as_graphite_web(tmp_path: Path) -> None:
    rng = random.Random(7)
    keys = tagged_keys(rng)
    queries = [random_query(rng) for _ in range(400)]
    queries += [["name=cpu"], ["name=disk.used", "host!=a"], ["dc=", "name=~c"], ["host="]]
    completions: list[dict[str, Any]] = []
    for _ in range(60):
        completion: dict[str, Any] = {
            "exprs": random_query(rng) if rng.random() < 0.7 else [],
            "prefix": rng.choice(("", "a", "h", "n", "x")),
            "limit": rng.choice((None, 1, 3)),
        }
        if rng.random() < 0.5:
            completion["tag"] = rng.choice((*TAGS, "name"))
        completions.append(completion)
    odd_names = [
        "a;b",
        ";x=1",
        "m;t=",
        "m;=v",
        "m;t=~v",
        "~~m;t=v",
        "~;t=v",
        "m;a!b=1",
        "plain.key",
    ]
    names = [*keys, *odd_names, "sum(m;t=v)", "m;b=2;a=1"]
    theirs = oracle(
        tmp_path,
        {"keys": keys, "names": names, "queries": queries, "completions": completions},
    )

    store = MetricStore()
    others = ["plain.key", "cpu", "cpu.x.y", "a;b", "cpu;=1", "~cpu;host=a", "cpu;host=~a"]
    await store.put_batch(
        [*keys, *others], [1.0] * (len(keys) + len(others)), [1] * (len(keys) + len(others))
    )

    assert [series_tags(name) for name in names] == theirs["names"]
    matched = 0
    for query, answer in zip(queries, theirs["series"], strict=True):
        try:
            ours = await find_tagged(store, TagQuery.parse(query))
        except TagExpressionError:
            assert "error" in answer, (query, answer)
            continue
        # "~cpu;host=a" is ours alone (carbon would store it as "cpu;host=a").
        assert set(ours) <= {*keys, "~cpu;host=a"}, query
        assert answer == {"ok": [key for key in ours if key in keys]}, query
        matched += bool(ours)
    assert matched > 50  # the queries do match something

    tilde = await find_tagged(store, TagQuery.parse(["name=cpu", "host=a"]))
    assert "~cpu;host=a" in tilde  # found by name= through the "~" keys too
    await store.delete(["~cpu;host=a"])  # the listings count the same keys as graphite-web
    listed = body(await tag_list(store, GraphiteParams({})))
    assert [entry["tag"] for entry in listed] == theirs["tags"]
    for tag, details in theirs["details"].items():
        assert body(await tag_details(store, tag, GraphiteParams({}))) == details, tag

    for completion, answer in zip(completions, theirs["completions"], strict=True):
        params = {"expr": completion["exprs"], "limit": [str(completion["limit"] or "")]}
        try:
            if "tag" in completion:
                params["tag"] = [completion["tag"]]
                params["valuePrefix"] = [completion["prefix"]]
                response = await autocomplete_values(store, GraphiteParams(params))
            else:
                params["tagPrefix"] = [completion["prefix"]]
                response = await autocomplete_tags(store, GraphiteParams(params))
        except GraphiteInputError:
            assert "error" in answer, (completion, answer)
            continue
        assert body(response) == answer["ok"], completion


@pytest.mark.parametrize("expression", ["name", "=x", "a;b=c", "a=b;c"])
def test_malformed_expressions_are_refused(expression: str) -> None:
    with pytest.raises(TagExpressionError):
        TagQuery.parse([expression])
