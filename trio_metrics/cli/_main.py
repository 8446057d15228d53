"""The ``trio-metrics`` command: ``serve`` a store, ``put`` and ``get`` points.

Failures print one line to stderr and exit non-zero: 1 for a failed
request or server start, 2 for bad arguments or a bad TRIO_METRICS_PORT,
130 on Ctrl-C, 141 when the reader of the output stops early.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import NoReturn

from .. import __version__
from ..client import ClientError
from ..client._environment import EnvironmentPortError
from ._client_verbs import add_client_verbs
from ._output import PROG, fail, silence_stdout
from ._resize_verb import add_resize_verb
from ._serve_verb import add_serve_verb

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    args = _build_parser().parse_args(argv)
    if args.resolve_address is not None:
        try:
            args.resolve_address(args)
        except EnvironmentPortError as exc:
            # A bad setting, like a bad argument: exit 2, before connecting.
            fail(str(exc))
            return 2
    if args.check is not None:
        args.check(args)
    try:
        status: int = args.run(args)
    except ClientError as exc:
        fail(str(exc))
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of our output (head, less) stopped early: not an error
        # worth a traceback. Point stdout at nothing so the exit flush is quiet.
        silence_stdout()
        return 141
    except OSError as exc:
        # Writing the output failed (a full disk, a closed terminal); the
        # server's own OSErrors are handled by the serve verb.
        fail(f"cannot write the output: {exc.strerror or exc}")
        silence_stdout()
        return 1
    return status


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``trio-metrics put: error: ...`` and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="A metrics server speaking the put/get text protocol, and its client.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.set_defaults(check=None, resolve_address=None)
    verbs = parser.add_subparsers(
        title="commands", metavar="COMMAND", required=True, parser_class=_Parser
    )
    add_serve_verb(verbs)
    add_resize_verb(verbs)
    add_client_verbs(verbs, _Parser)
    return parser
