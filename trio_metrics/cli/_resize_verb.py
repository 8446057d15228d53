"""``trio-metrics resize``: rewrite a data directory under new retention rules.

The offline step after the rules change, in the spirit of ``whisper-resize``
(see :func:`trio_metrics.storage.resize_data_dir` and docs/retention.md).
The rules are given with the same flags as ``serve``'s.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..storage import DataDirError, resize_data_dir
from ._output import fail
from ._serve_verb import RETENTION_GROUP, SERVE_FLAGS, retention_from_args

__all__ = ["add_resize_verb"]


def add_resize_verb(verbs: argparse._SubParsersAction[Any]) -> None:
    """Add ``resize`` and its flags to the command's verbs."""
    parser = verbs.add_parser(
        "resize",
        help="rewrite a data directory's points under new retention rules (server stopped)",
        description="Put every key's points again under the new rules, as whisper-resize does:"
        " points older than a key's finest tier land in the coarser tier that holds their"
        " time, one value per step (the last, or with --aggregate all of them combined);"
        " points past the longest span are dropped. Then a new snapshot replaces the log.",
    )
    parser.add_argument("--data-dir", required=True, type=Path, metavar="DIR")
    parser.add_argument(
        "--aggregate",
        action="store_true",
        help="combine the points of a coarser step with the key's aggregation method"
        " instead of keeping the last (whisper-resize --aggregate)",
    )
    group = parser.add_argument_group(RETENTION_GROUP)
    for flag in SERVE_FLAGS:
        if flag.group == RETENTION_GROUP:
            group.add_argument(*flag.names, **flag.options)
    parser.set_defaults(run=_resize, resize_parser=parser)


def _resize(args: argparse.Namespace) -> int:
    try:
        rules = retention_from_args(args)
    except ValueError as exc:
        args.resize_parser.error(str(exc))
    if rules.keeps_everything:
        args.resize_parser.error("give the new rules: --retention or --storage-schemas")
    if not args.data_dir.is_dir():
        fail(f"{args.data_dir} is not a data directory")
        return 1
    try:
        report = resize_data_dir(
            args.data_dir,
            rules,
            aggregate=args.aggregate,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )
    except (DataDirError, OSError) as exc:
        fail(str(exc))
        return 1
    print(
        f"resized {args.data_dir}: {report.keys} keys, {report.points_before} points before,"
        f" {report.points_after} after, {report.dropped} past the new longest span;"
        f" new snapshot {report.snapshot.name}"
    )
    return 0
