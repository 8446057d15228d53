"""graphite-web's own evaluator as an oracle for the query layer, run by Debian's Python.

    /usr/bin/python3 tests/graphite_oracle.py < cases.json > answers.json

Each case (``{"targets", "start", "end", "now", "mdp", "xff", "nonull"}``) goes
through graphite-web 1.1.8's ``evaluateTarget`` and ``renderViewJson``, exactly
as its render view calls them. Only its store is replaced: the data come from
``fetch`` below (whisper's alignment: slots from the first step boundary after
``start``), which the test gives trio-metrics too. This module uses only the
standard library outside ``main``, so the venv's tests import it for the data.
"""

from __future__ import annotations

import json
import math
import re
import sys
import zlib
from typing import Any

#: Steps per top node: "a" and "b" at 10 s, "c" at 60 s (mixed steps are combined).
STEPS = {"a": 10, "b": 10, "c": 60}
NAMES = [
    f"{top}.{host}.{metric}"
    for top in ("a", "b", "c")
    for host in ("h1", "h2", "h3")
    for metric in ("cpu", "mem", "net")
]


def value(name: str, stamp: int) -> float | None:
    """A gap one slot in 7; ``*.net`` a counter; the others noise around a level."""
    mixed = zlib.crc32(f"{name}:{stamp}".encode())
    if mixed % 7 == 0:
        return None
    level = zlib.crc32(name.encode()) % 100
    if name.endswith("net"):
        return float(stamp // 10 * 3 + level)
    return float(level + (mixed % 1000) / 10.0 - 50)


def _glob(pattern: str) -> re.Pattern[str]:
    parts = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            parts.append("[^.]*")
        elif char == "?":
            parts.append("[^.]")
        elif char == "[":
            close = pattern.index("]", i)
            parts.append(pattern[i : close + 1])
            i = close
        elif char == "{":
            close = pattern.index("}", i)
            choices = pattern[i + 1 : close].split(",")
            parts.append("(?:" + "|".join(map(re.escape, choices)) + ")")
            i = close
        else:
            parts.append(re.escape(char))
        i += 1
    return re.compile("".join(parts) + "$")


def fetch(
    pattern: str, start: int, end: int
) -> list[tuple[str, int, int, int, list[float | None]]]:
    """``[(name, first, until, step, values)]`` of the names the glob matches."""
    matcher = _glob(pattern)
    found = []
    for name in NAMES:
        if matcher.match(name):
            step = STEPS[name[0]]
            first = start - start % step + step
            until = end - end % step + step
            values = [value(name, stamp) for stamp in range(first, until, step)]
            found.append((name, first, until, step, values))
    return found


def _plain(answer: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """NaN (graphite-web writes NaN before "]") as None; infinities as strings."""
    for entry in answer:
        entry["datapoints"] = [
            [
                None
                if v is None or (isinstance(v, float) and math.isnan(v))
                else (str(v) if isinstance(v, float) and math.isinf(v) else v),
                t,
            ]
            for v, t in entry["datapoints"]
        ]
    return answer


def main() -> None:
    import datetime
    import logging
    import os
    import warnings

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "graphite.settings")
    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)
    import django  # type: ignore[import-not-found,unused-ignore]

    django.setup()
    import pytz  # type: ignore[import-untyped,import-not-found,unused-ignore]
    from graphite.functions import loadFunctions  # type: ignore[import-not-found,unused-ignore]
    from graphite.render import evaluator  # type: ignore[import-not-found,unused-ignore]
    from graphite.render.views import renderViewJson  # type: ignore[import-not-found,unused-ignore]
    from graphite.util import timebounds  # type: ignore[import-not-found,unused-ignore]

    loadFunctions()

    def prefetch(context: dict[str, Any], paths: list[str]) -> None:
        key = timebounds(context)
        store = context.setdefault("prefetched", {}).setdefault(key, {})
        for path in paths:
            store[path] = [
                (name, ((first, until, step), values))
                for name, first, until, step, values in fetch(path, key[0], key[1])
            ]

    evaluator.prefetchData = prefetch
    answers: list[dict[str, Any]] = []
    for case in json.load(sys.stdin):

        def moment(seconds: int) -> datetime.datetime:
            return datetime.datetime.fromtimestamp(seconds, pytz.utc)

        context = {
            "startTime": moment(case["start"]),
            "endTime": moment(case["end"]),
            "now": moment(case["now"]),
            "localOnly": False,
            "template": {},
            "tzinfo": pytz.utc,
            "forwardHeaders": {},
            "sourceIdHeaders": {},
            "data": [],
            "prefetched": {},
            "xFilesFactor": case.get("xff", 0.0),
            "maxDataPoints": case.get("mdp"),
            "targets": case["targets"],
        }
        options = {}
        if case.get("mdp") is not None:
            options["maxDataPoints"] = case["mdp"]
        if case.get("nonull"):
            options["noNullPoints"] = True
        try:
            series = evaluator.evaluateTarget(context, case["targets"])
            body = renderViewJson(options, series).content.decode()
            answers.append(
                {
                    "ok": _plain(
                        json.loads(body.replace("-1e9999", '"-inf"').replace("1e9999", '"inf"'))
                    )
                }
            )
        except Exception as error:
            answers.append({"error": f"{type(error).__name__}: {error}"})
    json.dump(answers, sys.stdout)


if __name__ == "__main__":
    main()
