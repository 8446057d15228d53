"""``bench/soak.py`` run briefly as a real process: it must pass and report real numbers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SOAK = Path(__file__).resolve().parent.parent / "bench" / "soak.py"


def test_short_soak_passes(tmp_path: Path) -> None:
    report_path = tmp_path / "soak.json"
    command = [sys.executable, str(SOAK), "--duration", "3", "--json", str(report_path)]
    command += ["--good", "20", "--silent", "4", "--garbage", "4", "--vanish", "4"]
    # The timeout turns a hung server or generator into a failure, not a stuck run.
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "soak: PASSED" in done.stdout

    report = json.loads(report_path.read_text())
    assert report["passed"] is True
    assert report["failures"] == []
    assert report["verification"]["passed"] is True
    assert report["verification"]["acked_points"] > 0
    assert report["verification"]["missing"] == report["verification"]["wrong_value"] == 0
    assert report["good"]["requests"] > 0
    assert report["good"]["throughput_rps"] > 0
    assert report["server"]["alive"] is True
    assert report["garbage"]["connections"] >= 4
    assert report["vanish"]["connections"] > 0
    assert report["server_stats"]["puts"] >= report["good"]["puts"]
