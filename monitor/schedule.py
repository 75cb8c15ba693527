"""APScheduler wiring: one interval job per feed plus the outbox drain.

The scheduler only calls injected coroutines; it knows nothing about feeds'
contents or Slack. Each job has ``max_instances=1`` (a slow feed is never
polled twice at once) and ``coalesce=True`` (after a pause, missed runs
collapse into one instead of a burst), and feeds start at random offsets
within the jitter window so they do not all fire together.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.models import Feed


class TaskTracker:
    """Remembers running job coroutines so shutdown can let them finish (or cancel them)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[object]] = set()

    def wrap(self, job: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[object]]:
        async def tracked() -> object:
            task = asyncio.current_task()
            if task is not None:
                self._tasks.add(task)
            try:
                return await job()
            finally:
                if task is not None:
                    self._tasks.discard(task)

        return tracked

    async def drain(self, grace_seconds: float) -> int:
        """Wait up to ``grace_seconds`` for running jobs; cancel the rest; return how many."""
        pending = {t for t in self._tasks if not t.done()}
        if not pending:
            return 0
        _, still = await asyncio.wait(pending, timeout=grace_seconds)
        for task in still:
            task.cancel()
        if still:
            await asyncio.gather(*still, return_exceptions=True)
        return len(still)


def feed_job_id(name: str) -> str:
    return f"feed:{name}"


def build_scheduler(
    feeds: list[Feed],
    *,
    poll: Callable[[Feed], Awaitable[object]],
    drain: Callable[[], Awaitable[object]],
    drain_interval_seconds: float,
    jitter_seconds: float,
    max_interval_seconds: float,
    tracker: TaskTracker,
    first_runs: Mapping[str, datetime] | None = None,
    rng: random.Random | None = None,
) -> AsyncIOScheduler:
    """Each feed job re-arms itself: after a poll the app calls ``reschedule`` with the
    adaptive next time. The interval trigger (the maximum interval) is only a safety net.
    ``first_runs`` resumes the schedule stored before a restart."""
    rng = rng or random.Random()
    first_runs = first_runs or {}
    scheduler = AsyncIOScheduler(timezone=UTC)
    now = datetime.now(UTC)
    for feed in feeds:
        if not feed.enabled:
            continue

        async def poll_this(feed: Feed = feed) -> object:
            return await poll(feed)

        stored = first_runs.get(feed.name)
        start = stored if stored is not None and stored > now else (
            now + timedelta(seconds=rng.uniform(0, max(jitter_seconds, 1.0)))
        )
        scheduler.add_job(
            tracker.wrap(poll_this),
            IntervalTrigger(seconds=max_interval_seconds),
            id=feed_job_id(feed.name),
            name=f"poll {feed.name}",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            next_run_time=start,
        )
    scheduler.add_job(
        tracker.wrap(drain),
        IntervalTrigger(seconds=drain_interval_seconds),
        id="outbox:drain",
        name="drain outbox",
        max_instances=1,
        coalesce=True,
        next_run_time=now,
    )
    return scheduler


def reschedule(scheduler: AsyncIOScheduler, feed_name: str, when: datetime) -> None:
    """Move a feed's next poll (called after each poll with the adaptive time)."""
    job = scheduler.get_job(feed_job_id(feed_name))
    if job is not None:
        job.modify(next_run_time=when)
