"""The benchmark keeps working: a tiny run prints every figure, and the rule check's request count."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_reports_its_figures():
    result = subprocess.run([sys.executable, "-m", "bench.benchmark", "--albs", "1", "3", "--cycles", "2",
                             "--interval", "0.5"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    header, *rows = [line.split() for line in result.stdout.splitlines() if line.strip()][:3]
    assert header[:5] == ["albs", "discovery_requests", "discovery_seconds", "check_requests", "check_seconds_median"]
    assert "detection_seconds" in header
    figures = [dict(zip(header, row)) for row in rows]
    assert [f["albs"] for f in figures] == ["6", "8"]
    assert all(float(f["check_requests"]) == 2.0 for f in figures)  # the steady check, whatever the size
    assert all(0 < float(f["detection_seconds"]) < 30 for f in figures)
