"""The real APScheduler: feeds are re-armed after each poll returns, and a stop is quiet.

Re-arming used to happen inside the poll; a next time already past while the job
still ran made APScheduler skip it (``max_instances=1``) and fall back to the
trigger's six-hour interval. These tests run the scheduler for real, in seconds.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from monitor.models import Feed
from monitor.schedule import TaskTracker, build_scheduler


@dataclass
class Result:
    next_poll_at: datetime | None


async def nothing() -> None:
    return None


async def test_a_next_time_already_past_when_the_poll_returns_runs_at_once() -> None:
    polls: list[float] = []

    async def poll(feed: Feed) -> Result:
        started = datetime.now(UTC)
        polls.append(asyncio.get_running_loop().time())
        await asyncio.sleep(0.2)  # the poll outlives the time it asks for
        return Result(started + timedelta(seconds=0.05))

    scheduler = build_scheduler(
        [Feed("fast", "http://127.0.0.1:9/feed.xml")], poll=poll, drain=nothing,
        drain_interval_seconds=60, jitter_seconds=0, safety_net_seconds=600,
        tracker=TaskTracker(), first_runs={"fast": datetime.now(UTC) + timedelta(seconds=0.05)},
    )
    scheduler.start()
    try:
        await asyncio.sleep(1.5)
    finally:
        scheduler.shutdown(wait=False)
    assert len(polls) >= 4, f"polled {len(polls)} times in 1.5 s; it was skipped"


async def test_a_poll_that_names_no_time_falls_back_to_the_short_safety_net() -> None:
    polls: list[float] = []

    async def poll(feed: Feed) -> Result | None:
        polls.append(asyncio.get_running_loop().time())
        return None if len(polls) % 2 else Result(None)

    scheduler = build_scheduler(
        [Feed("quiet", "http://127.0.0.1:9/feed.xml")], poll=poll, drain=nothing,
        drain_interval_seconds=60, jitter_seconds=0, safety_net_seconds=0.4,
        tracker=TaskTracker(), first_runs={"quiet": datetime.now(UTC) + timedelta(seconds=0.05)},
    )
    scheduler.start()
    try:
        await asyncio.sleep(1.6)
    finally:
        scheduler.shutdown(wait=False)
    assert len(polls) >= 3
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    assert max(gaps) <= 0.5


async def test_stop_lets_running_jobs_finish_within_the_grace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    finished: list[str] = []

    async def poll(feed: Feed) -> Result:
        await asyncio.sleep(0.4)
        finished.append(feed.name)
        return Result(datetime.now(UTC) + timedelta(hours=1))

    tracker = TaskTracker()
    feeds = [Feed(f"f{i}", f"http://127.0.0.1:9/{i}.xml") for i in range(5)]
    now = datetime.now(UTC) + timedelta(seconds=0.05)
    scheduler = build_scheduler(
        feeds, poll=poll, drain=nothing, drain_interval_seconds=60, jitter_seconds=0,
        safety_net_seconds=600, tracker=tracker, first_runs={f.name: now for f in feeds},
    )
    scheduler.start()
    await asyncio.sleep(0.2)
    assert tracker.running == 5
    scheduler.pause()
    assert await tracker.drain(5.0) == 0
    scheduler.shutdown(wait=False)
    assert sorted(finished) == [f.name for f in feeds]


async def test_jobs_past_the_grace_are_cancelled_without_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)

    async def poll(feed: Feed) -> Result:
        await asyncio.sleep(30)
        return Result(None)

    tracker = TaskTracker()
    feeds = [Feed(f"slow{i}", f"http://127.0.0.1:9/{i}.xml") for i in range(50)]
    now = datetime.now(UTC) + timedelta(seconds=0.05)
    scheduler = build_scheduler(
        feeds, poll=poll, drain=nothing, drain_interval_seconds=60, jitter_seconds=0,
        safety_net_seconds=600, tracker=tracker, first_runs={f.name: now for f in feeds},
    )
    scheduler.start()
    await asyncio.sleep(0.3)
    scheduler.pause()
    assert await tracker.drain(0.2) == 50
    scheduler.shutdown(wait=False)
    await asyncio.sleep(0.05)
    noisy = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert noisy == [], [r.getMessage() for r in noisy[:3]]
