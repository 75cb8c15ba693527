"""Proactive pacing: a token bucket per destination, so the outbox stays inside Slack's
limits instead of running into them.

Slack allows about one message per second per channel, with short bursts. Sending as
fast as possible and backing off on 429 wastes a round trip per refusal and, when a
429 counted as the alert's failure, pushed alerts tens of minutes out. Pacing keeps
the steady rate; a 429 that still comes (another app posting in the channel, a
workspace-wide limit) empties the bucket so the burst does not repeat at once.

Several daemons on one PostgreSQL database drain one outbox, and Slack's limit is per
channel, not per daemon: a bucket in each process would let N daemons post N times
the pace. With ``shared`` the turn comes from the database instead
(``Store.take_send_slot``, GCRA: one row per destination holding its theoretical
arrival time, updated atomically), so the pace holds across daemons. Epoch time is
used there because it is compared across machines. If the database cannot be asked,
the local bucket paces this send: a store hiccup slows nothing down and never sends
faster than one daemon's pace.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from monitor.errors import StoreError

__all__ = ["Pacer", "SharedPace"]

log = logging.getLogger("monitor.outbox")


class SharedPace(Protocol):
    """The store's side of shared pacing (``Store.take_send_slot``)."""

    def take_send_slot(self, destination: str, *, now: float, interval: float,
                       burst: int) -> float: ...

    def hold_send_slots(self, destination: str, *, until: float, interval: float,
                        burst: int) -> None: ...


class Pacer:
    """``rate`` sends per second on average, up to ``burst`` at once; None: no pacing.

    ``shared`` with ``key`` (the destination) takes each turn from the database so
    that every daemon sharing it keeps one pace together.
    """

    def __init__(self, rate: float | None, burst: int = 1, *,
                 clock: Callable[[], float] = time.monotonic,
                 shared: SharedPace | None = None, key: str = "",
                 wall: Callable[[], float] = time.time) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._clock = clock
        self._tokens = float(self.burst)
        self._updated = clock()
        self._lock = asyncio.Lock()
        self.shared = shared
        self.key = key
        self._wall = wall

    def _refill(self) -> None:
        now = self._clock()
        if self.rate is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    async def acquire(self) -> None:
        """Wait for this send's turn (FIFO among concurrent senders of one destination)."""
        if self.rate is None or self.rate <= 0:
            return
        if self.shared is not None:
            try:
                wait = await asyncio.to_thread(
                    self.shared.take_send_slot, self.key, now=self._wall(),
                    interval=1.0 / self.rate, burst=self.burst)
            except StoreError as exc:
                log.warning("%s: the shared send pace could not be read (%s); pacing this "
                            "send locally", self.key, exc)
            else:
                if wait > 0:
                    await asyncio.sleep(wait)
                return
        async with self._lock:
            while True:
                self._refill()
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)

    def empty(self) -> None:
        """After a rate limit: no burst until tokens accrue again (this process's bucket)."""
        self._refill()
        self._tokens = min(self._tokens, 0.0)

    async def hold(self, seconds: float) -> None:
        """After a rate limit of ``seconds``: with ``shared``, every daemon's next send to
        this destination waits it out too (Slack's limit is per channel, not per
        process); without, only this process's bucket is emptied."""
        self.empty()
        if self.shared is None or self.rate is None or self.rate <= 0 or seconds <= 0:
            return
        try:
            await asyncio.to_thread(
                self.shared.hold_send_slots, self.key, until=self._wall() + seconds,
                interval=1.0 / self.rate, burst=self.burst)
        except StoreError as exc:
            log.warning("%s: could not share the rate limit with other daemons (%s); "
                        "only this one waits", self.key, exc)
