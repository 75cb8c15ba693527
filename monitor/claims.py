"""Work sharing without a leader: daemons on one shared database claim due feeds with leases.

With several daemons on one PostgreSQL database, per-feed APScheduler jobs would
have every daemon wake for every feed and race for it. Instead each daemon runs
this loop: claim a batch of due feeds (``Store.claim_feeds``: ``FOR UPDATE SKIP
LOCKED``, so two daemons never get the same feed), poll them through the usual
pipeline, and release each lease once the poll's state is saved. A lease is
renewed while its poll runs; a daemon that dies (``kill -9``, power loss) stops
renewing, its leases expire and the others take its feeds over. Nobody elects
anyone, so there is no leader to lose.

A feed is claimable when it is due (``next_poll_at`` passed, or never polled) and
not leased by another daemon; the oldest due goes first, so none starves. Between
claims the loop sleeps until the earliest due feed (``Store.next_feed_due``) or a
short cap, and wakes early when one of its polls ends and a slot is free.

The feed-state cache (``monitor.feeds.statecache``) assumes one writer; here the
row of a claimed feed may have been written by another daemon since, so each claim
drops the feed's cached row and the poll reads the stored one.

SQLite keeps the per-feed jobs (``monitor.schedule``): one daemon per file (the
flock of ``monitor.daemonlock``), for which claims would only add a write per poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from monitor.errors import StoreError
from monitor.feeds import FeedStates
from monitor.models import Feed
from monitor.schedule import PollResult, TaskTracker
from monitor.store import is_postgres
from monitor.store.base import Store

__all__ = ["ClaimLoop", "ClaimOptions", "daemon_owner_id", "shared_backend"]

def shared_backend(database_url: str) -> bool:
    """True for a database several daemons may use at once (PostgreSQL); SQLite is one
    daemon per file (``monitor.daemonlock``)."""
    return is_postgres(database_url)


def daemon_owner_id() -> str:
    """``host:pid:random``: unique per daemon process, readable in the feeds table.

    The random part tells apart two processes that got the same pid (a container
    restarted on the same host) while the first one's leases are still live.
    """
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class ClaimOptions:
    lease_seconds: float
    """How long a claim holds a feed unless renewed: a dead daemon's feeds wait this long."""
    batch: int
    """Feeds held at once: the daemon's concurrent polls (``schedule.max_concurrent_feeds``)."""
    safety_net_seconds: float
    """Next try of a feed whose poll named no time (a bug, a stop), as the jobs' safety net."""
    max_sleep: float = 5.0
    """Longest sleep between claims, so feeds released by others are seen soon."""
    busy_sleep: float = 1.0
    """Sleep when feeds are due but all leased by other daemons (their polls are running)."""

    @property
    def renew_every(self) -> float:
        return self.lease_seconds / 3


class _Poll(Protocol):
    def __call__(self, feed: Feed) -> Awaitable[PollResult | None]: ...


class ClaimLoop:
    """One daemon's share of the feeds: claim, poll, renew, release."""

    def __init__(self, store: Store, feeds: Sequence[Feed], *, poll: _Poll,
                 options: ClaimOptions, owner: str, tracker: TaskTracker,
                 states: FeedStates | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 rng: random.Random | None = None,
                 logger: logging.Logger | None = None) -> None:
        self.store = store
        self.feeds = {f.name: f for f in feeds if f.enabled}
        self.poll = poll
        self.options = options
        self.owner = owner
        self.tracker = tracker
        self.states = states
        self.now = now
        self.rng = rng or random.Random()
        self.log = logger or logging.getLogger("monitor.claims")
        self.running: dict[str, asyncio.Task[object]] = {}
        self._finished: list[str] = []
        self._not_before: dict[str, datetime] = {}
        """Local floor on a feed's next claim when the store cannot say: the retry time of a
        poll whose outcome was not saved (else an outage would re-claim it in a tight
        loop), or the safety net after a poll that named no time (a disabled feed)."""
        self._wake = asyncio.Event()
        self.claimed = 0
        """Claims taken since start (for tests, the benchmark and the log)."""

    # -- the loop ------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Claim and poll until ``stop``; running polls are left to the graceful stop."""
        renewer = asyncio.create_task(self._renew_until(stop))
        try:
            while not stop.is_set():
                delay = await self._step()
                await self._sleep(delay, stop)
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    async def _step(self) -> float:
        """Release what ended, claim what is due; returns how long to sleep."""
        free = self.options.batch - len(self.running)
        # Claim once a quarter of the slots is free (or all are): one query per few
        # polls rather than one per poll, without holding feeds back for long. The
        # leases of polls that ended go back just before: their feeds are not due
        # again yet, so holding them a little longer keeps nobody waiting.
        if free <= 0 or (self.running and free < max(1, self.options.batch // 4)):
            return self.options.max_sleep
        await self._release_finished()
        now = self.now()
        candidates = self._candidates(now)
        if not candidates:
            return self._until_local_floor(now)
        try:
            names = await asyncio.to_thread(
                self.store.claim_feeds, candidates, owner=self.owner, now=now,
                lease_seconds=self.options.lease_seconds, limit=free)
        except StoreError as exc:
            self.log.warning("could not claim feeds: %s; trying again in %.0f s", exc,
                             self.options.max_sleep)
            return self.options.max_sleep
        for name in names:
            self._start(name)
        if len(names) == free:  # perhaps more are due: claim again when slots free up
            return self.options.max_sleep
        return await self._until_due([n for n in candidates if n not in self.running], now)

    def _candidates(self, now: datetime) -> list[str]:
        return [name for name in self.feeds if name not in self.running
                and self._not_before.get(name, now) <= now]

    def _until_local_floor(self, now: datetime) -> float:
        floors = [t for n, t in self._not_before.items() if n not in self.running]
        if not floors:
            return self.options.max_sleep
        return min(max((min(floors) - now).total_seconds(), 0.0), self.options.max_sleep)

    async def _until_due(self, names: list[str], now: datetime) -> float:
        """Seconds until the earliest of ``names`` is due, within [busy_sleep, max_sleep]
        when one is due already (someone else holds it) and at most max_sleep otherwise."""
        if not names:
            return self._until_local_floor(now)
        try:
            due = await asyncio.to_thread(self.store.next_feed_due, names)
        except StoreError as exc:
            self.log.warning("could not read the next due feed: %s", exc)
            return self.options.max_sleep
        if due is None:
            return self.options.max_sleep
        seconds = (due - now).total_seconds()
        if seconds <= 0:
            return self.options.busy_sleep
        return min(seconds, self.options.max_sleep)

    async def _sleep(self, delay: float, stop: asyncio.Event) -> None:
        if delay <= 0:
            await asyncio.sleep(0)
            return
        self._wake.clear()
        waits = [asyncio.create_task(self._wake.wait()), asyncio.create_task(stop.wait())]
        try:
            await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()

    # -- one claimed feed ------------------------------------------------------------------
    def _start(self, name: str) -> None:
        self.claimed += 1
        if self.states is not None:
            # Another daemon may have polled it since this one cached its row.
            self.states.forget(name)
        feed = self.feeds[name]

        async def job() -> object:
            return await self.poll(feed)

        task = asyncio.create_task(self.tracker.wrap(job)(), name=f"poll {name}")
        self.running[name] = task
        task.add_done_callback(lambda t, name=name: self._ended(name, t))

    def _ended(self, name: str, task: asyncio.Task[object]) -> None:
        self.running.pop(name, None)
        self._finished.append(name)
        result: object = None
        if not task.cancelled():
            exc = task.exception()
            if exc is not None:
                self.log.error("poll of feed %r raised %s: %s", name, type(exc).__name__, exc)
            else:
                result = task.result()
        when = getattr(result, "next_poll_at", None)
        if when is None:  # a bug, a stop, a disabled feed: the jobs' jittered safety net
            safety = self.options.safety_net_seconds
            self._not_before[name] = self.now() + timedelta(
                seconds=self.rng.uniform(safety / 2, safety))
        elif getattr(result, "store_error", None) is not None:
            self._not_before[name] = when  # the store still says "due": not before the retry
        else:
            self._not_before.pop(name, None)  # the stored next time is the truth
        self._wake.set()

    async def _release_finished(self) -> None:
        if not self._finished:
            return
        names, self._finished = self._finished, []
        try:
            await asyncio.to_thread(self.store.release_feeds, names, owner=self.owner)
        except StoreError as exc:
            # Not fatal: the leases expire by themselves; try again with the next batch.
            self._finished.extend(names)
            self.log.warning("could not release %d feed lease(s): %s", len(names), exc)

    # -- leases ----------------------------------------------------------------------------
    async def _renew_until(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.options.renew_every)
            await self.renew()

    async def renew(self) -> list[str]:
        """Extend the leases of running polls; a poll whose lease was lost is stopped,
        because another daemon may now poll that feed. Returns the names lost."""
        held = list(self.running)
        if not held:
            return []
        try:
            kept = await asyncio.to_thread(
                self.store.renew_feed_leases, held, owner=self.owner, now=self.now(),
                lease_seconds=self.options.lease_seconds)
        except StoreError as exc:
            self.log.warning("could not renew %d feed lease(s): %s", len(held), exc)
            return []
        lost = [n for n in held if n not in set(kept) and n in self.running]
        for name in lost:
            self.log.warning("lease on feed %r lost (renewal came too late); its poll is "
                             "stopped so that no two daemons poll it at once", name)
            self.running[name].cancel()
        return lost

    async def run_once(self) -> list[object]:
        """One pass, for ``once`` beside daemons: claim every due feed nobody holds, poll
        them with leases renewed (and a lost lease stopping its poll) as in ``run``, hand
        the leases back; returns the polls' results. A claim that fails raises StoreError."""
        names = await asyncio.to_thread(
            self.store.claim_feeds, list(self.feeds), owner=self.owner, now=self.now(),
            lease_seconds=self.options.lease_seconds, limit=len(self.feeds))
        self.log.info("claimed %d of %d feeds; the rest are not due yet or held by another "
                      "daemon", len(names), len(self.feeds))
        for name in names:
            self._start(name)
        stop = asyncio.Event()
        renewing = asyncio.create_task(self._renew_until(stop))
        try:
            results = await asyncio.gather(*self.running.values(), return_exceptions=True)
        finally:
            stop.set()
            await renewing
            await self.close()
        return [r for r in results if not isinstance(r, BaseException)]

    async def close(self) -> None:
        """After the graceful stop: hand back every lease (finished or abandoned polls), so
        the other daemons take those feeds at once rather than after the lease."""
        for task in list(self.running.values()):
            task.cancel()
        if self.running:
            await asyncio.gather(*self.running.values(), return_exceptions=True)
        await self._release_finished()
