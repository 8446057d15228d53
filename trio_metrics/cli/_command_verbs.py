"""``trio-metrics ping``, ``keys``, ``delete`` and ``get --from/--until``: extension words."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..client import Client
from ..wire import MAX_TIMESTAMP
from . import _argument_types as types
from ._connection_flags import connect
from ._output import fail

__all__ = ["add_command_verbs", "add_range_options", "run_range"]


def add_command_verbs(
    verbs: argparse._SubParsersAction[Any], connection: argparse.ArgumentParser
) -> None:
    """Add ``ping``, ``keys`` and ``delete``, which share the connection flags."""
    ping = verbs.add_parser(
        "ping",
        parents=[connection],
        help="check that the server answers",
        description="Send 'ping'; print 'ok' and exit 0 when the server answers.",
    )
    ping.set_defaults(run=_ping)
    keys = verbs.add_parser(
        "keys",
        parents=[connection],
        help="list the keys that match a glob",
        description="Print the stored keys that match GLOB, sorted, one per line. The glob"
        " is matched node by node: '*' alone matches keys without a dot, 'web.*' the keys"
        " one level under 'web'.",
    )
    keys.add_argument("glob", metavar="GLOB", help="e.g. 'web.*' or '{web,db}.cpu' (quote it)")
    keys.add_argument("--json", action="store_true", help='print {"keys": [...]}')
    keys.set_defaults(run=_keys)
    delete = verbs.add_parser(
        "delete",
        parents=[connection],
        help="remove a key, or the keys that match a glob",
        description="Remove KEY_OR_GLOB's keys and all their points. On a terminal it asks"
        " first; elsewhere it needs --yes.",
    )
    delete.add_argument("pattern", metavar="KEY_OR_GLOB", help="a key, or a glob as for 'keys'")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    delete.set_defaults(run=_delete)


def add_range_options(get: argparse.ArgumentParser) -> None:
    """``get``'s ``--from`` and ``--until``: either one makes it a ``range`` request."""
    get.add_argument(
        "--from",
        dest="start",
        type=types.timestamp,
        default=None,
        metavar="TS",
        help="only points at or after TS (unix seconds); KEY may then be a glob",
    )
    get.add_argument(
        "--until",
        dest="end",
        type=types.timestamp,
        default=None,
        metavar="TS",
        help="only points at or before TS (unix seconds); KEY may then be a glob",
    )


def run_range(args: argparse.Namespace, client: Client) -> Any:
    """The points of ``get --from/--until``: a ``range`` request (open ends are 0 and 2**63-1)."""
    start = 0 if args.start is None else args.start
    end = MAX_TIMESTAMP if args.end is None else args.end
    return client.range(args.key, start, end)


def _ping(args: argparse.Namespace) -> int:
    with connect(args) as client:
        client.ping()
    print("ok")
    return 0


def _keys(args: argparse.Namespace) -> int:
    with connect(args) as client:
        found = client.keys(args.glob)
    if args.json:
        print(json.dumps({"keys": found}))
    else:
        for key in found:
            print(key)
    return 0


def _delete(args: argparse.Namespace) -> int:
    if not args.yes:
        if not sys.stdin.isatty():
            fail(f"delete {args.pattern!r}: not a terminal to confirm on; add --yes to delete")
            return 2
        # The question goes to stderr: stdout holds only the result.
        print(
            f"Delete {args.pattern!r} (every matching key and its points)? [y/N] ",
            end="",
            file=sys.stderr,
            flush=True,
        )
        answer = sys.stdin.readline()
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted", file=sys.stderr)
            return 1
    with connect(args) as client:
        removed = client.delete(args.pattern)
    print(f"deleted {removed} key{'' if removed == 1 else 's'}")
    return 0
