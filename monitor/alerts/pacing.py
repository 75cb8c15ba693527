"""Proactive pacing: a token bucket per destination, so the outbox stays inside Slack's
limits instead of running into them.

Slack allows about one message per second per channel, with short bursts. Sending as
fast as possible and backing off on 429 wastes a round trip per refusal and, when a
429 counted as the alert's failure, pushed alerts tens of minutes out. Pacing keeps
the steady rate; a 429 that still comes (another app posting in the channel, a
workspace-wide limit) empties the bucket so the burst does not repeat at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["Pacer"]


class Pacer:
    """``rate`` sends per second on average, up to ``burst`` at once; None: no pacing."""

    def __init__(self, rate: float | None, burst: int = 1, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._clock = clock
        self._tokens = float(self.burst)
        self._updated = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        if self.rate is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    async def acquire(self) -> None:
        """Wait for this send's turn (FIFO among concurrent senders of one destination)."""
        if self.rate is None or self.rate <= 0:
            return
        async with self._lock:
            while True:
                self._refill()
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)

    def empty(self) -> None:
        """After a rate limit: no burst until tokens accrue again."""
        self._refill()
        self._tokens = min(self._tokens, 0.0)
