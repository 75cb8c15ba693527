"""Being a good client to publishers: per-host concurrency, spacing and pauses.

Publishers block pollers that open many connections to one host or hit it in
bursts, and a daemon with thousands of feeds often has dozens on the same host
(one newspaper, many sections). ``HostLimiter`` lets at most ``per_host``
requests run against one host at a time, starts them at least
``min_gap_seconds`` apart, and caps the total with ``global_limit``, while
feeds on other hosts go ahead freely. It only tracks hosts that are busy or
inside their gap, so memory stays bounded however many hosts pass through.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

_SWEEP_FLOOR = 64


class HostPausedError(Exception):
    """The host asked for a pause longer than the caller is willing to wait in line.

    ``seconds`` is how much of the pause is left, so the caller can reschedule
    the poll for then instead of holding its place (and its concurrency slot).
    """

    def __init__(self, host: str, seconds: float) -> None:
        super().__init__(f"{host} asked for a pause (Retry-After); {seconds:.0f}s left")
        self.host = host
        self.seconds = seconds


@dataclass(slots=True)
class _Host:
    """One host's gate. ``users`` counts holders and waiters, so a live entry is never dropped."""

    semaphore: asyncio.Semaphore
    next_start: float = 0.0
    users: int = 0
    paused_until: float = field(default=0.0)


class HostLimiter:
    """Per-host concurrency and spacing plus a global cap, as ``async with limiter.slot(url)``.

    The host gate is taken before the global one: a request waiting for its
    (busy or paused) host must not sit on one of the global slots that
    requests to idle hosts could use.
    """

    def __init__(
        self,
        per_host: int = 2,
        min_gap_seconds: float = 1.0,
        global_limit: int = 50,
        *,
        max_pause_wait: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``max_pause_wait``: a request whose host is paused for longer than this
        raises ``HostPausedError`` instead of waiting (None: always wait)."""
        if per_host < 1 or global_limit < 1:
            raise ValueError("per_host and global_limit must be at least 1")
        if min_gap_seconds < 0:
            raise ValueError("min_gap_seconds must not be negative")
        self.per_host = per_host
        self.min_gap_seconds = min_gap_seconds
        self.global_limit = global_limit
        self.max_pause_wait = max_pause_wait
        self._clock = clock
        self._global = asyncio.Semaphore(global_limit)
        self._hosts: dict[str, _Host] = {}
        self._sweep_at = _SWEEP_FLOOR

    def __len__(self) -> int:
        """How many hosts are tracked right now (busy, waited on, or inside their gap)."""
        return len(self._hosts)

    @staticmethod
    def host_key(url: str) -> str:
        """The politeness key: the host name in lower case ("" for file: and broken URLs)."""
        try:
            return (urlsplit(url).hostname or "").lower()
        except ValueError:
            return ""

    @asynccontextmanager
    async def slot(self, url: str) -> AsyncIterator[None]:
        """Wait for a turn at ``url``'s host and a global slot; hold both inside the block."""
        key = self.host_key(url)
        if not key:  # a local file or an unusable URL: nobody to be polite to
            async with self._global:
                yield
            return
        host = self._host(key)
        host.users += 1
        try:
            async with host.semaphore:
                await self._wait_for_turn(key, host)
                async with self._global:
                    yield
        finally:
            host.users -= 1

    async def _wait_for_turn(self, key: str, host: _Host) -> None:
        # Reserve a start time before sleeping, so concurrent waiters queue up
        # one gap apart instead of all waking together after one gap.
        now = self._clock()
        paused = host.paused_until - now
        if self.max_pause_wait is not None and paused > self.max_pause_wait:
            raise HostPausedError(key, paused)
        start = max(now, host.next_start, host.paused_until)
        host.next_start = start + self.min_gap_seconds
        if start > now:
            await asyncio.sleep(start - now)

    def pause(self, url: str, seconds: float) -> None:
        """Start nothing more at ``url``'s host for ``seconds`` (e.g. its 429 Retry-After).

        Requests already waiting for the host wait longer; other hosts are unaffected.
        """
        key = self.host_key(url)
        if not key or seconds <= 0:
            return
        host = self._host(key)
        host.paused_until = max(host.paused_until, self._clock() + seconds)

    def _host(self, key: str) -> _Host:
        host = self._hosts.get(key)
        if host is None:
            host = self._hosts[key] = _Host(asyncio.Semaphore(self.per_host))
            self._maybe_sweep()
        return host

    def _maybe_sweep(self) -> None:
        """Drop hosts nobody uses whose gap and pause are over; amortised O(1) per new host."""
        if len(self._hosts) < self._sweep_at:
            return
        now = self._clock()
        for key in [
            k for k, h in self._hosts.items()
            if h.users == 0 and h.next_start <= now and h.paused_until <= now
        ]:
            del self._hosts[key]
        self._sweep_at = max(_SWEEP_FLOOR, 2 * len(self._hosts))

    def sweep(self) -> int:
        """Drop idle hosts now (normally automatic); returns how many are still tracked."""
        self._sweep_at = 0
        self._maybe_sweep()
        return len(self._hosts)

