"""The security checks' mutation run: remove each check once, and its test must fail.

    python tests/security_mutations.py

Each mutation rewrites one line of the package in place, runs the test that
guards it, and puts the line back (also when interrupted). It prints one
line per mutation, CAUGHT or MISSED, and exits 1 if any was missed. Not
part of the pytest run: it edits the source, so run it on a clean tree.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

W = str(Path(__file__).resolve().parent.parent)
# (file, the check, what replaces it, the test file, the -k of its test)
M = [
    (
        "trio_metrics/transport/_auth.py",
        "if mode & (stat.S_IRWXG | stat.S_IRWXO):",
        "if False:",
        "tests/test_auth.py",
        "open_to_group",
    ),
    (
        "trio_metrics/server/_connection.py",
        "if session is not None and session.name is None:",
        "if False:",
        "tests/test_auth.py",
        "before_auth",
    ),
    (
        "trio_metrics/transport/_auth.py",
        "await trio.sleep(self.delay.failed(address))",
        "self.delay.failed(address)",
        "tests/test_auth.py",
        "longer_and_longer",
    ),
    (
        "trio_metrics/transport/_auth.py",
        "if hmac.compare_digest(given, digest):",
        "if True:",
        "tests/test_auth.py",
        "wrong_token",
    ),
    (
        "trio_metrics/transport/_tls.py",
        "if first is not None and first[0] != _HANDSHAKE_RECORD:",
        "if False:",
        "tests/test_tls.py",
        "plaintext_client_on",
    ),
    (
        "trio_metrics/transport/_tls.py",
        "with trio.move_on_after(timeout):",
        "with trio.move_on_after(math.inf):",
        "tests/test_tls.py",
        "silent_handshake",
    ),
    (
        "trio_metrics/transport/_tls.py",
        "context.verify_mode = ssl.CERT_REQUIRED",
        "pass",
        "tests/test_tls.py",
        "mutual_tls",
    ),
    (
        "trio_metrics/server/_protection.py",
        "if not exposed or _authenticates(config) or config.insecure_open:",
        "if True:",
        "tests/test_protection.py",
        "network_address",
    ),
    (
        "trio_metrics/http/_api.py",
        "        if self.auth is not None:\n            # Before",
        "        if False:\n            # Before",
        "tests/test_auth.py",
        "bearer",
    ),
    (
        "trio_metrics/server/_connection.py",
        "if self.stats.connections_unauthenticated >= self.auth.settings.max_unauthenticated:",
        "if False:",
        "tests/test_auth.py",
        "flood",
    ),
    (
        "trio_metrics/server/_connection.py",
        "with trio.move_on_after(self.auth.settings.auth_timeout) as session.login:",
        "with trio.move_on_after(math.inf) as session.login:",
        "tests/test_auth.py",
        "in_time",
    ),
    (
        "trio_metrics/server/_config.py",
        "            auth is not None\n            and self.graphite_port",
        "            False\n            and self.graphite_port",
        "tests/test_auth.py",
        "graphite_with_auth",
    ),
    (
        "trio_metrics/server/_run.py",
        "                _reload(server)\n",
        "                pass\n",
        "tests/test_tls.py",
        "sighup",
    ),
    (
        "trio_metrics/transport/_guard.py",
        "    if counters.open >= max_connections:",
        "    if False:",
        "tests/test_tls.py",
        "connection_limit",
    ),
    (
        "trio_metrics/transport/_tls.py",
        'context.options |= getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)',
        "pass",
        "tests/test_tls.py",
        "graceful",
    ),
]


def main() -> int:
    missed = 0
    for path, old, new, test, k in M:
        full = os.path.join(W, path)
        with open(full) as file:
            src = file.read()
        if src.count(old) != 1:
            print(f"{path}: the check {old.strip()[:60]!r} is not there once: update this list")
            missed += 1
            continue
        with open(full, "w") as file:
            file.write(src.replace(old, new))
        try:
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    test,
                    "-q",
                    "-x",
                    "-p",
                    "no:cacheprovider",
                    "-k",
                    k,
                ],
                cwd=W,
                env={**os.environ, "PYTHONPATH": W},
                capture_output=True,
                text=True,
                timeout=240,
                check=False,
            )
        finally:
            with open(full, "w") as file:
                file.write(src)
        caught = result.returncode == 1
        missed += not caught
        print(f"{'CAUGHT' if caught else 'MISSED'}  {path}: {old.strip()[:70]!r}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
