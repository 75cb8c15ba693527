"""APScheduler wiring: one job per feed, re-armed after each poll, plus the outbox drain.

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
from typing import Protocol

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.models import Feed


class TaskTracker:
    """Remembers running job coroutines so a graceful stop can let them finish.

    APScheduler's asyncio executor cancels every running coroutine the moment the
    scheduler shuts down, and logs each cancellation with a traceback. So the
    app pauses the scheduler instead, waits here for what is running, and only
    then cancels what is left; a job cancelled by ``drain`` ends quietly (it
    returns None) because its cancellation is the planned end of a stop, not a
    fault worth a traceback.
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[object]] = set()
        self._stopping = False

    def wrap(self, job: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[object]]:
        async def tracked() -> object:
            task = asyncio.current_task()
            if task is not None:
                self._tasks.add(task)
            try:
                return await job()
            except asyncio.CancelledError:
                if self._stopping:
                    return None
                raise
            finally:
                if task is not None:
                    self._tasks.discard(task)

        return tracked

    @property
    def running(self) -> int:
        return sum(1 for t in self._tasks if not t.done())

    async def drain(self, grace_seconds: float) -> int:
        """Wait up to ``grace_seconds`` for running jobs; cancel the rest; return how many."""
        self._stopping = True
        pending = {t for t in self._tasks if not t.done()}
        if not pending:
            return 0
        _, still = await asyncio.wait(pending, timeout=grace_seconds)
        for task in still:
            task.cancel()
        if still:
            await asyncio.gather(*still, return_exceptions=True)
        return len(still)


FEED_JOB_PREFIX = "feed:"


def feed_job_id(name: str) -> str:
    return f"{FEED_JOB_PREFIX}{name}"


class PollResult(Protocol):
    """What a feed job returns: when the feed should be polled next (None: not decided)."""

    @property
    def next_poll_at(self) -> datetime | None: ...


def build_scheduler(
    feeds: list[Feed],
    *,
    poll: Callable[[Feed], Awaitable[PollResult | None]],
    drain: Callable[[], Awaitable[object]],
    drain_interval_seconds: float,
    jitter_seconds: float,
    safety_net_seconds: float,
    tracker: TaskTracker,
    first_runs: Mapping[str, datetime] | None = None,
    rng: random.Random | None = None,
) -> AsyncIOScheduler:
    """One job per enabled feed plus the drain; feed jobs are re-armed after they return.

    The poll's result says when the feed is due next (its adaptive interval, or
    the failure back-off). Re-arming happens in a listener that runs once the job
    has *returned*: re-arming from inside the job raced with ``max_instances=1``
    (a next time already past while the job still ran made APScheduler skip the
    run and fall back to the trigger's interval). The interval trigger is only a
    safety net for a job whose result names no time; it is kept no longer than
    the default interval, so a feed can never fall silent for hours.
    ``first_runs`` resumes the schedule stored before a restart.
    """
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
            IntervalTrigger(seconds=safety_net_seconds),
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

    def rearm(event: JobExecutionEvent) -> None:
        if not event.job_id.startswith(FEED_JOB_PREFIX):
            return
        when = getattr(event.retval, "next_poll_at", None) if event.exception is None else None
        if when is None:  # a bug, or a poll skipped by a stop: the safety net, jittered
            when = datetime.now(UTC) + timedelta(
                seconds=rng.uniform(safety_net_seconds / 2, safety_net_seconds))
        job = scheduler.get_job(event.job_id)
        if job is not None:
            job.modify(next_run_time=when)

    scheduler.add_listener(rearm, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    return scheduler
