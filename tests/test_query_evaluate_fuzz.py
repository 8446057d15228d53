"""Any expression built from the implemented functions, with any arguments, evaluates
and renders or fails with TargetError: never another exception (the HTTP layer's 400
versus 500)."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from query_data import END, START, MemoryFetch

from trio_metrics.query import (
    RenderContext,
    TargetError,
    evaluate_targets,
    function_index,
    render_datapoints,
)

NAMES = sorted(function_index())
PATHS = ["web1.cpu", "*.cpu", "web*.*", "db1.cpu", "nosuch.*", "{web1,db1}.cpu", "web[12].cpu"]
LITERALS = [
    "0",
    "1",
    "2",
    "-1",
    "3",
    "0.5",
    "-2.5",
    "1e3",
    "1e308",
    "-1e308",
    "1e-308",
    "inf",
    "true",
    "false",
    "None",
    '"1min"',
    '"30s"',
    '"-1h"',
    '"+10s"',
    '"0s"',
    '"1m"',
    '"abc"',
    '"sum"',
    '"avg"',
    '"max"',
    '"last"',
    '"median"',
    '"multiply"',
    '"sumSeries"',
    '"first"',
    '"(^.*$)"',
    '"\\1 A"',
    '"("',
    '"x"',
    "''",
]


def expressions() -> st.SearchStrategy[str]:
    def call(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        argument = st.one_of(children, st.sampled_from(LITERALS))
        return st.builds(
            lambda name, first, rest, keyword: f"{name}({','.join([first, *rest])}{keyword})",
            st.sampled_from(NAMES),
            st.one_of(children, st.sampled_from(LITERALS)),
            st.lists(argument, max_size=3),
            st.one_of(
                st.just(""),
                st.builds(
                    lambda key, value: f",{key}={value}",
                    st.sampled_from(["factor", "func", "xFilesFactor", "bogus", "resetEnd"]),
                    argument,
                ),
            ),
        )

    return st.recursive(st.sampled_from(PATHS), call, max_leaves=6)


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    targets=st.lists(expressions(), min_size=1, max_size=2),
    window=st.sampled_from([(START, END), (START - 55, END + 7), (START, START + 1)]),
    max_data_points=st.one_of(st.none(), st.integers(1, 12)),
    x_files_factor=st.sampled_from([0.0, 0.5, 1.0]),
    no_null_points=st.booleans(),
)
async def test_any_expression_evaluates_or_is_a_target_error(
    targets: list[str],
    window: tuple[int, int],
    max_data_points: int | None,
    x_files_factor: float,
    no_null_points: bool,
) -> None:
    context = RenderContext(window[0], window[1], window[1], max_data_points, x_files_factor)
    try:
        series = await evaluate_targets(targets, context, MemoryFetch())
    except TargetError:
        return
    for one in series:
        assert one.step > 0
        assert one.values.dtype.kind == "f"
    for rendered in render_datapoints(series, max_data_points, no_null_points):
        for value, stamp in rendered.datapoints:
            assert value is None or not math.isnan(value)
            assert isinstance(stamp, int)


@pytest.mark.parametrize(
    "target",
    [
        "movingAverage(movingAverage(movingAverage(web1.cpu,2),2),2)",
        "timeShift(movingAverage(timeShift(web1.cpu,'1min'),'30s'),'10s')",
    ],
)
async def test_nested_refetching_functions_evaluate(target: str) -> None:
    context = RenderContext(START, END, END)
    assert len(await evaluate_targets([target], context, MemoryFetch())) == 1


async def test_nesting_refetching_functions_is_bounded() -> None:
    """Each movingAverage evaluates its argument twice: 2**depth calls, stopped early."""
    target = "movingAverage(" * 20 + "web1.cpu" + ",1)" * 20
    with pytest.raises(TargetError, match="more than"):
        await evaluate_targets([target], RenderContext(START, END, END), MemoryFetch())
