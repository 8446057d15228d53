"""The benchmark suite still runs: a quick run end to end, the baseline speaks the protocol,
and the floor answers every line."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from net import NETWORK_TIMEOUT, recv_until

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
RATE_SCENARIOS = ["rr-50@5k", "rr-50@20k"]
SCENARIOS = ["rr-1", "rr-50", "pipelined", *RATE_SCENARIOS, "get-all", "get-key", "memory"]
SCENARIOS.append("startup")
#: The scenarios the trio floor takes part in (it stores nothing, so puts only).
FLOOR_SCENARIOS = ["rr-1", "rr-50", "pipelined", *RATE_SCENARIOS]
RATE_STATUSES = {"kept up", "kept up, sends late", "generator fell behind", "server fell behind"}

SPEC_SESSION = [
    (b"put palm.cpu 10.6 1501864247\n", b"ok\n\n"),
    (b"put palm.cpu 2 1501864248\n", b"ok\n\n"),
    (b"got palm.cpu\n", b"error\nwrong command\n\n"),
    (b"get palm.cpu\n", b"ok\npalm.cpu 10.6 1501864247\npalm.cpu 2.0 1501864248\n\n"),
    (b"get nothing.here\n", b"ok\n\n"),
]


def _quick_run(tmp_path: Path, *options: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    """``bench/run.py --quick --repeat 1`` with ``options``: the process and its JSON."""
    results = tmp_path / "results.json"
    completed = subprocess.run(
        [
            sys.executable,
            str(BENCH / "run.py"),
            "--quick",
            "--repeat",
            "1",
            "--json",
            str(results),
            "--chart",
            str(tmp_path / "chart.png"),
            *options,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed, json.loads(results.read_text())


def test_quick_run_compares_the_servers_and_verifies(tmp_path: Path) -> None:
    # A short warm-up, but long enough for the load to run at full speed
    # first; two generator processes, so that their start together is run too.
    completed, data = _quick_run(tmp_path, "--warmup", "0.3", "--loadgen-processes", "2")
    output = completed.stdout + completed.stderr
    for name in SCENARIOS:
        assert re.search(rf"^{re.escape(name)}\s+\S", completed.stdout, re.MULTILINE), output
    assert "all runs verified" in completed.stdout
    assert "warm-up 0.3 s before each timed phase" in completed.stdout
    assert "fixed rate (name@rate): open loop" in completed.stdout
    assert (tmp_path / "chart.png").exists() or "chart skipped" in completed.stdout

    assert data["verified"] is True
    assert data["problems"] == []
    assert set(data["scenarios"]) == set(SCENARIOS)
    for name in SCENARIOS:
        scenario = data["scenarios"][name]
        assert scenario["verified"] is True
        for kind in ("ours", "baseline"):
            (run,) = scenario["runs"][kind]
            assert run["verified"] is True
            assert run["problems"] == []
            assert run["metrics"]
        if name in FLOOR_SCENARIOS:
            # The floor answers but stores nothing: measured, never verified.
            (run,) = scenario["runs"]["floor"]
            assert run["verified"] is None and run["problems"] == [], run
            assert run["metrics"]["server_cpu_us_per_put"] >= 0
        else:
            assert "floor" not in scenario["runs"]
        if name in RATE_SCENARIOS:
            _check_fixed_rate(scenario)
        elif name in FLOOR_SCENARIOS:
            for kind in ("ours", "baseline", "floor"):
                load = scenario["runs"][kind][0]["info"]["load"]
                assert load["warmup_s"] == 0.3 and load["warm_requests"] > 0, load
                assert load["requests"] > 0 and load["elapsed_s"] > 0, load
    for row in data["rows"]:
        assert row["ours"] is not None and row["baseline"] is not None, row
        assert row["better"] in ("higher", "lower", "-")
        if row["scenario"] in FLOOR_SCENARIOS:
            assert row["floor"] is not None, row


def _check_fixed_rate(scenario: dict[str, Any]) -> None:
    for kind in ("ours", "baseline", "floor"):
        (run,) = scenario["runs"][kind]
        load = run["info"]["load"]
        schedule = run["info"]["schedule"]
        assert load["status"] in RATE_STATUSES, load
        # Every timed request was answered, and latency measured for each.
        assert load["requests"] == schedule["timed"] * schedule["connections"], load
        assert load["answers_in_window"] >= load["requests"], load
        assert schedule["warm"] == round(0.3 * schedule["rate"] / schedule["connections"])
        latency = load["latency_ms"]
        assert 0 < latency["p50"] <= latency["p99"] <= latency["max"], load
        assert run["metrics"]["latency_p99_ms"] == latency["p99"]
        assert run["metrics"]["achieved_per_s"] > 0
        assert load["processes"] == 2


def test_no_warm_up_times_from_the_start(tmp_path: Path) -> None:
    completed, data = _quick_run(tmp_path, "--warmup", "0", "--scenarios", "rr-50,rr-1@2k")
    assert "no warm-up (--warmup 0): each timed phase starts with the load" in completed.stdout
    assert data["verified"] is True
    for kind in ("ours", "baseline", "floor"):
        (run,) = data["scenarios"]["rr-50"]["runs"][kind]
        assert run["info"]["load"]["warm_requests"] == 0
        assert run["info"]["load"]["requests"] == 50 * 20, run["info"]["load"]
        (run,) = data["scenarios"]["rr-1@2k"]["runs"][kind]
        assert run["info"]["schedule"]["warm"] == 0
        assert run["info"]["load"]["answers_in_window"] == run["info"]["schedule"]["timed"]


def _start_server(script: str) -> tuple[subprocess.Popen[bytes], int]:
    process = subprocess.Popen(
        [sys.executable, str(BENCH / script), "--host", "127.0.0.1", "--port", "0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(NETWORK_TIMEOUT):
            process.kill()
            process.wait()
            raise AssertionError(f"{script} printed no banner")
    banner = process.stdout.readline()
    match = re.fullmatch(rb"listening on 127\.0\.0\.1:(\d+)\n", banner)
    assert match, banner
    return process, int(match.group(1))


def test_baseline_answers_the_spec_session_byte_for_byte() -> None:
    process, port = _start_server("asyncio_server.py")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=NETWORK_TIMEOUT) as sock:
            for request, expected in SPEC_SESSION:
                sock.sendall(request)
                assert recv_until(sock, b"\n\n") == expected
        # The same session again, pipelined and cut mid-line (with a blank
        # line and a \r\n ending): same answers, in order, after a fresh put.
        requests = b"put palm.cpu 10.6 1501864247\r\n\n" + b"".join(r for r, _ in SPEC_SESSION[1:])
        expected_all = b"".join(e for _, e in SPEC_SESSION)
        with socket.create_connection(("127.0.0.1", port), timeout=NETWORK_TIMEOUT) as sock:
            for start in range(0, len(requests), 7):
                sock.sendall(requests[start : start + 7])
            received = b""
            while len(received) < len(expected_all):
                chunk = sock.recv(65536)
                assert chunk, received
                received += chunk
            assert received == expected_all
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=NETWORK_TIMEOUT) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stdout is not None
        process.stdout.close()


def test_floor_answers_every_line_and_exits_0_on_either_signal() -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        process, port = _start_server("trio_floor.py")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=NETWORK_TIMEOUT) as sock:
                # Lines cut across chunks; a blank line is a line too; no parsing.
                for chunk in (b"put a 1 2\nput b", b" 1 2\n\ngarbage", b"\n"):
                    sock.sendall(chunk)
                received = b""
                while len(received) < 4 * len(b"ok\n\n"):
                    data = sock.recv(65536)
                    assert data, received
                    received += data
                assert received == b"ok\n\n" * 4
            process.send_signal(signum)
            assert process.wait(timeout=NETWORK_TIMEOUT) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            assert process.stdout is not None
            process.stdout.close()


def test_trickle_reports_every_mode_and_no_server_busy_between_puts() -> None:
    completed = subprocess.run(
        [sys.executable, str(BENCH / "trickle.py"), "--seconds", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    rows = re.findall(
        r"^(\w+)\s+(\d+)\s+[\d.]+\s+[\d.]+\s+([\d.]+)$", completed.stdout, re.MULTILINE
    )
    assert [mode for mode, _, _ in rows] == ["memory", "never", "everysec", "always"], output
    for mode, puts, cpu_per_second in rows:
        assert int(puts) == 4, output
        # A server that loops instead of waiting between puts uses most of a
        # core; one that waits, next to nothing. The bound is loose because
        # a one-second run on a busy machine is noisy.
        assert float(cpu_per_second) < 0.25, (mode, output)


def test_copy_budget_bench_reports_both_servers() -> None:
    completed = subprocess.run(
        [
            sys.executable,
            str(BENCH / "copy_budget.py"),
            "--points",
            "100000",
            "--clients",
            "3",
            "--settle",
            "1",
            "--budget",
            "2000000",
        ],
        capture_output=True,
        text=True,
        timeout=NETWORK_TIMEOUT * 12,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    rows = [line for line in completed.stdout.splitlines() if line.startswith("| 2000000")]
    off = [line for line in completed.stdout.splitlines() if line.startswith("| off")]
    assert len(rows) == 1 and len(off) == 1, completed.stdout
    # With room for one copy of the key, the other two clients wait.
    assert rows[0].split("|")[5].strip() == "2", rows[0]
    assert off[0].split("|")[5].strip() == "0", off[0]


def test_graphite_ingest_bench_counts_every_point_on_both_servers() -> None:
    import shutil

    from conftest import skip_or_fail

    completed = subprocess.run(
        [sys.executable, str(BENCH / "graphite_ingest.py"), "--lines", "20000", "--repeat", "1"],
        capture_output=True,
        text=True,
        timeout=NETWORK_TIMEOUT * 12,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert re.search(r"^\| trio-metrics \| [\d,]+ \|", completed.stdout, re.MULTILINE)
    if shutil.which("victoria-metrics") is None:
        skip_or_fail("victoria-metrics is not installed (apt-get install victoria-metrics)")
    assert re.search(r"^\| VictoriaMetrics \| [\d,]+ \|", completed.stdout, re.MULTILINE)
    assert "trio-metrics / VictoriaMetrics:" in completed.stdout


def test_compaction_memory_reports_rss_before_and_the_peak() -> None:
    completed = subprocess.run(
        [sys.executable, str(BENCH / "compaction_memory.py"), "--keys", "20"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    assert re.search(r"^RSS before compaction: [\d.]+ MiB$", completed.stdout, re.MULTILINE)
    assert re.search(r"^peak during compaction: [\d.]+ MiB", completed.stdout, re.MULTILINE)


def test_http_abuse_quick_run_answers_as_expected(tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    completed = subprocess.run(
        [sys.executable, str(BENCH / "http_abuse.py"), "--quick", "--json", str(figures)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "all answers as expected" in completed.stdout
    rows = json.loads(figures.read_text())
    assert {row["scenario"] for row in rows} == {
        "glob-bomb",
        "keys",
        "series",
        "stalled-bodies",
        "connect-burst",
    }


@pytest.mark.parametrize("form", [[], ["--json"]])
def test_cli_get_bench_reports_first_line_and_memory(form: list[str]) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            str(BENCH / "cli_get.py"),
            "--keys",
            "3",
            "--points-per-key",
            "500",
            *form,
        ],
        capture_output=True,
        text=True,
        timeout=NETWORK_TIMEOUT * 6,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert completed.returncode == 0, completed.stderr
    assert "filled 1500 points" in completed.stdout
    assert re.search(r"first line after [\d.]+ s, .* CLI peak RSS \d+ MiB", completed.stdout)


def test_retention_fast_forward_reports_tiers_memory_and_the_directory() -> None:
    completed = subprocess.run(
        [sys.executable, str(BENCH / "retention.py"), "--series", "3", "--days", "3", "--data-dir"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    replayed = re.search(r"^replayed ([\d,]+) points", completed.stdout, re.MULTILINE)
    # Each day's replay sends its 8,639 steps after its first instant.
    assert replayed is not None and int(replayed.group(1).replace(",", "")) == 3 * 3 * 8639
    held = re.search(r"tier 0 \(10 s, as put\) ([\d,]+), tier 1 \(1 min\) ([\d,]+)", output)
    assert held is not None
    # A day at 10 s in the finest tier (give or take the floor's minute), two days of minutes.
    assert abs(int(held.group(1).replace(",", "")) - 3 * 8640) <= 3 * 12
    assert abs(int(held.group(2).replace(",", "")) - 3 * 2 * 1440) <= 3 * 2
    assert re.search(r"^server RSS [\d.]+ MiB", completed.stdout, re.MULTILINE)
    assert re.search(r"^data directory by day replayed: 1: [\d.]+ MiB", completed.stdout, re.M)


def test_retention_fast_forward_passes_the_horizon_and_compares_the_snapshot() -> None:
    completed = subprocess.run(
        [
            *(sys.executable, str(BENCH / "retention.py"), "--fast-forward"),
            *("--series", "3", "--days", "3", "--retention", "10s:1h,1m:1d"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    rows = re.findall(r"^ *(\d+) +[\d.]+ +[\d.]+ +([\d,]+) +[\d.]+$", completed.stdout, re.M)
    assert [day for day, _ in rows] == ["1", "2", "3"], output
    held = [int(points.replace(",", "")) for _, points in rows]
    # Past the one-day horizon the rules' points stay level: an hour at 10 s
    # and the rest of the day in minutes per series (give or take a floor's step).
    assert abs(held[1] - 3 * (360 + 1380)) <= 3 * 8 and abs(held[2] - held[1]) <= 3 * 2, held
    in_blocks = re.search(r"([\d,]+) of them in blocks", output)
    assert in_blocks is not None and int(in_blocks.group(1).replace(",", "")) > 0, output
    # Only the sealed blocks are smaller than points (here a few hundred of
    # 5,223 points): a snapshot holding them as points would be 1.0x.
    ratio = re.search(r"as points only it would take [\d,]+ bytes \(([\d.]+)x\)", output)
    assert ratio is not None and float(ratio.group(1)) > 1.05, output


def test_retention_pause_compares_latency_with_and_without_rules() -> None:
    completed = subprocess.run(
        [
            *(sys.executable, str(BENCH / "retention_pause.py")),
            *("--series", "3", "--days", "2", "--seconds", "0.5", "--rate", "500"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    assert re.search(r"^no rules  : p50 [\d.]+ ms, p99 [\d.]+ ms", completed.stdout, re.M)
    rolled = re.search(r"^with rules: .* roll-up: ([\d,]+) points rolled", completed.stdout, re.M)
    assert rolled is not None and int(rolled.group(1).replace(",", "")) > 0
    assert re.search(r"^p99 with roll-up / without: [\d.]+", completed.stdout, re.MULTILINE)


def test_graphite_find_bench_reports_each_glob_with_what_it_found() -> None:
    completed = subprocess.run(
        [sys.executable, str(BENCH / "graphite_find.py"), "--requests", "3", "--hosts", "200"],
        capture_output=True,
        text=True,
        timeout=NETWORK_TIMEOUT * 6,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "20000 keys; 3 requests per glob" in completed.stdout
    # dc3.* lists the 200 hosts of dc3; dc3.host*.metric5 one leaf per host.
    assert re.search(r"^  dc3\.\* +200 nodes  median +[\d.]+ ms", completed.stdout, re.MULTILINE)
    assert re.search(r"dc3\.host\*\.metric5 +200 nodes", completed.stdout)
    assert re.search(r"^slowest median [\d.]+ ms: (within|OVER) the target", completed.stdout, re.M)


def test_graphite_render_bench_times_graphite_web_over_us() -> None:
    from conftest import skip_or_fail
    from graphite_web import GRAPHITE_WEB_MISSING, graphite_web_installed

    if not graphite_web_installed():
        skip_or_fail(GRAPHITE_WEB_MISSING)
    completed = subprocess.run(
        [
            sys.executable,
            str(BENCH / "graphite_render.py"),
            *("--series", "5", "--points", "100", "--repeat", "1"),
        ],
        capture_output=True,
        text=True,
        timeout=NETWORK_TIMEOUT * 12,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "5 series x 100 points; 1 runs" in completed.stdout
    assert re.search(r"^  graphite-web sumSeries +median +\d+ ms", completed.stdout, re.MULTILINE)
    assert re.search(r"^  our cluster answer +median +\d+ ms", completed.stdout, re.MULTILINE)


def test_tls_bench_reports_both_scenarios_for_both_modes(tmp_path: Path) -> None:
    figures = tmp_path / "tls.json"
    completed = subprocess.run(
        [
            sys.executable,
            str(BENCH / "tls.py"),
            "--scenarios",
            "rr-50,handshakes,rate-500",
            "--openers",
            "4",
            "--repeat",
            "1",
            "--requests",
            "30",
            "--seconds",
            "1",
            "--json",
            str(figures),
        ],
        capture_output=True,
        text=True,
        timeout=NETWORK_TIMEOUT * 6,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert re.search(
        r"^rr-50 server CPU per request: plaintext [\d.]+ us, TLS [\d.]+ us",
        completed.stdout,
        re.MULTILINE,
    )
    for mode in ("plaintext", "tls"):
        assert re.search(
            rf"^handshakes {mode}: \d+ new connections/s \(0 failed\)",
            completed.stdout,
            re.MULTILINE,
        )
    for mode in ("plaintext", "tls"):
        assert re.search(
            rf"^rate-500 {mode}: server CPU [\d.]+ us per request, \d+ answered/s",
            completed.stdout,
            re.MULTILINE,
        )
    assert re.search(
        r"^rate-500 TLS / plaintext server CPU per request: [\d.]+x", completed.stdout, re.MULTILINE
    )
    runs = json.loads(figures.read_text())
    assert runs["handshakes"]["tls"][0]["new_connections_per_s"] > 0
    for mode in ("plaintext", "tls"):
        assert runs["rate-500"][mode][0]["achieved_per_s"] > 250


def test_graphite_tags_bench_reports_each_query_with_what_it_found() -> None:
    completed = subprocess.run(
        [sys.executable, str(BENCH / "graphite_tags.py"), "--requests", "2", "--metrics", "5"],
        capture_output=True,
        text=True,
        timeout=NETWORK_TIMEOUT * 6,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "5000 keys; 2 requests per query" in completed.stdout
    # m042 is not among 5 metrics; job=j3 is one series in 7 of each metric's 1,000.
    assert re.search(r"findSeries name=,job= +0 found", completed.stdout)
    assert re.search(r"findSeries job= \(scan\) +715 found  median +[\d.]+ ms", completed.stdout)
    assert re.search(r"tag values job \(scan\) +7 found", completed.stdout)


def test_redis_store_bench_reports_ingest_get_all_and_failover() -> None:
    from conftest import skip_or_fail
    from redis_cluster import redis_programs_missing

    missing = redis_programs_missing()
    if missing is not None:
        skip_or_fail(missing)
    completed = subprocess.run(
        [sys.executable, str(BENCH / "redis_store.py"), "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    out = completed.stdout
    assert re.search(r"^  1 server\(s\): 20,000 puts in [\d.]+ s = [\d,]+ puts/s", out, re.M), out
    assert re.search(r"^  2 server\(s\): 40,000 puts in [\d.]+ s", out, re.M), out
    assert re.search(
        r"^  request-response, 50 connections: [\d,]+ puts/s; server CPU [\d,]+ us a put$",
        out,
        re.M,
    ), out
    for store in ("Redis Cluster", "memory"):
        assert re.search(rf"^  get \* over {store}: 20,000 points in [\d.]+ s$", out, re.M), out
    # With WAIT, nothing acknowledged is lost; the recovery time is measured.
    assert re.search(
        r"^  --redis-wait-replicas 1: first acknowledged batch [\d.]+ s after the kill;"
        r" [\d,]+ points acknowledged, 0 missing after failover$",
        out,
        re.M,
    ), out


def test_redis_store_bench_compares_ingest_with_another_checkout(tmp_path: Path) -> None:
    """``--against TREE`` runs the one-server ingest from TREE and from this
    checkout by turns (here TREE is this checkout too), and refuses a folder
    that is not a checkout."""
    from conftest import skip_or_fail
    from redis_cluster import redis_programs_missing

    missing = redis_programs_missing()
    if missing is not None:
        skip_or_fail(missing)
    refused = subprocess.run(
        [sys.executable, str(BENCH / "redis_store.py"), "--quick", "--against", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert refused.returncode != 0
    assert f"{tmp_path} is not a checkout of trio-metrics" in refused.stderr
    completed = subprocess.run(
        [
            *(sys.executable, str(BENCH / "redis_store.py"), "--quick"),
            *("--against", str(REPO), "--rounds", "1"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    out = completed.stdout
    assert re.search(rf"^  round 1, baseline \({re.escape(str(REPO))}\):$", out, re.M), out
    assert len(re.findall(r"^  1 server\(s\): 20,000 puts in", out, re.M)) == 2, out
    assert re.search(
        r"^  median of 1: baseline [\d,]+ puts/s, this [\d,]+ puts/s: [\d.]+x$", out, re.M
    ), out
    assert re.search(
        r"^  server CPU a put, median of 1: baseline [\d.]+ us, this [\d.]+ us: [\d.]+x$",
        out,
        re.M,
    ), out
