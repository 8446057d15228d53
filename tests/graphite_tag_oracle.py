"""graphite-web's own tag database as an oracle for our tag layer, run by Debian's Python.

    GRAPHITE_SETTINGS_MODULE=... /usr/bin/python3 tests/graphite_tag_oracle.py < case.json

The case (``{"keys", "names", "queries", "completions"}``) goes through
graphite-web 1.1.8's ``LocalDatabaseTagDB`` (its default TagDB, on a fresh
sqlite database that the caller's settings point at): every key is tagged
into it as carbon would, then each query is answered by ``find_series``, the
tag listings by ``list_tags``/``get_tag``, the completions by
``auto_complete_tags``/``auto_complete_values``, and each of ``names`` is
read as its ``TimeSeries.tags`` reads a series' name. Errors
are answered as ``{"error": ...}``. Only the standard library outside
``main``.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def _answer(function: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    try:
        return {"ok": function(*args, **kwargs)}
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}"}


def main() -> None:
    import logging
    import warnings

    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)
    import django  # type: ignore[import-not-found,unused-ignore]

    django.setup()
    from django.core.management import call_command  # type: ignore[import-not-found,unused-ignore]

    call_command("migrate", verbosity=0, interactive=False)
    from django.conf import settings  # type: ignore[import-not-found,unused-ignore]
    from graphite.render.datalib import TimeSeries  # type: ignore[import-not-found,unused-ignore]
    from graphite.tags.localdatabase import (  # type: ignore[import-not-found,unused-ignore]
        LocalDatabaseTagDB,
    )

    case = json.load(sys.stdin)
    tagdb = LocalDatabaseTagDB(settings)
    for key in case["keys"]:
        tagdb.tag_series(key)

    def tags_of(name: str) -> dict[str, str]:
        return dict(TimeSeries(name, 0, 60, 60, [1.0]).tags)

    def details(tag: str) -> Any:
        found = tagdb.get_tag(tag)
        if found is None:
            return None
        return {
            "tag": found["tag"],
            "values": [{"value": v["value"], "count": v["count"]} for v in found["values"]],
        }

    tags = [entry["tag"] for entry in tagdb.list_tags()]
    answer = {
        "series": [_answer(tagdb.find_series, query) for query in case["queries"]],
        "tags": tags,
        "details": {tag: details(tag) for tag in tags},
        "names": [tags_of(name) for name in case["names"]],
        "completions": [
            _answer(tagdb.auto_complete_tags, c["exprs"], tagPrefix=c["prefix"], limit=c["limit"])
            if "tag" not in c
            else _answer(
                tagdb.auto_complete_values,
                c["exprs"],
                c["tag"],
                valuePrefix=c["prefix"],
                limit=c["limit"],
            )
            for c in case["completions"]
        ],
    }
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main()
