"""What one benchmark phase costs: wall time, CPU time, peak memory and event-loop lag.

CPU is the process's own (all threads) plus any child processes', so moving
work to a thread or a process pool cannot hide it. Peak memory uses Linux's
resettable high-water mark (writing 5 to /proc/PID/clear_refs), so each phase
reports its own peak rather than the process's lifetime one; where that is not
allowed it falls back to the lifetime peak and says so.
"""

from __future__ import annotations

import asyncio
import os
import re
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path

try:
    import psutil
except ImportError:  # the benchmark still runs; child processes are then not counted
    psutil = None  # type: ignore[assignment]

_HWM = re.compile(r"VmHWM:\s+(\d+)\s+kB")


@dataclass
class Phase:
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    loop_lag_ms: float | None = None
    rss_is_lifetime_peak: bool = False

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _children() -> list[int]:
    if psutil is None:
        return []
    try:
        return [c.pid for c in psutil.Process().children(recursive=True)]
    except psutil.Error:
        return []


def _child_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def _reset_hwm(pid: int | str = "self") -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _hwm_kb(pid: int | str = "self") -> int:
    try:
        found = _HWM.search(Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return 0
    return int(found.group(1)) if found else 0


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime + reaped.ru_utime + reaped.ru_stime


class Meter:
    """``with Meter() as m: ...`` then ``m.phase``; ``watch_loop()`` adds the lag heartbeat."""

    def __init__(self) -> None:
        self.phase = Phase()
        self._lag_task: asyncio.Task[None] | None = None
        self._worst_lag = 0.0

    def __enter__(self) -> Meter:
        self._pids = _children()
        resettable = _reset_hwm()
        for pid in self._pids:
            _reset_hwm(pid)
        self.phase.rss_is_lifetime_peak = not resettable
        self._cpu = _own_cpu() + _child_cpu(self._pids)
        self._wall = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.phase.wall_s = time.perf_counter() - self._wall
        pids = sorted(set(self._pids) | set(_children()))
        self.phase.cpu_s = _own_cpu() + _child_cpu(pids) - self._cpu
        own = _hwm_kb() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.phase.peak_rss_mb = (own + sum(_hwm_kb(pid) for pid in pids)) / 1024
        if self._lag_task is not None:
            self._lag_task.cancel()
            self.phase.loop_lag_ms = 1000 * self._worst_lag

    def watch_loop(self, interval: float = 0.01) -> None:
        """Start a heartbeat that wakes every ``interval`` s and records its worst lateness."""

        async def beat() -> None:
            loop = asyncio.get_running_loop()
            while True:
                due = loop.time() + interval
                await asyncio.sleep(interval)
                self._worst_lag = max(self._worst_lag, loop.time() - due)

        self._lag_task = asyncio.get_running_loop().create_task(beat())


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
