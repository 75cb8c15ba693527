"""Is memory flat across many poll cycles? One process, one store, cycle after cycle.

Started by ``bench/poll.py --soak CYCLES``: a cold cycle, then CYCLES warm
cycles (each after ``bump`` feeds changed, plus the random unconditional polls),
noting the resident memory (VmRSS, after the cycle) of the process and its parser
and classifier workers each time. A
leak shows as a steady climb; allocator high-water marks show as a plateau.

Prints one JSON line: {"rss_mb": [...], "wall_s": [...], "statuses": {...}}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from bench.measure import psutil
from bench.workers import _cycle, build_deps, bump, feeds_for

_RSS = re.compile(r"VmRSS:\s+(\d+)\s+kB")


def _rss_mb() -> float:
    """This process and its workers (forkserver children included)."""
    pids: list[int | str] = ["self"]
    if psutil is not None:
        pids += [c.pid for c in psutil.Process().children(recursive=True)]
    total = 0
    for pid in pids:
        try:
            found = _RSS.search(Path(f"/proc/{pid}/status").read_text())
        except OSError:  # a worker that just exited
            continue
        total += int(found.group(1)) if found else 0
    return total / 1024


async def run_soak(base: str, count: int, cycles: int, concurrency: int, bump_count: int
                   ) -> dict[str, Any]:
    feeds = feeds_for(base, count)
    rss: list[float] = []
    walls: list[float] = []
    statuses: Counter[str] = Counter()
    async with AsyncExitStack() as stack:
        # The daemon's layout: parser and classifier worker processes.
        deps, note, layout = await build_deps(stack, concurrency, parse="pool",
                                              classify_workers=1)
        for i in range(cycles + 1):
            if i:
                await asyncio.to_thread(bump, base, bump_count, 1000 + i)
            phase, summary = await _cycle(feeds, deps, concurrency)
            statuses.update(summary["statuses"])
            rss.append(round(_rss_mb(), 1))
            walls.append(round(phase.wall_s, 3))
    return {"classifier": note, "layout": layout, "rss_mb": rss, "wall_s": walls,
            "statuses": dict(statuses)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", required=True)
    parser.add_argument("--feeds", type=int, required=True)
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--bump", type=int, default=0)
    args = parser.parse_args(argv)
    result = asyncio.run(run_soak(args.base, args.feeds, args.cycles, args.concurrency,
                                  args.bump))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
