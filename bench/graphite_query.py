"""The Graphite query layer alone: sumSeries over 1,000 series of a day at 10 s.

    python bench/graphite_query.py                       # 1,000 x 8,640, 7 runs
    python bench/graphite_query.py --series 100 --repeat 3   # a quick look

Each run evaluates ``sumSeries(bench.*.cpu)`` (and, as Grafana sends it,
``aliasSub(sumSeries(bench.*.cpu), "(^.*$)", "\\1 A")``) through
``evaluate_targets`` and ``render_datapoints`` with ``maxDataPoints=100``:
parsing, argument checks, the sum and the consolidation, up to the points
the JSON answer lists. The fetch hands over series built beforehand (one
gap in 20 slots), so reading the store is not measured; the figures are the
median wall time of the runs, in milliseconds, and their median CPU time
(this process's; the two part when other programs share the cores).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import trio

from trio_metrics.query import RenderContext, TimeSeries, evaluate_targets, render_datapoints

STEP = 10
END = 1_700_000_000
TARGETS = {
    "sumSeries": "sumSeries(bench.*.cpu)",
    "grafana": 'aliasSub(sumSeries(bench.*.cpu), "(^.*$)", "\\1 A")',
}


def make_series(count: int, points: int) -> list[TimeSeries]:
    """``count`` series of ``points`` slots ending at END, one slot in 20 a gap."""
    generator = np.random.default_rng(1)
    start = END - points * STEP
    series = []
    for i in range(count):
        values = generator.normal(50.0, 10.0, points)
        values[generator.random(points) < 0.05] = np.nan
        series.append(TimeSeries(f"bench.host{i:04d}.cpu", start, STEP, values, "bench.*.cpu"))
    return series


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--points", type=int, default=8640)
    parser.add_argument("--max-data-points", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=7)
    options = parser.parse_args()

    stored = make_series(options.series, options.points)
    start = END - options.points * STEP
    context = RenderContext(start, END, END, options.max_data_points)

    async def fetch(path: str, first: int, last: int) -> list[TimeSeries]:
        return list(stored)

    async def one_run(target: str) -> tuple[float, float]:
        began, cpu = time.perf_counter(), time.process_time()
        series = await evaluate_targets([target], context, fetch)
        rendered = render_datapoints(series, options.max_data_points)
        elapsed = time.perf_counter() - began, time.process_time() - cpu
        assert len(rendered) == 1 and len(rendered[0].datapoints) <= options.max_data_points + 1
        return elapsed

    async def run_all() -> None:
        for label, target in TARGETS.items():
            await one_run(target)  # warm-up: imports, the grammar, the catalog
            runs = [await one_run(target) for _ in range(options.repeat)]
            times = [wall for wall, _ in runs]
            cpu = [used for _, used in runs]
            print(
                f"{label}: {options.series} series x {options.points} points,"
                f" maxDataPoints={options.max_data_points}:"
                f" median {statistics.median(times) * 1000:.1f} ms"
                f" (min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f},"
                f" CPU median {statistics.median(cpu) * 1000:.1f} ms, {options.repeat} runs)"
            )

    trio.run(run_all)


if __name__ == "__main__":
    main()
