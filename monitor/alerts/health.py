"""Whether a destination can take messages right now, shared by every drain of the daemon.

A destination that is down (connection refused, 5xx, timeouts) is down for every
alert at once. Treating each alert's failure on its own gave one warning per
alert per attempt and spread the backlog over each alert's growing back-off, so
after an outage of a few minutes alerts trickled out for up to an hour. Here the
outage belongs to the destination: one line when it starts, one when it ends;
while it lasts the drainer sends one probe (the oldest waiting alert) at growing
intervals capped at ``OUTAGE_PROBE_CAP``, and the first success lets the whole
backlog go out at once, oldest first. A rate limit (429 with Retry-After) is a
pause of the destination, not a failure of the alert.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta

from monitor.alerts.pacing import Pacer

__all__ = ["OUTAGE_PROBE_BASE", "OUTAGE_PROBE_CAP", "DestinationHealth"]

OUTAGE_PROBE_BASE = 2.0
"""Seconds before the first probe after a failure."""

OUTAGE_PROBE_CAP = 30.0
"""Longest wait between probes: the longest an alert waits after the destination is back."""


class DestinationHealth:
    """Up, down (since when, next probe) or paused (until when) for one destination."""

    def __init__(
        self,
        name: str,
        *,
        logger: logging.Logger,
        probe_base: float = OUTAGE_PROBE_BASE,
        probe_cap: float = OUTAGE_PROBE_CAP,
        rng: random.Random | None = None,
        pacer: Pacer | None = None,
    ) -> None:
        self.name = name
        self.pacer = pacer or Pacer(None)
        self.rate_limits = 0
        """429s seen (for the log and metrics); a 429 is never counted as an alert's failure."""
        self._storm_logged_at: datetime | None = None
        self.log = logger
        self.probe_base = probe_base
        self.probe_cap = max(probe_cap, probe_base)
        self.rng = rng or random.Random()
        self.down_since: datetime | None = None
        self.failures = 0
        self.last_error: str | None = None
        self._not_before: datetime | None = None

    def can_send(self, now: datetime) -> bool:
        """False while an outage's next probe or a rate limit's pause is still ahead."""
        return self._not_before is None or now >= self._not_before

    @property
    def not_before(self) -> datetime | None:
        return self._not_before

    def failed(self, error: str, now: datetime) -> datetime:
        """Record a failed send; returns when the next probe may go. Logs only the start."""
        self.failures += 1
        self.last_error = error
        exponent = min(self.failures - 1, 30)
        ceiling = min(self.probe_cap, self.probe_base * 2.0**exponent)
        delay = self.rng.uniform(ceiling / 2, ceiling)
        self._not_before = now + timedelta(seconds=delay)
        if self.down_since is None:
            self.down_since = now
            self.log.warning(
                "%s is unreachable: %s; alerts wait in the outbox (nothing is lost) and %s is "
                "checked again every %.0f s at most", self.name, error, self.name, self.probe_cap,
            )
        else:
            self.log.debug("%s still unreachable (%d failed probes): %s",
                           self.name, self.failures, error)
        return self._not_before

    def paused(self, until: datetime, why: str, now: datetime) -> None:
        """A rate limit: nothing is sent before ``until``; logged once per pause."""
        if self._not_before is None or until > self._not_before:
            if self._not_before is None or self._not_before <= now:
                self.log.warning("%s asked to slow down (%s); sending resumes at %s",
                                 self.name, why, until.isoformat(timespec="seconds"))
            self._not_before = until

    def rate_limited(self, wait: float, now: datetime) -> None:
        """A 429 answered inline (the drainer waits ``wait`` s and resends): logged once
        per minute of a storm, not once per refusal."""
        self.rate_limits += 1
        self.pacer.empty()
        if self._storm_logged_at is None or now - self._storm_logged_at > timedelta(minutes=1):
            self._storm_logged_at = now
            self.log.info("%s is rate limiting (Retry-After %.1f s); pacing down and resending "
                          "in order (%d rate limit(s) so far)", self.name, wait,
                          self.rate_limits)
        else:
            self.log.debug("%s rate limit: waiting %.1f s", self.name, wait)

    def succeeded(self, now: datetime, *, waiting: int | None = None) -> None:
        """A send went through: ends an outage (one line) and any pause."""
        if self.down_since is not None:
            lasted = (now - self.down_since).total_seconds()
            backlog = f"; sending the {waiting} waiting alert(s), oldest first" if waiting else ""
            self.log.info("%s is reachable again after %.0f s%s", self.name, lasted, backlog)
        self.down_since = None
        self.failures = 0
        self.last_error = None
        if self._not_before is not None and now >= self._not_before:
            self._not_before = None
