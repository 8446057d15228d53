"""Write trio_metrics/query/graphite_functions.json: graphite-web's own description
of the functions trio-metrics implements, as its ``/functions`` serves them.

The names, parameters (types, defaults, options) and groups are graphite-web
1.1.8's (Apache License 2.0), read from the installed graphite-web, so that
``/graphite/functions`` and the argument checks match it exactly. Run it with
Debian's Python, where graphite-web lives (Debian: graphite-web)::

    /usr/bin/python3 docs/make_graphite_functions.py

The list of names below must equal the query package's function table (a
test checks it).
"""

import inspect
import json
import os
import sys
import warnings
from pathlib import Path

NAMES = [
    "absolute",
    "alias",
    "aliasByNode",
    "aliasByTags",
    "aliasSub",
    "alpha",
    "asPercent",
    "averageSeries",
    "avg",
    "cactiStyle",
    "color",
    "consolidateBy",
    "constantLine",
    "dashed",
    "derivative",
    "divideSeries",
    "drawAsInfinite",
    "exclude",
    "grep",
    "group",
    "groupByNode",
    "groupByTags",
    "integral",
    "keepLastValue",
    "legendValue",
    "lineWidth",
    "maxSeries",
    "minSeries",
    "movingAverage",
    "nonNegativeDerivative",
    "offset",
    "perSecond",
    "removeEmptySeries",
    "scale",
    "secondYAxis",
    "seriesByTag",
    "stacked",
    "sum",
    "sumSeries",
    "summarize",
    "timeShift",
    "transformNull",
]

OUTPUT = (
    Path(__file__).resolve().parent.parent / "trio_metrics" / "query" / "graphite_functions.json"
)


def signature(name, function):
    """graphite-web's ``function`` field (inspect.formatargspec, gone from Python 3.11)."""
    spec = inspect.getfullargspec(function)
    args = spec.args[1:]
    defaults = spec.defaults or ()
    first_default = len(args) - len(defaults)
    parts = [
        arg if i < first_default else f"{arg}={defaults[i - first_default]!r}"
        for i, arg in enumerate(args)
    ]
    if spec.varargs:
        parts.append("*" + spec.varargs)
    return f"{name}({', '.join(parts)})"


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "graphite.settings")
    warnings.simplefilter("ignore")
    import django

    django.setup()
    from graphite.functions import SeriesFunctions

    functions = SeriesFunctions()
    aggregators = {name for name in NAMES if getattr(functions[name], "aggregator", False)}
    catalog = {}
    for name in NAMES:
        function = functions[name]
        params = [param.toJSON() for param in function.params]
        for param in params:
            if param["type"] == "aggOrSeriesFunc":
                # Only the aggregating functions that we implement.
                agg = set(param["options"]) - set(functions)
                param["options"] = sorted(agg | aggregators, key=str)
        catalog[name] = {
            "name": name,
            "function": signature(name, function),
            "description": inspect.getdoc(function),
            "module": "graphite.render.functions",
            "group": getattr(function, "group", "Ungrouped"),
            "params": params,
            "aggregator": name in aggregators,
        }
    OUTPUT.write_text(json.dumps(catalog, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {len(catalog)} functions to {OUTPUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
