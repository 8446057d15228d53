"""The query layer against graphite-web 1.1.8's own evaluator: the same data, the same
targets, the same JSON answer (names, tags, timestamps; values within 1e-9 relative).

graphite-web runs in Debian's Python (tests/graphite_oracle.py) with its store
replaced by the in-memory data both sides share; everything else (the grammar,
the functions, renderViewJson's maxDataPoints) is graphite-web's. The cases are
a fixed list of every implemented function and a seeded random mix, kept clear
of the graphite-web failures that docs/graphite.md lists as differences.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
from pathlib import Path
from typing import Any

import graphite_oracle
import numpy as np
import pytest
import trio
from conftest import skip_or_fail

from trio_metrics.query import (
    RenderContext,
    TargetError,
    TimeSeries,
    evaluate_targets,
    render_datapoints,
)

SYSTEM_PYTHON = Path("/usr/bin/python3")
GRAPHITE = Path("/usr/lib/python3/dist-packages/graphite/render/functions.py")
ORACLE = Path(__file__).resolve().parent / "graphite_oracle.py"
START, END = 100_003, 103_603

FIXED = [
    "sumSeries(a.*.cpu)",
    "sum(a.*.cpu,b.h1.mem)",
    "averageSeries(a.*.cpu)",
    "avg(a.h1.*)",
    "maxSeries(a.*.mem)",
    "minSeries(b.*.mem)",
    "group(a.h1.cpu,b.h2.mem)",
    "sumSeries(a.h1.cpu,c.h1.cpu)",
    "averageSeries(a.*.cpu,c.*.cpu)",
    "alias(a.h1.cpu,'x y')",
    'aliasSub(a.*.cpu,"(^.*$)","\\1 A")',
    "aliasByNode(a.*.cpu,1)",
    "aliasByNode(scale(a.*.cpu,2),1,2)",
    "aliasByNode(a.h1.cpu,-1)",
    "constantLine(100)",
    "constantLine(1.5)",
    'aliasSub(constantLine(100),"(^.*$)","\\1 A")',
    "scale(a.h1.cpu,2)",
    "scale(a.h1.cpu,0.123456789)",
    "offset(a.h1.cpu,-5)",
    "transformNull(a.h1.cpu)",
    "transformNull(a.h1.cpu,-1)",
    "transformNull(a.h1.cpu,3,b.h1.cpu)",
    "keepLastValue(a.h1.cpu)",
    "keepLastValue(a.h1.cpu,1)",
    "derivative(a.h1.net)",
    "nonNegativeDerivative(a.h1.net)",
    "nonNegativeDerivative(a.*.cpu)",
    "perSecond(a.h1.net)",
    "perSecond(c.h1.net)",
    "nonNegativeDerivative(transformNull(a.h1.cpu),100)",
    'summarize(a.h1.cpu,"5min")',
    'summarize(a.h1.cpu,"5min","avg")',
    'summarize(a.h1.cpu,"7min","max",true)',
    'summarize(c.h1.cpu,"1h","last")',
    'summarize(a.h1.cpu,"1h","median")',
    'summarize(a.h1.cpu,"13min","multiply")',
    'summarize(a.h1.cpu,"13min","avg_zero")',
    'summarize(a.h1.cpu,"13min","stddev")',
    'summarize(a.h1.cpu,"13min","diff")',
    'summarize(a.h1.cpu,"13min","count")',
    "movingAverage(a.h1.cpu,5)",
    'movingAverage(a.h1.cpu,"5min")',
    'movingAverage(a.*.cpu,"7min",0.5)',
    "movingAverage(c.h1.cpu,3)",
    "movingAverage({a,c}.h1.cpu,3)",
    "movingAverage(derivative(a.h1.net),4)",
    'timeShift(a.h1.cpu,"1h")',
    'timeShift(a.h1.cpu,"-1d")',
    'timeShift(a.h1.cpu,"+30min",false)',
    'timeShift(sumSeries(a.*.cpu),"1d")',
    'consolidateBy(a.h1.cpu,"max")',
    'consolidateBy(a.h1.cpu,"sum")',
    'consolidateBy(a.h1.cpu,"first")',
    'consolidateBy(a.h1.cpu,"last")',
    'consolidateBy(a.h1.cpu,"min")',
    "divideSeries(a.*.cpu,a.h1.mem)",
    "divideSeries(a.h1.cpu,c.h1.mem)",
    "divideSeries(a.h1.cpu,x.y)",
    "asPercent(a.*.cpu)",
    "asPercent(a.*.cpu,a.h1.mem)",
    "asPercent(a.*.cpu,a.*.mem)",
    "asPercent(a.h1.cpu,1500)",
    "asPercent(a.*.*,None,1)",
    "asPercent(a.*.cpu,b.*.cpu,1)",
    "asPercent(a.{h1,h2}.cpu,a.{h1,h3}.cpu,1)",
    "asPercent({a,c}.h1.cpu,1000)",
    "groupByNode(a.*.*,2)",
    'groupByNode(a.*.*,1,"sum")',
    'groupByNode(a.*.*,1,"sumSeries")',
    'groupByNode(a.*.*,2,"maxSeries")',
    'groupByNode(a.*.*,2,"median")',
    'groupByNode(a.*.*,1,"avg")',
    'sumSeries(groupByNode(a.*.*,1,"avg"))',
    "sumSeries(derivative(a.*.net))",
    "sumSeries(alias(a.*.cpu,'q'))",
    "a.h1.cpu|scale(2)|alias('z')",
    "color(a.h1.cpu,'red')",
    "lineWidth(a.h1.cpu,2)",
    "dashed(a.h1.cpu)",
    "secondYAxis(a.h1.cpu)",
    "drawAsInfinite(a.h1.cpu)",
    "alpha(a.h1.cpu,0.5)",
    "stacked(a.*.cpu)",
    "a.*.cpu",
    "a.h[12].{cpu,mem}",
    "nosuch.*",
    "sumSeries(nosuch.*)",
    "perSecond(movingAverage(constantLine(2.5),3))",
    "absolute(offset(a.h1.cpu,-60))",
    "integral(a.h1.cpu)",
    "integral(c.*.cpu)",
    'exclude(a.*.*,"net")',
    'grep(a.*.*,"h[12]")',
    "removeEmptySeries(group(a.h1.cpu,divideSeries(a.h2.cpu,x.y)))",
    "removeEmptySeries(a.*.cpu,0.9)",
]

WINDOWS = ["3", "1", '"5min"', '"2min",0.5']
PATHS = ["a.*.cpu", "a.h1.cpu", "b.*.mem", "c.*.cpu", "a.h2.net", "{a,c}.h1.cpu", "a.*.*"]


def _random_target(chooser: random.Random, depth: int = 0) -> str:
    """A random nest of the functions, without the forms graphite-web fails on."""
    if depth > 3 or chooser.random() < 0.35:
        return chooser.choice(PATHS)

    def inner() -> str:
        return _random_target(chooser, depth + 1)

    forms = [
        lambda: f"sumSeries({inner()})",
        lambda: f"sum({inner()},{inner()})",
        lambda: f"averageSeries({inner()})",
        lambda: f"maxSeries({inner()})",
        lambda: f"minSeries({inner()})",
        lambda: f"group({inner()},{inner()})",
        lambda: f'aliasSub({inner()},"(^.*$)","\\1 A")',
        lambda: f"scale({inner()},{chooser.choice(['2', '-0.5', '1e3', '0'])})",
        lambda: f"offset({inner()},{chooser.choice(['2', '-0.5'])})",
        lambda: f"transformNull({inner()}{chooser.choice(['', ',-1'])})",
        lambda: f"keepLastValue({inner()}{chooser.choice(['', ',1', ',3'])})",
        lambda: f"derivative({inner()})",
        lambda: f"nonNegativeDerivative({inner()})",
        lambda: f"perSecond({inner()})",
        lambda: 'summarize({},"{}"{})'.format(
            inner(),
            chooser.choice(["1min", "5min", "7min", "1h"]),
            chooser.choice(["", ',"avg"', ',"max",true', ',"last"']),
        ),
        lambda: f"movingAverage({inner()},{chooser.choice(WINDOWS)})",
        lambda: f'timeShift({inner()},"{chooser.choice(["1h", "-30min", "+10min"])}")',
        lambda: f'consolidateBy({inner()},"{chooser.choice(["sum", "max", "min", "last"])}")',
        lambda: f"constantLine({chooser.choice(['1', '100', '2.5'])})",
        lambda: f"divideSeries({inner()},{chooser.choice(['a.h1.mem', 'c.h2.cpu', 'x.y'])})",
        lambda: f"asPercent({inner()}{chooser.choice(['', ',a.h1.cpu', ',1000', ',None,1'])})",
        lambda: "groupByNode({},{}{})".format(
            inner(), chooser.choice([0, 1, 2]), chooser.choice(["", ',"sum"', ',"maxSeries"'])
        ),
        lambda: f"stacked({inner()})",
    ]
    return chooser.choice(forms)()


def cases() -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = [
        {"targets": [target], "start": START, "end": END, "now": END, "mdp": mdp}
        for target in FIXED
        for mdp in (None, 7)
    ]
    result += [
        {"targets": [target], "start": START, "end": END, "now": END, "mdp": mdp}
        for target in FIXED[::4]
        for mdp in (100, 1)
    ]
    result.append(
        {
            "targets": ["a.h1.cpu", "constantLine(5)"],
            "start": START,
            "end": END,
            "now": END,
            "mdp": 50,
        }
    )
    result.append(
        {
            "targets": ["stacked(a.*.cpu)", "stacked(b.*.cpu)"],
            "start": START,
            "end": END,
            "now": END,
        }
    )
    chooser = random.Random(20261201)
    for _ in range(60):
        start = 100_000 + chooser.randint(0, 1000)
        end = start + chooser.choice([600, 3600, 7200])
        result.append(
            {
                "targets": [_random_target(chooser) for _ in range(chooser.choice([1, 1, 2]))],
                "start": start,
                "end": end,
                "now": end + chooser.randint(0, 100),
                "mdp": chooser.choice([None, 1, 2, 10, 100, 500]),
                "xff": chooser.choice([0.0, 0.0, 0.5, 1.0]),
                "nonull": chooser.random() < 0.2,
            }
        )
    return result


async def _fetch(path: str, start: int, end: int) -> list[TimeSeries]:
    return [
        TimeSeries(
            name, first, step, np.array([math.nan if v is None else v for v in values]), path
        )
        for name, first, _, step, values in graphite_oracle.fetch(path, start, end)
    ]


def ours(case: dict[str, Any]) -> dict[str, Any]:
    async def run() -> list[dict[str, Any]]:
        context = RenderContext(
            case["start"], case["end"], case["now"], case.get("mdp"), case.get("xff", 0.0)
        )
        series = await evaluate_targets(case["targets"], context, _fetch)
        return [
            {
                "target": r.target,
                "tags": dict(r.tags),
                "datapoints": [list(p) for p in r.datapoints],
            }
            for r in render_datapoints(series, case.get("mdp"), case.get("nonull", False))
        ]

    try:
        return {"ok": trio.run(run)}
    except TargetError as error:
        return {"error": f"TargetError: {error}"}


def _same_value(theirs: Any, mine: float | None) -> bool:
    if theirs is None or mine is None:
        return theirs is None and mine is None
    if isinstance(theirs, str):
        return float(theirs) == mine
    return bool(theirs == mine or math.isclose(theirs, mine, rel_tol=1e-9))


def differences(theirs: dict[str, Any], mine: dict[str, Any]) -> str | None:
    if "error" in theirs or "error" in mine:
        both = "error" in theirs and "error" in mine
        return None if both else f"graphite-web: {theirs}\ntrio-metrics: {mine}"[:2000]
    if [s["target"] for s in theirs["ok"]] != [s["target"] for s in mine["ok"]]:
        return (
            f"targets {[s['target'] for s in theirs['ok']]} != {[s['target'] for s in mine['ok']]}"
        )
    for a, b in zip(theirs["ok"], mine["ok"], strict=True):
        if a["tags"] != b["tags"]:
            return f"{a['target']}: tags {a['tags']} != {b['tags']}"
        if [t for _, t in a["datapoints"]] != [t for _, t in b["datapoints"]]:
            return f"{a['target']}: timestamps differ"
        for (v1, t), (v2, _) in zip(a["datapoints"], b["datapoints"], strict=True):
            if not _same_value(v1, v2):
                return f"{a['target']} at {t}: {v1} != {v2}"
    return None


def test_the_same_answers_as_graphite_web() -> None:
    if not SYSTEM_PYTHON.exists() or not GRAPHITE.exists():
        skip_or_fail("graphite-web is missing (Debian: apt-get install graphite-web)")
    all_cases = cases()
    done = subprocess.run(
        [str(SYSTEM_PYTHON), str(ORACLE)],
        input=json.dumps(all_cases),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answers = json.loads(done.stdout)
    assert sum("ok" in answer for answer in answers) > len(answers) * 0.9
    failures = []
    for case, theirs in zip(all_cases, answers, strict=True):
        problem = differences(theirs, ours(case))
        if problem:
            failures.append(f"{case}\n{problem}")
    assert not failures, f"{len(failures)} of {len(all_cases)} differ:\n" + "\n\n".join(
        failures[:5]
    )


@pytest.mark.parametrize("target", ["sumSeries(a.*.cpu)", "constantLine(100)"])
def test_the_oracle_data_reach_both_sides(target: str) -> None:
    """The shared data are not empty: a comparison of nothing proves nothing."""
    answer = ours({"targets": [target], "start": START, "end": END, "now": END})
    assert answer["ok"] and answer["ok"][0]["datapoints"]
    assert any(v is not None for v, _ in answer["ok"][0]["datapoints"])
