"""The poll benchmark runs end to end and prints its tables (slow: about three minutes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_quick_benchmark_prints_the_tables() -> None:
    pytest.importorskip("aiohttp", reason="the benchmark server needs aiohttp")
    args = [sys.executable, str(ROOT / "bench" / "poll.py"), "--quick", "--soak", "2"]
    if os.environ.get("MONITOR_SHORT_SLOW"):
        args += ["--micro-requests", "150", "--profile-feeds", "10"]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "poll benchmark: 200 feeds" in out
    for row in ("cold", "warm", "all304", "naive baseline", "pipeline, threads",
                "pipeline, workers"):
        assert row in out
    assert "feeds/s" in out and "CPU ms/feed" in out and "loop lag ms" in out
    assert "fetch only, CPU ms per request" in out
    assert "monitor fetch_feed (build_client)" in out
    assert "where the CPU goes in a cold cycle" in out
    assert "where the CPU goes in an all304 cycle" in out
    assert "targets (issue 3, pipeline workers):" in out
    assert "memory across 2 warm cycles after a cold one" in out  # the soak ran
    assert "soak:" not in out  # and did not fail
    # Every feed was polled in both layouts: the cold cycle is all 200s, nothing failed.
    assert "threads cold: statuses {'ok': 200}" in out
    assert "workers cold: statuses {'ok': 200}" in out
