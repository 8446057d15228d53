"""Every Graphite function over hand-written series, with hand-computed names and values
(graphite-web 1.1.8's rules), and the argument errors."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from query_data import END, START, MemoryFetch, slots

from trio_metrics.query import (
    RenderContext,
    TargetError,
    TimeSeries,
    evaluate_targets,
    function_index,
    render_datapoints,
)
from trio_metrics.query._functions import FUNCTIONS

N = None


async def evaluate(target: str, x_files_factor: float = 0.0) -> list[TimeSeries]:
    context = RenderContext(START, END, END, x_files_factor=x_files_factor)
    return await evaluate_targets([target], context, MemoryFetch())


async def named(target: str, x_files_factor: float = 0.0) -> list[tuple[str, list[float | None]]]:
    return [(s.name, slots(s)) for s in await evaluate(target, x_files_factor)]


def approx(values: list[float | None]) -> list[object]:
    return [v if v is None else pytest.approx(v, rel=1e-12) for v in values]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("web1.cpu", [("web1.cpu", [1, 2, N, 4, 5, 6])]),
        (
            "*.cpu",
            [
                ("db1.cpu", [100, N, N, N, 500, 600]),
                ("web1.cpu", [1, 2, N, 4, 5, 6]),
                ("web2.cpu", [10, 20, 30, N, 50, 60]),
            ],
        ),
        ("sumSeries(web*.cpu)", [("sumSeries(web*.cpu)", [11, 22, 30, 4, 55, 66])]),
        ("sum(web*.cpu)", [("sumSeries(web*.cpu)", [11, 22, 30, 4, 55, 66])]),
        (
            "sumSeries(web1.cpu,db1.cpu)",
            [("sumSeries(web1.cpu,db1.cpu)", [101, 2, N, 4, 505, 606])],
        ),
        ("sumSeries(web1.cpu,web1.cpu)", [("sumSeries(web1.cpu)", [2, 4, N, 8, 10, 12])]),
        ("sumSeries(nosuch.*)", []),
        ("averageSeries(web*.cpu)", [("averageSeries(web*.cpu)", [5.5, 11, 30, 4, 27.5, 33])]),
        ("avg(web*.cpu)", [("averageSeries(web*.cpu)", [5.5, 11, 30, 4, 27.5, 33])]),
        ("maxSeries(*.cpu)", [("maxSeries(*.cpu)", [100, 20, 30, 4, 500, 600])]),
        ("minSeries(*.cpu)", [("minSeries(*.cpu)", [1, 2, 30, 4, 5, 6])]),
        (
            "group(web1.cpu,db1.cpu)",
            [("web1.cpu", [1, 2, N, 4, 5, 6]), ("db1.cpu", [100, N, N, N, 500, 600])],
        ),
        ("group()", []),
        ('alias(web*.cpu,"x")', [("x", [1, 2, N, 4, 5, 6]), ("x", [10, 20, 30, N, 50, 60])]),
        (
            'aliasSub(web*.cpu,"^web(\\d)","host\\1")',
            [("host1.cpu", [1, 2, N, 4, 5, 6]), ("host2.cpu", [10, 20, 30, N, 50, 60])],
        ),
        (
            "aliasByNode(web*.cpu,0)",
            [("web1", [1, 2, N, 4, 5, 6]), ("web2", [10, 20, 30, N, 50, 60])],
        ),
        ("aliasByNode(web1.cpu,1,0)", [("cpu.web1", [1, 2, N, 4, 5, 6])]),
        ("aliasByNode(web1.cpu,-1)", [("cpu", [1, 2, N, 4, 5, 6])]),
        ("aliasByNode(web1.cpu,5)", [("", [1, 2, N, 4, 5, 6])]),  # no node 5: a tag, absent
        ("aliasByNode(scale(web1.cpu,2),1)", [("cpu", [2, 4, N, 8, 10, 12])]),
        ("scale(web1.cpu,2)", [("scale(web1.cpu,2)", [2, 4, N, 8, 10, 12])]),
        (
            "scale(web1.cpu,0.1234567)",
            [
                (
                    "scale(web1.cpu,0.123457)",
                    approx([0.1234567, 0.2469134, N, 0.4938268, 0.6172835, 0.7407402]),
                )
            ],
        ),
        ("offset(web1.cpu,-1)", [("offset(web1.cpu,-1)", [0, 1, N, 3, 4, 5])]),
        ("transformNull(web1.cpu)", [("transformNull(web1.cpu,0)", [1, 2, 0, 4, 5, 6])]),
        (
            "transformNull(db1.cpu,-1,web2.cpu)",
            [("transformNull(db1.cpu,-1,referenceSeries)", [100, -1, -1, N, 500, 600])],
        ),
        ("keepLastValue(db1.cpu)", [("keepLastValue(db1.cpu)", [100, 100, 100, 100, 500, 600])]),
        ("keepLastValue(db1.cpu,2)", [("keepLastValue(db1.cpu)", [100, N, N, N, 500, 600])]),
        ("keepLastValue(db1.cpu,3)", [("keepLastValue(db1.cpu)", [100, 100, 100, 100, 500, 600])]),
        ("derivative(web1.requests)", [("derivative(web1.requests)", [N, 10, 15, N, N, -145])]),
        (
            "nonNegativeDerivative(web1.requests)",
            [("nonNegativeDerivative(web1.requests)", [N, 10, 15, N, N, N])],
        ),
        # Wrapped at 200: 200 + 1 + 5 - 150.
        (
            "nonNegativeDerivative(web1.requests,200)",
            [("nonNegativeDerivative(web1.requests)", [N, 10, 15, N, N, 56])],
        ),
        # Wrapped to a minimum of 2: 5 - 2.
        (
            "nonNegativeDerivative(web1.requests,None,2)",
            [("nonNegativeDerivative(web1.requests)", [N, 10, 15, N, N, 3])],
        ),
        # Above the maximum of 120: a gap, and no base for the next slot.
        (
            "nonNegativeDerivative(web1.requests,120)",
            [("nonNegativeDerivative(web1.requests)", [N, 10, N, N, N, N])],
        ),
        ("perSecond(web1.requests)", [("perSecond(web1.requests)", [N, 1.0, 1.5, N, N, N])]),
        ('summarize(web1.cpu,"20s")', [('summarize(web1.cpu, "20s", "sum")', [3, 4, 11, N])]),
        (
            'summarize(web1.cpu,"20s","avg",true)',
            [('summarize(web1.cpu, "20s", "avg", true)', [1.5, 4, 5.5])],
        ),
        # Buckets on multiples of the interval: 990, 1020, 1050 (end 1060 rounds up to 1080).
        ('summarize(web2.cpu,"30s","max")', [('summarize(web2.cpu, "30s", "max")', [20, 50, 60])]),
        # Buckets 960 and 1020.
        ('summarize(web1.cpu,"1min","last")', [('summarize(web1.cpu, "1min", "last")', [2, 6])]),
        ("movingAverage(web1.cpu,2)", [("movingAverage(web1.cpu,2)", [-1.5, 0, 1.5, 2, 4, 4.5])]),
        (
            'movingAverage(web1.cpu,"30s")',
            [('movingAverage(web1.cpu,"30s")', approx([-2, -2 / 3, 2 / 3, 1.5, 3, 4.5]))],
        ),
        (
            'movingAverage(web1.cpu,"30s",1)',
            [('movingAverage(web1.cpu,"30s")', approx([-2, -2 / 3, 2 / 3, N, N, N]))],
        ),
        (
            'timeShift(web1.cpu,"1min")',
            [('timeShift(web1.cpu, "-1min")', [-6, -5, -4, -3, -2, -1])],
        ),
        ('timeShift(web1.cpu,"+1min")', [('timeShift(web1.cpu, "+1min")', [6, 7, 8, 9, 10, 11])]),
        ('consolidateBy(web1.cpu,"max")', [('consolidateBy(web1.cpu,"max")', [1, 2, N, 4, 5, 6])]),
        (
            "divideSeries(web*.cpu,db1.cpu)",
            [
                ("divideSeries(web1.cpu,db1.cpu)", [0.01, N, N, N, 0.01, 0.01]),
                ("divideSeries(web2.cpu,db1.cpu)", [0.1, N, N, N, 0.1, 0.1]),
            ],
        ),
        # A zero divisor gives a gap.
        (
            "divideSeries(web2.cpu,offset(web1.cpu,-1))",
            [("divideSeries(web2.cpu,offset(web1.cpu,-1))", [N, 20, N, N, 12.5, 12])],
        ),
        ("divideSeries(web1.cpu,nosuch.x)", [("divideSeries(web1.cpu,MISSING)", [N] * 6)]),
        (
            "asPercent(web*.cpu)",
            [
                (
                    "asPercent(web1.cpu,sumSeries(web*.cpu))",
                    approx([100 / 11, 100 / 11, N, 100, 100 / 11, 100 / 11]),
                ),
                (
                    "asPercent(web2.cpu,sumSeries(web*.cpu))",
                    approx([1000 / 11, 2000 / 22, 100, N, 5000 / 55, 6000 / 66]),
                ),
            ],
        ),
        ("asPercent(web1.cpu,50)", [("asPercent(web1.cpu,50)", [2, 4, N, 8, 10, 12])]),
        ("asPercent(web1.cpu,db1.cpu)", [("asPercent(web1.cpu,db1.cpu)", [1, N, N, N, 1, 1])]),
        (
            "asPercent(web*.cpu,None,0)",
            [
                ("asPercent(web1.cpu,web1.cpu)", [100, 100, N, 100, 100, 100]),
                ("asPercent(web2.cpu,web2.cpu)", [100, 100, 100, N, 100, 100]),
            ],
        ),
        ('groupByNode(*.cpu,1,"sum")', [("cpu", [111, 22, 30, 4, 555, 666])]),
        ('groupByNode(*.cpu,1,"maxSeries")', [("cpu", [100, 20, 30, 4, 500, 600])]),
        (
            "groupByNode(web*.*,0)",
            [("web1", [50.5, 56, 125, 4, 77.5, 5.5]), ("web2", [10, 20, 30, N, 50, 60])],
        ),
        (
            'groupByNode(*.cpu,0,"median")',
            [
                ("db1", [100, N, N, N, 500, 600]),
                ("web1", [1, 2, N, 4, 5, 6]),
                ("web2", [10, 20, 30, N, 50, 60]),
            ],
        ),
        ("absolute(offset(web1.cpu,-3))", [("absolute(offset(web1.cpu,-3))", [2, 1, N, 1, 2, 3])]),
        ("integral(web1.cpu)", [("integral(web1.cpu)", [1, 3, N, 7, 12, 18])]),
        ('exclude(*.cpu,"web")', [("db1.cpu", [100, N, N, N, 500, 600])]),
        (
            'grep(*.cpu,"^web")',
            [("web1.cpu", [1, 2, N, 4, 5, 6]), ("web2.cpu", [10, 20, 30, N, 50, 60])],
        ),
        (
            "removeEmptySeries(group(db1.cpu,divideSeries(web1.cpu,nosuch.x)))",
            [("db1.cpu", [100, N, N, N, 500, 600])],
        ),
        # Valued slots: db1 3 of 6, web1 and web2 5 of 6.
        (
            "removeEmptySeries(*.cpu,0.7)",
            [("web1.cpu", [1, 2, N, 4, 5, 6]), ("web2.cpu", [10, 20, 30, N, 50, 60])],
        ),
        ('color(web1.cpu,"red")', [("web1.cpu", [1, 2, N, 4, 5, 6])]),
        ("lineWidth(web1.cpu,3)", [("web1.cpu", [1, 2, N, 4, 5, 6])]),
        ("alpha(web1.cpu,0.5)", [("web1.cpu", [1, 2, N, 4, 5, 6])]),
        ("cactiStyle(web1.cpu)", [("web1.cpu", [1, 2, N, 4, 5, 6])]),
        ('legendValue(web1.cpu,"avg")', [("web1.cpu", [1, 2, N, 4, 5, 6])]),
        ("dashed(web1.cpu)", [("dashed(web1.cpu, 5)", [1, 2, N, 4, 5, 6])]),
        ("secondYAxis(web1.cpu)", [("secondYAxis(web1.cpu)", [1, 2, N, 4, 5, 6])]),
        ("drawAsInfinite(web1.cpu)", [("drawAsInfinite(web1.cpu)", [1, 2, N, 4, 5, 6])]),
        (
            "stacked(web*.cpu)",
            [
                ("stacked(web1.cpu)", [1, 2, N, 4, 5, 6]),
                ("stacked(web2.cpu)", [11, 22, 30, N, 55, 66]),
            ],
        ),
        ('web1.cpu|scale(2)|alias("x")', [("x", [2, 4, N, 8, 10, 12])]),
        (
            "sumSeries(derivative(web*.cpu))",
            [("sumSeries(derivative(web1.cpu),derivative(web2.cpu))", [N, 11, 10, N, 1, 11])],
        ),
        ('sumSeries(alias(web*.cpu,"q"))', [("sumSeries(web*.cpu)", [11, 22, 30, 4, 55, 66])]),
        (
            'sumSeries(groupByNode(*.cpu,1,"sum"))',
            [("sumSeries(sumSeries(*.cpu))", [111, 22, 30, 4, 555, 666])],
        ),
    ],
)
async def test_function(target: str, expected: list[tuple[str, list[object]]]) -> None:
    assert await named(target) == expected


async def test_sum_of_one_series_keeps_its_name_tag_and_marks_the_aggregation() -> None:
    [total] = await evaluate("sumSeries(web*.cpu)")
    assert total.tags == {"name": "sumSeries(web*.cpu)", "aggregatedBy": "sum"}
    assert total.path_expression == "sumSeries(web*.cpu)"
    [single] = await evaluate("sumSeries(web1.cpu)")
    assert single.tags == {"name": "web1.cpu", "aggregatedBy": "sum"}


async def test_functions_add_their_tags_as_text() -> None:
    [scaled] = await evaluate("scale(web1.cpu,2)")
    assert scaled.tags == {"name": "web1.cpu", "scale": "2.0"}
    [summed] = await evaluate('summarize(web1.cpu,"20s","max")')
    assert summed.tags == {"name": "web1.cpu", "summarize": "20s", "summarizeFunction": "max"}


async def test_x_files_factor_of_the_request_applies_to_aggregation_and_summarize() -> None:
    # Values per slot: 3, 2, 1, 1, 3, 3 of 3.
    assert await named("sumSeries(*.cpu)", x_files_factor=0.5) == [
        ("sumSeries(*.cpu)", [111, 22, N, N, 555, 666])
    ]
    assert await named('summarize(web1.cpu,"20s","sum",true)', x_files_factor=0.75) == [
        ('summarize(web1.cpu, "20s", "sum", true)', [3, N, 11])
    ]


async def test_constant_line_spans_the_request_in_three_points() -> None:
    """Grafana's health check: constantLine(100)."""
    [line] = await evaluate("constantLine(100)")
    assert (line.name, line.path_expression) == ("100.0", "constantLine(100.0)")
    [rendered] = render_datapoints([line], max_data_points=1000)
    assert rendered.datapoints == [(100.0, 1000), (100.0, 1030), (100.0, 1060)]


async def test_grafana_alias_sub_wrapping_keeps_the_name_as_group_one() -> None:
    assert await named('aliasSub(sumSeries(web*.cpu), "(^.*$)", "\\1 A")') == [
        ("sumSeries(web*.cpu) A", [11, 22, 30, 4, 55, 66])
    ]
    assert [s.name for s in await evaluate('aliasSub(constantLine(100), "(^.*$)", "\\1 A")')] == [
        "100.0 A"
    ]


async def test_consolidate_by_chooses_the_max_data_points_function() -> None:
    series = await evaluate('consolidateBy(web1.cpu,"max")')
    # 6 slots into 2 points: 3 a point, the start nudged to 1020 and one slot dropped.
    [rendered] = render_datapoints(series, max_data_points=2)
    assert rendered.datapoints == [(4.0, 1020), (6.0, 1050)]
    [plain] = render_datapoints(await evaluate("web1.cpu"), max_data_points=2)
    assert plain.datapoints == [(3.0, 1020), (5.5, 1050)]


async def test_moving_average_and_time_shift_fetch_the_window_they_need() -> None:
    fetch = MemoryFetch()
    context = RenderContext(START, END, END)
    await evaluate_targets(['movingAverage(web1.cpu,"30s")'], context, fetch)
    assert fetch.calls == [("web1.cpu", 1000, 1060), ("web1.cpu", 970, 1060)]
    fetch = MemoryFetch()
    await evaluate_targets(['timeShift(web1.cpu,"1h")'], context, fetch)
    assert fetch.calls == [("web1.cpu", 1000, 1060), ("web1.cpu", -2600, -2540)]
    fetch = MemoryFetch()
    await evaluate_targets(["sumSeries(web1.cpu)", "web1.cpu"], context, fetch)
    assert fetch.calls == [("web1.cpu", 1000, 1060)]  # one read per path and window


async def test_time_shift_starts_at_the_request() -> None:
    [shifted] = await evaluate('timeShift(web1.cpu,"1min")')
    assert (shifted.start, shifted.step) == (1000, 10)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nope(web1.cpu)", "Received request for unknown function: nope"),
        ("scale(web1.cpu)", 'Missing required parameter "factor" for function "scale"'),
        ('scale(web1.cpu,"x")', 'Invalid "float" value specified for function "scale"'),
        ("scale(web1.cpu,2,3)", 'Too many parameters specified for function "scale"'),
        ("scale(web1.cpu,2,bogus=1)", "Too many parameters"),
        ("scale(web1.cpu,factor=2,bogus=1)", "Too many parameters"),
        ("alias(web1.cpu,newName='x',other=1)", "Too many parameters"),
        ("keepLastValue(web1.cpu,2.5)", 'Invalid "intOrInf" value'),
        ('consolidateBy(web1.cpu,"median")', "Invalid option specified"),
        ('summarize(web1.cpu,"1m")', 'Invalid "interval" value'),
        ('summarize(web1.cpu,"-1h")', "must be positive"),
        ('summarize(web1.cpu,"1h","bogus")', "Invalid option specified"),
        ("movingAverage(web1.cpu,-1)", "must not be negative"),
        ("alias(web1.cpu,5)", 'Invalid "string" value'),
        ("scale(1,2)", 'Invalid "seriesList" value'),
        ('aliasSub(web1.cpu,"(","x")', "invalid regular expression"),
        ('aliasSub(web1.cpu,"a","\\2")', "invalid regular expression or replacement"),
        ("divideSeries(web1.cpu,*.cpu)", "must reference exactly 1 series (got 3)"),
        ("asPercent(web*.cpu,*.cpu)", "same number of series"),
        ('asPercent(web*.cpu,"x")', "total must be"),
        ('groupByNode(*.cpu,1,"nope")', "Invalid option specified"),
        ('exclude(web1.cpu,"(")', "invalid regular expression"),
        ("sumSeries(web1.cpu", "Expected ')'"),
    ],
)
async def test_wrong_targets_are_target_errors(target: str, message: str) -> None:
    with pytest.raises(TargetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        await evaluate(target)


async def test_keyword_arguments_bind_by_graphite_name() -> None:
    assert await named("scale(web1.cpu,factor=3)") == [("scale(web1.cpu,3)", [3, 6, N, 12, 15, 18])]
    assert await named('summarize(web1.cpu,"20s",alignToFrom=true,func="min")') == [
        ('summarize(web1.cpu, "20s", "min", true)', [1, 4, 5])
    ]


async def test_blank_targets_are_skipped_and_targets_keep_their_order() -> None:
    context = RenderContext(START, END, END)
    series = await evaluate_targets(["db1.cpu", " ", "web1.cpu"], context, MemoryFetch())
    assert [s.name for s in series] == ["db1.cpu", "web1.cpu"]


def test_function_index_is_graphite_webs_description_of_what_we_implement() -> None:
    index = function_index()
    assert set(index) == set(FUNCTIONS)
    for name, entry in index.items():
        assert set(entry) == {"name", "function", "description", "module", "group", "params"}
        assert entry["name"] == name
        assert entry["function"].startswith(name + "(")
    assert index["sumSeries"]["group"] == "Combine"
    assert index["sumSeries"]["params"] == [
        {"name": "seriesLists", "type": "seriesList", "required": True, "multiple": True}
    ]
    assert index["movingAverage"]["function"] == (
        "movingAverage(seriesList, windowSize, xFilesFactor=None)"
    )
    assert index["keepLastValue"]["params"][1] == {
        "name": "limit",
        "type": "intOrInf",
        "default": math.inf,
    }
    for required in (
        "alias",
        "aliasSub",
        "aliasByNode",
        "constantLine",
        "sum",
        "avg",
        "group",
        "groupByNode",
        "asPercent",
        "divideSeries",
        "timeShift",
        "perSecond",
    ):
        assert required in index


def test_the_catalog_generator_lists_exactly_the_implemented_functions() -> None:
    script = Path(__file__).resolve().parent.parent / "docs" / "make_graphite_functions.py"
    spec = importlib.util.spec_from_file_location("make_graphite_functions", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert sorted(module.NAMES) == sorted(FUNCTIONS)


def test_per_second_rounds_to_six_decimals_as_pythons_round() -> None:
    """graphite-web rounds each rate with Python's round(x, 6); the fast path must
    give the same double, ties and huge values included."""
    from trio_metrics.query._functions_transform import _round6

    tricky = [k / 1e6 + 5e-7 for k in range(-2000, 2000)]
    tricky += [0.0000005, 2.5e-7, 1.0000005, 0.1234565, 3 / 7, 1e20, -1e15, 123456.7890125]
    tricky += [x / 10 for x in range(-1000, 1000)]
    rounded = _round6(np.array(tricky))
    assert rounded.tolist() == [round(value, 6) for value in tricky]
    assert np.isnan(_round6(np.array([math.nan]))[0])


async def test_overflow_is_infinity_and_zero_over_zero_a_gap_without_warnings() -> None:
    """Warnings are errors in this test run: numpy must stay quiet, as graphite's floats do."""
    assert await named("scale(web1.cpu,1e308)|scale(10)") == [
        ("scale(scale(web1.cpu,1e+308),10)", [math.inf, math.inf, N, math.inf, math.inf, math.inf])
    ]
    assert await named("divideSeries(scale(web1.cpu,0),scale(web1.cpu,0))") == [
        ("divideSeries(scale(web1.cpu,0),scale(web1.cpu,0))", [N] * 6)
    ]
    series = await evaluate('summarize(scale(web1.cpu,1e308),"20s","stddev")')
    assert [r.datapoints for r in render_datapoints(series, max_data_points=1)] == [[(None, 1000)]]
