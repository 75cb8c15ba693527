"""The stories benchmark runs end to end and prints its table (slow: about a minute)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_quick_benchmark_prints_the_table() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "stories.py"), "--quick"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    for row in ("stage, batches of 60", "stage, one item at a time", "naive all-pairs",
                "speed vs baseline", "CPU per item", "memory (tracemalloc"):
        assert row in out
