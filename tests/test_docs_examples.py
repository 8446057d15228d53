"""The shell examples of README.md and docs/usage.md, run as written against a real server.

Each ``console`` block's commands (lines starting with ``$ ``) run in bash, in
order, against one server per document on 127.0.0.1 (memory only, with
HTTP and Graphite ports). A command is rewritten to that server: the venv's
``.venv/bin/trio-metrics VERB`` becomes this venv's ``trio-metrics VERB
--port P``, and the HTTP port 8080 and Graphite port 2003 become the
server's. Its stdout and stderr together must equal the lines the block
shows under it, and its exit status must be 0.

Normalisation, for the one thing the docs cannot know: the docs write
"now" (a point put without a timestamp) as 1764077400, that is
2025-11-25 13:30:00 UTC. In a command's real output, every 10-digit unix
time, and every UTC time, that falls within the test's own run is
rewritten to those before the comparison; and an output that does not
end with a newline (curl's JSON) gets one, as the docs show the next
command on a line of its own. Nothing else is rewritten.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import attrs
import pytest
from conftest import server_in_thread, skip_or_fail
from net import NETWORK_TIMEOUT

from trio_metrics import ServerInfo

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = ["README.md", "docs/usage.md"]

DOC_NOW = 1764077400
DOC_NOW_UTC = "2025-11-25 13:30:00"

# Blocks that are not run, each with why; a new block must be run or listed here.
NOT_RUN = {
    ("README.md", "$ nc 127.0.0.1 8888"): "an interactive session, typed line by line",
}

_TRIO_METRICS = ".venv/bin/trio-metrics "
_PROGRAMS = {"curl": "curl is not installed: apt-get install curl"}


@attrs.frozen
class Command:
    """One ``$`` command of a block and the output the docs show for it."""

    line: int
    text: str
    expected: str


@attrs.frozen
class Block:
    """One ``console`` block: where it starts and its commands."""

    document: str
    line: int
    commands: list[Command]


def console_blocks(document: str) -> list[Block]:
    """The ``console`` blocks of ``document``, in order."""
    lines = (ROOT / document).read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        if lines[index].strip() == "```console":
            end = lines.index("```", index + 1)
            blocks.append(Block(document, index + 1, _commands(lines[index + 1 : end], index + 2)))
            index = end
        index += 1
    return blocks


def _commands(body: list[str], first_line: int) -> list[Command]:
    """Split a block's lines into commands (``\\`` continues one) and their outputs."""
    commands: list[Command] = []
    index = 0
    while index < len(body):
        start = index
        text = body[index].removeprefix("$ ")
        while text.endswith("\\") and index + 1 < len(body):
            index += 1
            text = text[:-1] + " " + body[index].strip()
        index += 1
        output_start = index
        while index < len(body) and not body[index].startswith("$ "):
            index += 1
        expected = "".join(line + "\n" for line in body[output_start:index])
        commands.append(Command(first_line + start, text, expected))
    return commands


def rewrite(command: str, info: ServerInfo) -> str:
    """``command`` as it must run here: this venv's CLI and the test server's ports."""
    cli = Path(sys.executable).with_name("trio-metrics")
    program = shlex.quote(str(cli)) if cli.exists() else f"{sys.executable} -m trio_metrics"
    if command.startswith(_TRIO_METRICS):
        verb, _, rest = command.removeprefix(_TRIO_METRICS).partition(" ")
        command = f"{program} {verb} --port {info.port} {rest}"
    command = command.replace("127.0.0.1:8080", f"127.0.0.1:{info.http_port}")
    return command.replace("/dev/tcp/127.0.0.1/2003", f"/dev/tcp/127.0.0.1/{info.graphite_port}")


def normalise(output: str, since: float, until: float) -> str:
    """Rewrite the times within ``since``..``until`` to the docs' "now" (module docstring)."""

    def timestamp(match: re.Match[str]) -> str:
        return str(DOC_NOW) if since <= int(match[0]) <= until else match[0]

    def utc(match: re.Match[str]) -> str:
        moment = datetime.strptime(match[0], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        return DOC_NOW_UTC if since <= moment.timestamp() <= until else match[0]

    output = re.sub(r"\b\d{10}\b", timestamp, output)
    return re.sub(r"\b\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\b", utc, output)


def run_command(command: Command, info: ServerInfo, since: float) -> str:
    """Run one command, check its exit status, and return its normalised output."""
    done = subprocess.run(
        ["bash", "-c", rewrite(command.text, info)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=NETWORK_TIMEOUT * 3,
        check=False,
    )
    assert done.returncode == 0, f"line {command.line}: {command.text}\n{done.stdout}"
    output = done.stdout
    if output and not output.endswith("\n"):
        output += "\n"  # curl's JSON ends without one; the docs put the next $ below it
    return normalise(output, since, time.time() + 1)


def _needs_program(block: Block) -> None:
    """Fail in CI, skip elsewhere, when a command's program is missing."""
    for command in block.commands:
        program = command.text.split()[0]
        if program in _PROGRAMS and shutil.which(program) is None:
            skip_or_fail(_PROGRAMS[program])


def _run_blocks(document: str) -> Iterator[Block]:
    """The blocks of ``document`` that are run (the others are in NOT_RUN)."""
    for block in console_blocks(document):
        if (document, f"$ {block.commands[0].text}") not in NOT_RUN:
            yield block


@pytest.mark.parametrize("document", DOCUMENTS)
def test_console_examples_print_what_the_docs_show(document: str) -> None:
    blocks = list(_run_blocks(document))
    for block in blocks:
        _needs_program(block)
    since = time.time() - 1
    with server_in_thread(http_port=0, graphite_port=0) as info:
        for block in blocks:
            for command in block.commands:
                got = run_command(command, info, since)
                assert got == command.expected, f"{document} line {command.line}: {command.text}"


def test_the_examples_that_matter_are_run() -> None:
    run = {
        (block.document, command.text)
        for document in DOCUMENTS
        for block in _run_blocks(document)
        for command in block.commands
    }
    assert ("README.md", ".venv/bin/trio-metrics get '*' --json") in run
    assert ("docs/usage.md", ".venv/bin/trio-metrics keys 'web.*'") in run
    listed = {key for key in NOT_RUN if key[0] in DOCUMENTS}
    present = {
        (document, f"$ {block.commands[0].text}")
        for document in DOCUMENTS
        for block in console_blocks(document)
    }
    assert listed <= present, "NOT_RUN names a block the docs no longer have"


def test_a_wrong_output_in_the_docs_is_caught() -> None:
    (block,) = [b for b in console_blocks("README.md") if "--timestamp 1501864247" in str(b)]
    since = time.time() - 1
    with server_in_thread() as info:
        outputs = [run_command(command, info, since) for command in block.commands]
    assert outputs[3] == block.commands[3].expected
    assert outputs[3] != block.commands[3].expected.replace("10.6", "10.7")


def test_normalise_touches_only_the_run_s_own_times() -> None:
    now = 1_800_000_000
    text = "1501864247 2017-08-04 16:30:47 1800000000 2027-01-15 08:00:00\n"
    assert normalise(text, now - 1, now + 1) == (
        f"1501864247 2017-08-04 16:30:47 {DOC_NOW} {DOC_NOW_UTC}\n"
    )
