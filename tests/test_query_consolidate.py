"""maxDataPoints consolidation, as graphite-web's renderViewJson does it: hand-computed
cases, and a direct model of graphite-web's loop (written here, in plain Python over
lists with None) that hypothesis compares against."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_metrics.query import (
    RenderedSeries,
    TimeSeries,
    consolidate_values,
    render_datapoints,
    render_series,
)

NAN = math.nan


def series(
    values: Sequence[float | None],
    start: int = 1000,
    step: int = 10,
    name: str = "a.b",
    consolidation: str = "average",
    x_files_factor: float = 0.0,
) -> TimeSeries:
    array = np.array([NAN if v is None else v for v in values], dtype=np.float64)
    return TimeSeries(name, start, step, array, name, consolidation, x_files_factor)


def listed(values: np.ndarray) -> list[float | None]:
    return [None if math.isnan(v) else float(v) for v in values.tolist()]


GAPPY = np.array([1.0, NAN, 3.0, 4.0, NAN, NAN, 7.0])


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        ("average", [2.0, 4.0, 7.0]),
        ("avg", [2.0, 4.0, 7.0]),
        ("sum", [4.0, 4.0, 7.0]),
        ("min", [1.0, 4.0, 7.0]),
        ("max", [3.0, 4.0, 7.0]),
        ("first", [1.0, 4.0, 7.0]),
        ("last", [3.0, 4.0, 7.0]),
        # Gaps count as 0; the last, shorter run divides by its own length.
        ("avg_zero", [4 / 3, 4 / 3, 7.0]),
    ],
)
def test_runs_of_three(function: str, expected: list[float]) -> None:
    assert listed(consolidate_values(GAPPY, 3, function)) == expected


def test_x_files_factor_counts_values_against_the_full_run() -> None:
    # Runs: 2 of 3, 1 of 3, and the last run 1 value (of 3, not of 1).
    assert listed(consolidate_values(GAPPY, 3, "sum", 0.5)) == [4.0, None, None]
    assert listed(consolidate_values(GAPPY, 3, "sum", 0.3)) == [4.0, 4.0, 7.0]
    all_gaps = np.array([NAN, NAN, NAN, 5.0])
    assert listed(consolidate_values(all_gaps, 3, "sum")) == [None, 5.0]


def test_unknown_consolidation_is_refused() -> None:
    with pytest.raises(ValueError, match="Invalid consolidation function"):
        consolidate_values(GAPPY, 2, "median")


def test_max_data_points_nudges_the_start_as_graphite_web() -> None:
    """60 slots from t=1000 at 10 s, maxDataPoints 20: 3 slots a point, 30 s; the start
    moves by 30 + 1000 % 10 - 1000 % 30 = 20 s to 1020 and one slot (t=1000) is dropped,
    so each point is stamped one step after its first slot."""
    one = series([float(i) for i in range(60)])
    [rendered] = render_datapoints([one], max_data_points=20)
    expected: list[tuple[float | None, int]] = [(2.0 + 3 * k, 1020 + 30 * k) for k in range(19)]
    expected.append((58.5, 1590))
    assert rendered.datapoints == expected
    assert rendered == RenderedSeries("a.b", {"name": "a.b"}, expected)


def test_max_data_points_one_is_one_point_at_the_start() -> None:
    [rendered] = render_datapoints([series([1.0, None, 5.0, 6.0])], max_data_points=1)
    assert rendered.datapoints == [(4.0, 1000)]


def test_enough_max_data_points_change_nothing() -> None:
    one = series([1.0, None, 3.0])
    [rendered] = render_datapoints([one], max_data_points=3)
    assert rendered.datapoints == [(1.0, 1000), (None, 1010), (3.0, 1020)]
    [rendered] = render_datapoints([one])
    assert rendered.datapoints == [(1.0, 1000), (None, 1010), (3.0, 1020)]


def test_the_time_range_of_the_whole_answer_sets_points_per_value() -> None:
    """A short series is consolidated as much as the longest one: graphite-web divides
    the answer's whole time range, not the series' own, by its step."""
    short = series([1.0, 2.0, 3.0, 4.0], start=1000, name="short")
    long = series([0.0] * 40, start=1000, name="long")
    rendered = render_datapoints([short, long], max_data_points=10)
    # 400 s / 10 s = 40 points > 10: 4 slots a point; nudge 40 + 0 - 0 = 40, 3 slots
    # dropped; stamps run from the new start to the old end, inclusive.
    assert rendered[0].datapoints == [(4.0, 1040)]
    assert rendered[1].datapoints == [(0.0, 1040 + 40 * k) for k in range(10)]


def test_consolidate_by_sum_and_the_series_x_files_factor() -> None:
    one = series([1.0, 2.0, None, 4.0, None, None], consolidation="sum", x_files_factor=0.5)
    # 60 s range, 3 points: 2 a point; nudge = 20 + 0 - 1000 % 20 = 20; drop 1:
    # runs [2, -], [4, -], [-] (half a run must hold values).
    [rendered] = render_datapoints([one], max_data_points=3)
    assert rendered.datapoints == [(2.0, 1020), (4.0, 1040), (None, 1060)]


def test_no_null_points_leaves_out_gaps_and_empty_series() -> None:
    full = series([1.0, None, 3.0], name="full")
    empty = series([None, None, None], name="empty")
    rendered = render_datapoints([full, empty], no_null_points=True)
    assert [r.target for r in rendered] == ["full"]
    assert rendered[0].datapoints == [(1.0, 1000), (3.0, 1020)]


def test_no_slots_at_all_is_an_empty_answer() -> None:
    assert render_datapoints([series([]), series([], name="b")]) == []
    assert render_datapoints([series([]), series([1.0], name="b")])[0].datapoints == []


def test_max_data_points_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        render_datapoints([series([1.0, 2.0])], max_data_points=0)


# The model: graphite-web's TimeSeries.__consolidatingGenerator and the maxDataPoints
# branch of renderViewJson, transcribed over plain lists.
def model_consolidate(
    values: list[float | None], per_point: int, function: str, x_files_factor: float
) -> list[float | None]:
    functions: dict[str, Callable[[list[float]], float]] = {
        "sum": sum,
        "average": lambda usable: sum(usable) / len(usable),
        "avg_zero": lambda usable: sum(usable) / len(usable),
        "max": max,
        "min": min,
        "first": lambda usable: usable[0],
        "last": lambda usable: usable[-1],
    }
    apply = functions[function]
    out: list[float | None] = []
    buffer: list[float] = []
    seen = present = 0
    for value in values:
        seen += 1
        if value is not None:
            buffer.append(value)
            present += 1
        elif function == "avg_zero":
            buffer.append(0)
        if seen == per_point:
            good = present and present / per_point >= x_files_factor
            out.append(apply(buffer) if good else None)
            buffer, seen, present = [], 0, 0
    if seen:
        good = present and present / per_point >= x_files_factor
        out.append(apply(buffer) if good else None)
    return out


def model_render(
    items: list[tuple[int, int, list[float | None]]],
    max_data_points: int,
    function: str,
    x_files_factor: float,
) -> list[list[tuple[float | None, int]]]:
    start_all = min(start for start, _, _ in items)
    end_all = max(start + len(values) * step for start, step, values in items)
    answer = []
    for start, step, values in items:
        end = start + len(values) * step
        values = list(values)
        per_point = 1
        if max_data_points == 1:
            per_point = len(values)
        elif max_data_points < (end_all - start_all) / step:
            per_point = math.ceil((end_all - start_all) / step / max_data_points)
            seconds = int(per_point * step)
            nudge = seconds + (start % step) - (start % seconds)
            start += nudge
            for _ in range(1, int(nudge / step)):
                # graphite-web fails here (IndexError, a 500) when a short series runs
                # out of slots; trio-metrics gives it no points.
                if values:
                    del values[0]
        if per_point > 1:
            points = model_consolidate(values, per_point, function, x_files_factor)
        else:
            points = values
        stamps = range(start, end + 1, step * per_point)
        answer.append(list(zip(points, stamps, strict=False)))
    return answer


def close(got: Sequence[float | None], expected: Sequence[float | None]) -> bool:
    """Equal, gaps included, up to 1e-12 relative for values."""
    return len(got) == len(expected) and all(
        (a is None and b is None)
        or (a is not None and b is not None and math.isclose(a, b, rel_tol=1e-12))
        for a, b in zip(got, expected, strict=True)
    )


FUNCTIONS = ["sum", "average", "avg_zero", "max", "min", "first", "last"]
slot_values = st.one_of(st.none(), st.integers(-1000, 1000).map(float))


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(slot_values, max_size=60),
    per_point=st.integers(1, 12),
    function=st.sampled_from(FUNCTIONS),
    x_files_factor=st.sampled_from([0.0, 0.25, 0.5, 1.0]),
)
def test_consolidation_matches_the_direct_computation(
    values: list[float | None], per_point: int, function: str, x_files_factor: float
) -> None:
    array = np.array([NAN if v is None else v for v in values], dtype=np.float64)
    got = listed(consolidate_values(array, per_point, function, x_files_factor))
    expected = (
        model_consolidate(values, per_point, function, x_files_factor) if per_point > 1 else values
    )
    assert close(got, expected)


@settings(max_examples=300, deadline=None)
@given(
    items=st.lists(
        st.tuples(
            st.integers(0, 5000),
            st.sampled_from([1, 7, 10, 60]),
            st.lists(slot_values, min_size=1, max_size=80),
        ),
        min_size=1,
        max_size=3,
    ),
    max_data_points=st.integers(1, 50),
    function=st.sampled_from(FUNCTIONS),
    x_files_factor=st.sampled_from([0.0, 0.5, 1.0]),
)
def test_render_consolidation_matches_graphite_webs_loop(
    items: list[tuple[int, int, list[float | None]]],
    max_data_points: int,
    function: str,
    x_files_factor: float,
) -> None:
    all_series = [
        series(values, start, step, f"s{i}", function, x_files_factor)
        for i, (start, step, values) in enumerate(items)
    ]
    rendered = render_datapoints(all_series, max_data_points)
    expected = model_render(items, max_data_points, function, x_files_factor)
    got = [r.datapoints for r in rendered]
    assert [[t for _, t in points] for points in got] == [[t for _, t in p] for p in expected]
    for points, wanted in zip(got, expected, strict=True):
        assert close([v for v, _ in points], [v for v, _ in wanted])


def test_render_series_cuts_at_graphites_end_for_encoders_of_their_own() -> None:
    """A function may leave more values than its time range holds (graphite-web zips
    them with the stamps from start to end inclusive): render_series cuts them."""
    longer = attrs.evolve(series([1.0, 2.0, 3.0, 4.0, 5.0]), end_override=1020)
    [cut] = render_series([longer])
    assert (cut.start, cut.step, cut.end_override) == (1000, 10, None)
    assert cut.datapoints() == [(1.0, 1000), (2.0, 1010), (3.0, 1020)]
    assert render_series([series([]), series([], name="b")]) == []
    plain = series([1.0, None])
    assert render_series([plain]) == [plain]
