"""A real graphite-web (Debian's 1.1.8) federating to our server through its cluster protocol.

It runs on the system's own Python with Debian's Django, never in our venv:
a settings module in a temporary directory (chosen with
``GRAPHITE_SETTINGS_MODULE``) points ``CLUSTER_SERVERS`` at our
``/graphite`` prefix, keeps its sqlite database, logs and (empty) whisper
directory in that directory, and turns every cache off, so that each of its
answers is computed from what our server answers now.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from net import NETWORK_TIMEOUT

#: Debian's system Python, which has graphite-web and its Django.
SYSTEM_PYTHON = Path("/usr/bin/python3")
#: Where Debian's graphite-web package keeps its code.
GRAPHITE_PACKAGE = Path("/usr/lib/python3/dist-packages/graphite")
GRAPHITE_WEB_MISSING = (
    "graphite-web is not installed; it is run as a real client of the Graphite API"
    " (Debian: apt-get install graphite-web)"
)
# Seconds graphite-web gets to migrate its database and to start answering.
_START_TIMEOUT = 60.0
_SETTINGS_MODULE = "trio_graphite_settings"


class Both:
    """Our server's HTTP port and the graphite-web that federates to it."""

    def __init__(self, http_port: int, web: GraphiteWeb) -> None:
        self.http_port = http_port
        self.web = web

    def ours(self, path: str, params: list[tuple[str, str]]) -> Any:
        """Our own ``/graphite`` answer to ``path`` with ``params``, as JSON."""
        url = f"http://127.0.0.1:{self.http_port}/graphite{path}?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=NETWORK_TIMEOUT) as answer:
            return json.loads(answer.read())


def graphite_web_installed() -> bool:
    """Whether Debian's graphite-web and the Python it runs on are here."""
    return SYSTEM_PYTHON.exists() and (GRAPHITE_PACKAGE / "settings.py").exists()


def settings_text(directory: Path, cluster_server: str, extra: str = "") -> str:
    """graphite-web's local settings: ``cluster_server`` as its only store, all in ``directory``
    (then ``extra`` settings lines)."""
    storage = directory / "storage"
    return f"""\
SECRET_KEY = "trio-metrics-tests"
TIME_ZONE = "UTC"
CLUSTER_SERVERS = [{cluster_server!r}]
REMOTE_RETRY_DELAY = 0
FIND_CACHE_DURATION = 0
DEFAULT_CACHE_DURATION = 0
CACHES = {{"default": {{"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}}}
STORAGE_DIR = {str(storage)!r}
WHISPER_DIR = {str(storage / "whisper")!r}
CERES_DIR = {str(storage / "ceres")!r}
RRD_DIR = {str(storage / "rrd")!r}
LOG_DIR = {str(directory / "log")!r}
INDEX_FILE = {str(storage / "index")!r}
STANDARD_DIRS = [{str(storage / "whisper")!r}]
DATABASES = {{
    "default": {{
        "NAME": {str(directory / "graphite.db")!r},
        "ENGINE": "django.db.backends.sqlite3",
    }}
}}
LOG_ROTATION = False
FUNCTION_PLUGINS = []
{extra}"""


class GraphiteWeb:
    """A running graphite-web on 127.0.0.1:``port``; its log is at ``log``."""

    def __init__(self, port: int, log: Path) -> None:
        self.port = port
        self.log = log

    def get(self, path: str, params: Sequence[tuple[str, str]] = ()) -> tuple[int, bytes]:
        """GET ``path`` with ``params``: the status and the body (bounded wait)."""
        query = urllib.parse.urlencode(list(params))
        url = f"http://127.0.0.1:{self.port}{path}" + (f"?{query}" if query else "")
        try:
            with urllib.request.urlopen(url, timeout=NETWORK_TIMEOUT) as answer:
                return answer.status, bytes(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def get_json(self, path: str, params: Sequence[tuple[str, str]] = ()) -> Any:
        """GET ``path`` and decode its JSON; fails with graphite-web's log on another status."""
        status, body = self.get(path, params)
        assert status == 200, f"{status} {body[:2000]!r}\n{self.log_tail()}"
        return json.loads(body)

    def log_tail(self) -> str:
        """The end of graphite-web's own output and exception log, for failure messages."""
        texts = []
        for path in (self.log, self.log.parent / "log" / "exception.log"):
            if path.exists():
                texts.append(f"--- {path.name}\n" + path.read_text(errors="replace")[-4000:])
        return "\n".join(texts)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _environment(directory: Path) -> dict[str, str]:
    # Nothing of our venv: the system Python finds only Debian's packages and the settings.
    return {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": str(directory),
        "PYTHONPATH": str(directory),
        "GRAPHITE_SETTINGS_MODULE": _SETTINGS_MODULE,
        "DJANGO_SETTINGS_MODULE": "graphite.settings",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


@contextmanager
def running_graphite_web(
    directory: Path, cluster_server: str, extra_settings: str = ""
) -> Iterator[GraphiteWeb]:
    """graphite-web federating to ``cluster_server`` (``host:port/prefix``), stopped on exit.

    Migrates a fresh sqlite database in ``directory``, runs Django's
    development server on a free port of 127.0.0.1 and waits (bounded)
    until it answers.
    """
    for sub in ("storage/whisper", "log"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    settings = settings_text(directory, cluster_server, extra_settings)
    (directory / f"{_SETTINGS_MODULE}.py").write_text(settings)
    env = _environment(directory)
    migrate = subprocess.run(
        [str(SYSTEM_PYTHON), "-m", "django", "migrate", "--verbosity", "0", "--noinput"],
        env=env,
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=_START_TIMEOUT,
        check=False,
    )
    assert migrate.returncode == 0, f"graphite-web's migrate failed:\n{migrate.stderr[-4000:]}"
    port = _free_port()
    log = directory / "runserver.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                str(SYSTEM_PYTHON),
                "-m",
                "django",
                "runserver",
                f"127.0.0.1:{port}",
                "--noreload",
                "--nothreading",
            ],
            env=env,
            cwd=directory,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    web = GraphiteWeb(port, log)
    try:
        _wait_until_answering(web, process)
        yield web
    finally:
        process.terminate()
        try:
            process.wait(timeout=NETWORK_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=NETWORK_TIMEOUT)


def _wait_until_answering(web: GraphiteWeb, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise AssertionError(f"graphite-web exited with {process.returncode}\n{web.log_tail()}")
        try:
            status, _ = web.get("/version/")
            if status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"graphite-web did not answer within {_START_TIMEOUT:g} s")
        time.sleep(0.1)
