"""Is memory flat across many poll cycles? One process, one store, cycle after cycle.

Started by ``bench/poll.py --soak CYCLES``: a cold cycle, then CYCLES warm
cycles (each after ``bump`` feeds changed, plus the random unconditional polls),
noting the process's resident memory (VmRSS, after the cycle) each time. A
leak shows as a steady climb; allocator high-water marks show as a plateau.

Prints one JSON line: {"rss_mb": [...], "wall_s": [...], "statuses": {...}}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
from collections import Counter
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.workers import _cycle, _deps, _parse_in_thread, bump, feeds_for, load_classifier

_RSS = re.compile(r"VmRSS:\s+(\d+)\s+kB")


def _rss_mb() -> float:
    found = _RSS.search(Path("/proc/self/status").read_text())
    return int(found.group(1)) / 1024 if found else 0.0


async def run_soak(base: str, count: int, cycles: int, concurrency: int, bump_count: int
                   ) -> dict[str, Any]:
    from monitor import app
    from monitor.decide import AlertRules
    from monitor.fetch import FetchLimits, build_client
    from monitor.store.sqlite import SqliteStore

    classifier, note = load_classifier()
    feeds = feeds_for(base, count)
    limits = FetchLimits(max_connections=max(concurrency, 10))
    rss: list[float] = []
    walls: list[float] = []
    statuses: Counter[str] = Counter()
    async with AsyncExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-soak-"))
        store = SqliteStore(Path(tmp) / "soak.db")
        stack.callback(store.close)
        store.migrate()
        client = await stack.enter_async_context(build_client(limits))
        deps = _deps(getattr(app, "parse_in_thread", _parse_in_thread), client=client,
                     store=store, classifier=classifier, fetch_limits=limits,
                     rules=AlertRules(destination="console"), max_items=500,
                     now=lambda: datetime.now(UTC))
        for i in range(cycles + 1):
            if i:
                await asyncio.to_thread(bump, base, bump_count, 1000 + i)
            phase, summary = await _cycle(feeds, deps, concurrency)
            statuses.update(summary["statuses"])
            rss.append(round(_rss_mb(), 1))
            walls.append(round(phase.wall_s, 3))
    return {"classifier": note, "rss_mb": rss, "wall_s": walls, "statuses": dict(statuses)}


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
