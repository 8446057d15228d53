"""The public API: trio_metrics.__all__ is exactly what docs/usage.md lists."""

from __future__ import annotations

import re
from pathlib import Path

import trio_metrics

USAGE = Path(__file__).resolve().parent.parent / "docs" / "usage.md"
MARKER = "<!-- public-api:"


def documented_names() -> set[str]:
    """The first name in backticks of each row of the table after the marker."""
    text = USAGE.read_text(encoding="utf-8")
    table = text[text.index(MARKER) :].split("\n\n", 1)[0]
    names = set()
    for row in table.splitlines()[3:]:
        match = re.match(r"\| `([A-Za-z_]+)", row)
        assert match, f"a row of the public API table names nothing: {row!r}"
        names.add(match.group(1))
    return names


def test_all_is_exactly_what_the_docs_list() -> None:
    assert set(trio_metrics.__all__) == documented_names()


def test_every_name_in_all_exists() -> None:
    missing = [name for name in trio_metrics.__all__ if not hasattr(trio_metrics, name)]
    assert missing == []


def test_every_public_exception_is_importable_from_the_top() -> None:
    """Each exception class a subpackage exports is in trio_metrics.__all__ too."""
    import importlib

    exported = set(trio_metrics.__all__)
    for package in ("wire", "transport", "server", "ingest", "storage", "http", "client", "cli"):
        module = importlib.import_module(f"trio_metrics.{package}")
        for name in module.__all__:
            value = getattr(module, name)
            if isinstance(value, type) and issubclass(value, Exception):
                assert name in exported, f"trio_metrics.{package}.{name} is not in trio_metrics"


def test_the_names_users_of_the_protocol_import_are_there() -> None:
    from trio_metrics import Client, ClientError, run_server  # noqa: F401


PACKAGE_IMPORTS = {
    "wire": set(),
    "transport": set(),
    "storage": set(),
    "client": {"wire", "transport"},
    "ingest": {"storage", "transport", "wire"},
    "query": {"storage", "wire"},
    "http": {"storage", "transport", "wire", "query"},
    "server": {"storage", "transport", "wire", "ingest", "http"},
}


def test_packages_import_only_what_docs_architecture_allows() -> None:
    """The boundaries of docs/architecture.md: e.g. storage knows nothing of the wire format."""
    root = Path(trio_metrics.__file__).parent
    for package, allowed in PACKAGE_IMPORTS.items():
        for module in (root / package).glob("*.py"):
            imported = set(re.findall(r"^\s*from \.\.(\w+)", module.read_text(), re.MULTILINE))
            imported -= {""}
            assert imported <= allowed, f"{package}/{module.name} imports {imported - allowed}"


def test_importing_the_package_loads_no_http_stack() -> None:
    """Programs that only use the clients never load hypercorn (it loads with --http-port),
    nor the query layer's numpy and pyparsing (they load with the first Graphite query),
    nor coredis and anyio (they load when a Redis store is opened)."""
    import subprocess
    import sys

    probe = (
        "import sys, trio_metrics; from trio_metrics import Client, serve, HttpListenError;"
        " lazy = ('hypercorn', 'h11', 'h2', 'numpy', 'pyparsing', 'trio_metrics.query',"
        " 'coredis', 'anyio', 'trio_metrics.storage._redis');"
        " print(sorted(m for m in sys.modules if m.startswith(lazy)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
