"""Storage failures as one incident: one line and one ops notice when they start, one when they end.

A read-only file, a full disk or a lock held by another process fails every poll
and every drain at once. Logged per poll, that was thousands of lines a day
(with a traceback every drain interval) and no notice to anyone; and SQLite,
having opened an unwritable file read-only, stayed read-only after the fix.
So failures are counted here: the first one of a run is logged (with its cause)
and announced to the ops channel, the rest go to debug, the connection is
reopened after every few failures (at most every ``reopen_every_seconds``), and
the first success afterwards is logged with how long storage was failing.
Feeds keep being polled with their failure back-off meanwhile; nothing is marked
done until it is stored, so the items are fetched and recorded again after recovery.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from monitor.errors import StoreError

__all__ = ["StoreHealth"]


class StoreHealth:
    """Turns a stream of StoreErrors (from polls and drains) into one incident."""

    def __init__(
        self,
        reopen: Callable[[], None],
        *,
        logger: logging.Logger,
        reopen_after: int = 3,
        reopen_every_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reopen = reopen
        self.log = logger
        self.reopen_after = reopen_after
        self.reopen_every_seconds = reopen_every_seconds
        self._clock = clock
        self.failing_since: float | None = None
        self.failures = 0
        self.total_failures = 0
        self._last_reopen = float("-inf")

    @property
    def failing(self) -> bool:
        return self.failing_since is not None

    def failed(self, error: StoreError | str, where: str) -> str | None:
        """Count a failure; returns the ops notice to send when this starts an incident."""
        self.failures += 1
        self.total_failures += 1
        notice = None
        if self.failing_since is None:
            self.failing_since = self._clock()
            self.log.error(
                "storage is failing (%s): %s; feeds are still polled with back-off and "
                "nothing is marked done until it is stored", where, error,
            )
            notice = (f"The news monitor cannot write its database: {error}. Feeds are still "
                      "polled; new items are recorded once storage works again.")
        else:
            self.log.debug("storage still failing (%s): %s", where, error)
        now = self._clock()
        if self.failures >= self.reopen_after and now - self._last_reopen >= \
                self.reopen_every_seconds:
            self._last_reopen = now
            try:
                self._reopen()
                self.log.debug("storage: reopened the database after %d failures", self.failures)
            except StoreError as exc:
                self.log.debug("storage: reopening failed: %s", exc)
        return notice

    def succeeded(self) -> str | None:
        """A write went through; returns the recovery notice if an incident ends here."""
        if self.failing_since is None:
            return None
        lasted = self._clock() - self.failing_since
        self.log.info("storage works again after %.0f s (%d failed operations)",
                         lasted, self.failures)
        self.failing_since = None
        self.failures = 0
        return f"The news monitor's database works again after {lasted:.0f} s."
