"""The outbox drainer: claimed alerts go out exactly once, or wait, or are parked.

The pipeline only *records* pending alerts (in the same transaction as the
article); this module is the single place that sends them. The order of
operations is what keeps "no alert lost, none posted twice":

1. claim a batch with a lease (a crashed worker's alerts come back after the
   lease expires, flagged ``needs_lookup``);
2. for a flagged alert, search the destination for an earlier post carrying
   the alert id, and if it is there just record it as sent;
3. otherwise post once (deliverers never retry internally) and record the receipt;
4. on failure: retry later with exponential back-off and full jitter (an
   *ambiguous* failure flags the alert for a lookup first), or park it with a
   message that tells the operator what to fix.

A rate limit or an outage stops the batch: the alerts not yet tried are handed
back untried. Both belong to the destination, not to the alert
(``monitor.alerts.health``): a rate limit pauses sending until the server's
Retry-After without growing any alert's back-off, and an outage is logged once
and probed with the oldest waiting alert until it ends, so the backlog then goes
out at once, in publication order. A stop (``should_stop``) lets the alert being
sent finish and hands the rest back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.alerts.base import Deliverer, redact
from monitor.alerts.health import DestinationHealth
from monitor.alerts.threads import fold_replies, refresh_parents
from monitor.errors import DeliveryError
from monitor.models import Alert, Receipt
from monitor.store.base import Store

__all__ = ["DrainReport", "drain_outbox"]

LEASE_SAFETY = 0.5
"""Stop starting new sends once this fraction of the lease has passed: an alert whose
lease expires mid-send could be claimed by another worker and posted twice."""

REQUEUE_HINT = "python -m monitor outbox requeue-failed"


@dataclass(slots=True)
class DrainReport:
    """What one drain did; ``deferred`` counts alerts handed back untried (rate limit, lease)."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    found_existing: int = 0
    deferred: int = 0
    parents_updated: int = 0

    def __str__(self) -> str:
        return (
            f"sent={self.sent} retried={self.retried} failed={self.failed} "
            f"found_existing={self.found_existing} deferred={self.deferred}"
            + (f" parents_updated={self.parents_updated}" if self.parents_updated else "")
        )


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


class _Drainer:
    """State of one drain call; one instance per call so nothing leaks between drains."""

    def __init__(
        self,
        store: Store,
        deliverer: Deliverer,
        *,
        now: Callable[[], datetime],
        lease_seconds: float,
        max_attempts: int | None,
        logger: logging.Logger,
        rng: random.Random | None,
        health: DestinationHealth,
        should_stop: Callable[[], bool],
    ) -> None:
        self.store = store
        self.health = health
        self.should_stop = should_stop
        self.deliverer = deliverer
        self.now = now
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.log = logger
        self.rng = rng
        self.report = DrainReport()
        self._resume_at = now()

    async def batch(self, alerts: Sequence[Alert], claimed_at: datetime) -> bool:
        """Process one claimed batch; returns False when draining should stop now."""
        deadline = claimed_at + timedelta(seconds=self.lease_seconds * LEASE_SAFETY)
        index = 0
        clean = True
        try:
            for index, alert in enumerate(alerts):
                current = self.now()
                if self.should_stop():
                    rest = alerts[index:]
                    await self._hand_back(rest, at=current, why="shutdown")
                    self.log.info("outbox: stopping; %d claimed alert(s) handed back untried",
                                  len(rest))
                    return False
                if current >= deadline:
                    rest = alerts[index:]
                    await self._hand_back(rest, at=current, why="lease running out")
                    self.log.warning(
                        "outbox: handed back %d alert(s) untried: the batch took longer than "
                        "half the %.0f s lease (slow destination?)",
                        len(rest), self.lease_seconds,
                    )
                    return False
                outcome = await self._one(alert)
                if outcome in ("rate_limited", "unreachable"):
                    rest = alerts[index + 1 :]
                    if rest:
                        why = "rate limited" if outcome == "rate_limited" else "destination down"
                        await self._hand_back(rest, at=self._resume_at, why=why)
                    return False
                clean = clean and outcome == "done"
        except asyncio.CancelledError:
            # Shutting down: the alert being sent stays in flight (its lease expiry
            # triggers a lookup); the ones not started go straight back to pending.
            rest = alerts[index + 1 :]
            if rest:
                for alert in rest:
                    for alert_id in alert.ids:
                        self.store.mark_alert_retry(
                            alert_id, error="deferred: shutdown", next_attempt_at=self.now(),
                            ambiguous=False,
                        )
                self.report.deferred += sum(len(a.ids) for a in rest)
            raise
        return clean

    async def _one(self, alert: Alert) -> str:
        """Send (or find) one alert; returns "done", "failed" or "rate_limited"."""
        dest = alert.destination
        try:
            found = False
            receipt: Receipt | None = None
            if alert.needs_lookup:
                if self.deliverer.supports_lookup:
                    receipt = await self.deliverer.find_delivered(alert)
                    found = receipt is not None
                else:
                    self.log.warning(
                        "alert %s to %s: an earlier attempt may have posted it and %s cannot "
                        "be checked; posting again (possible duplicate)",
                        alert.id, dest, self.deliverer.name,
                    )
            if receipt is None:
                receipt = await self.deliverer.deliver(alert)
        except DeliveryError as err:
            return await self._failed(alert, err)
        except Exception as exc:  # a bug in a deliverer must not stall the whole outbox
            err = DeliveryError(
                f"unexpected {type(exc).__name__}: {redact(str(exc))[:300]}",
                retryable=True,
                ambiguous=True,
            )
            return await self._failed(alert, err, destination_down=False)
        for alert_id in alert.ids:  # folded replies went out in the same message
            await asyncio.to_thread(self.store.mark_alert_sent,
                                    dataclasses.replace(receipt, alert_id=alert_id))
        if self.health.down_since is not None:
            counts = await asyncio.to_thread(self.store.outbox_counts)
            waiting = counts.get("pending", 0) + counts.get("in_flight", 0)
            self.health.succeeded(self.now(), waiting=waiting)
        else:
            self.health.succeeded(self.now())
        if found:
            self.report.found_existing += 1
            self.log.info(
                "alert %s to %s was already posted (message %s); recorded it without posting "
                "again", alert.id, dest, receipt.message_id,
            )
        else:
            self.report.sent += len(alert.ids)
            self.log.info("alert %s posted to %s (message %s)", alert.id, dest, receipt.message_id)
        return "done"

    async def _failed(self, alert: Alert, err: DeliveryError, *,
                      destination_down: bool = True) -> str:
        """Park, pause, or wait for the destination; ``destination_down=False`` is for
        failures that say nothing about the destination (a bug in a deliverer): that
        alert alone waits, the batch goes on."""
        current = self.now()
        error = redact(str(err))
        dest = alert.destination
        if not err.retryable:
            await self._fail_all(alert, error)
            self.report.failed += 1
            self.log.error(
                "alert %s to %s failed: %s; parked: fix the cause, then run `%s`",
                alert.id, dest, error, REQUEUE_HINT,
            )
            return "failed"
        if self.max_attempts is not None and alert.attempts >= self.max_attempts:
            await self._fail_all(
                alert, f"gave up after {alert.attempts} attempts; last error: {error}")
            self.report.failed += 1
            self.log.error(
                "alert %s to %s failed: %s; parked after %d attempts: once %s works again, "
                "run `%s`", alert.id, dest, error, alert.attempts, self.deliverer.name,
                REQUEUE_HINT,
            )
            return "failed"
        if err.retry_after is not None:
            # A rate limit (or a 503 naming its end) pauses the destination; the alert
            # keeps its place and its back-off does not grow.
            self._resume_at = current + timedelta(seconds=err.retry_after)
            await self._retry_all(alert, error=error, at=self._resume_at,
                                  ambiguous=err.ambiguous)
            self.health.paused(self._resume_at, error, current)
            self.report.retried += 1
            return "rate_limited"
        if destination_down:
            # Connection refused, 5xx, timeouts: the destination is down for every alert.
            at = self._resume_at = self.health.failed(error, current)
        else:
            cap = self.health.probe_cap
            at = current + timedelta(seconds=(self.rng or random).uniform(cap / 2, cap))
        await self._retry_all(alert, error=error, at=at, ambiguous=err.ambiguous)
        self.report.retried += 1
        if err.ambiguous and not self.deliverer.supports_lookup:
            level = logging.WARNING
            note = f"; it may have been posted and {self.deliverer.name} cannot be checked"
        else:
            level = logging.DEBUG if destination_down else logging.WARNING
            note = "; the channel is checked first" if err.ambiguous else ""
        self.log.log(
            level, "alert %s to %s failed (attempt %d): %s; next try at %s%s",
            alert.id, dest, alert.attempts, error, _iso(at), note,
        )
        return "unreachable" if destination_down else "retry"

    async def _retry_all(self, alert: Alert, *, error: str, at: datetime,
                         ambiguous: bool) -> None:
        """Back to pending: the alert and every reply folded into its message."""
        for alert_id in alert.ids:
            await asyncio.to_thread(self.store.mark_alert_retry, alert_id, error=error,
                                    next_attempt_at=at, ambiguous=ambiguous)

    async def _fail_all(self, alert: Alert, error: str) -> None:
        for alert_id in alert.ids:
            await asyncio.to_thread(self.store.mark_alert_failed, alert_id, error=error)

    async def _hand_back(self, alerts: Sequence[Alert], *, at: datetime, why: str) -> None:
        """Return claimed-but-untried alerts to pending (not ambiguous: nothing was sent)."""
        for alert in alerts:
            await self._retry_all(alert, error=f"deferred: {why}", at=at, ambiguous=False)
        self.report.deferred += sum(len(a.ids) for a in alerts)


async def drain_outbox(
    store: Store,
    deliverer: Deliverer,
    *,
    now: Callable[[], datetime],
    batch_size: int = 50,
    lease_seconds: float = 120.0,
    base_backoff: float = 2.0,
    max_backoff: float = 60.0,
    max_attempts: int | None = None,
    logger: logging.Logger,
    rng: random.Random | None = None,
    max_batches: int = 20,
    health: DestinationHealth | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> DrainReport:
    """Deliver due alerts until none are due, something goes wrong, or ``max_batches`` is hit.

    A further batch is claimed only when the previous one was full and every
    alert in it went out: after any failure the rest waits for the next drain,
    which also guarantees an alert retried "now" is not retried in a tight loop.
    Store calls are synchronous and run in a worker thread. ``health`` carries a
    destination's outage or rate limit from one drain to the next (the daemon keeps
    one per destination); without it each drain starts from "up".
    """
    health = health or DestinationHealth(deliverer.name, logger=logger, rng=rng,
                                         probe_base=base_backoff, probe_cap=max_backoff)
    should_stop = should_stop or (lambda: False)
    if not health.can_send(now()) or should_stop():
        return DrainReport()
    drainer = _Drainer(
        store,
        deliverer,
        now=now,
        lease_seconds=lease_seconds,
        max_attempts=max_attempts,
        logger=logger,
        rng=rng,
        health=health,
        should_stop=should_stop,
    )
    for _ in range(max(1, max_batches)):
        claimed_at = now()
        alerts = await asyncio.to_thread(
            store.claim_due_alerts, now=claimed_at, limit=batch_size, lease_seconds=lease_seconds
        )
        if not alerts:
            break
        keep_going = await drainer.batch(fold_replies(alerts), claimed_at)
        # Posting a parent makes its story's replies due: look again even after a
        # short batch (bounded by max_batches).
        parents_posted = any(a.kind == "parent" for a in alerts)
        if not keep_going or (len(alerts) < batch_size and not parents_posted):
            break
    if health.can_send(now()) and not should_stop():
        drainer.report.parents_updated = await refresh_parents(store, deliverer, logger=logger)
    return drainer.report
