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
from datetime import UTC, datetime, timedelta

from monitor.alerts.base import Deliverer, redact
from monitor.alerts.health import DestinationHealth
from monitor.alerts.sinks import ANY_DESTINATION, Sinks
from monitor.alerts.threads import fold_replies, refresh_parents
from monitor.errors import DeliveryError
from monitor.models import Alert, Receipt
from monitor.store.base import Store

__all__ = ["DrainOptions", "DrainReport", "drain_outbox"]

LEASE_SAFETY = 0.5
"""Stop starting new sends once this fraction of the lease has passed: an alert whose
lease expires mid-send could be claimed by another worker and posted twice."""

REQUEUE_HINT = "python -m monitor outbox requeue-failed"

MAX_INLINE_WAIT = 10.0
"""Longest Retry-After waited out inside a drain; a longer one hands the batch back."""

MAX_INLINE_RATE_LIMITS = 5
"""Rate limits in a row for one alert before it is handed back to wait in the outbox."""


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
    """One destination's part of one drain call; nothing leaks between drains."""

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
        report: DrainReport,
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
        self.report = report
        self._resume_at = datetime.min.replace(tzinfo=UTC)  # set by the failure that uses it
        self._deadline = datetime.max.replace(tzinfo=UTC)  # set per batch

    async def batch(self, alerts: Sequence[Alert], claimed_at: datetime) -> bool:
        """Process one claimed batch; returns False when draining should stop now."""
        deadline = claimed_at + timedelta(seconds=self.lease_seconds * LEASE_SAFETY)
        self._deadline = deadline
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
                receipt = await self._send(alert)
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

    async def _send(self, alert: Alert) -> Receipt:
        """Post in the destination's pace; a short rate limit is waited out here.

        A 429 is the destination asking for a pause, not this alert failing: when its
        Retry-After fits in the lease, the drainer waits it out and resends the same
        alert, keeping publication order and never growing the alert's back-off.
        """
        for _ in range(MAX_INLINE_RATE_LIMITS):
            await self.health.pacer.acquire()
            try:
                return await self.deliverer.deliver(alert)
            except DeliveryError as err:
                wait = err.retry_after
                current = self.now()
                if (wait is None or not err.retryable or err.ambiguous
                        or wait > MAX_INLINE_WAIT or self.should_stop()
                        or current + timedelta(seconds=wait) >= self._deadline):
                    raise
                self.health.rate_limited(wait, current)
                await self.health.pacer.hold(wait)
                await asyncio.sleep(wait)
        return await self.deliverer.deliver(alert)

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
            await self.health.pacer.hold(err.retry_after)
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


@dataclass(frozen=True, slots=True)
class DrainOptions:
    """From ``[alerts]`` (monitor.settings, where the defaults are written)."""

    batch_size: int
    lease_seconds: float
    base_backoff: float
    """First wait after a destination failed (the outage probe's base)."""
    max_backoff: float
    """Longest wait between outage probes."""
    max_attempts: int | None = None
    """Park an alert after this many attempts (None: never, it waits for the destination)."""
    max_batches: int = 20
    """Batches claimed per drain at most, so one drain cannot run for ever."""


async def drain_outbox(
    store: Store,
    sinks: Sinks | Deliverer,
    *,
    now: Callable[[], datetime],
    options: DrainOptions,
    logger: logging.Logger,
    rng: random.Random | None = None,
    health: DestinationHealth | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> DrainReport:
    """Deliver due alerts until none are due, something goes wrong, or ``max_batches`` is hit.

    Each alert goes through the deliverer registered for its destination
    (``sinks``; a single deliverer takes every destination, with ``health`` as its
    outage record). A further batch is claimed only when the previous one was full
    and every alert in it went out (or it posted parents, whose replies are now due):
    after any failure the rest waits for the next drain, so an alert retried "now"
    is never retried in a tight loop. Store calls run in a worker thread. The
    daemon keeps its ``Sinks`` (and so each destination's health) across drains.
    """
    if not isinstance(sinks, Sinks):
        sinks = Sinks.one(sinks, health or DestinationHealth(
            sinks.name, logger=logger, rng=rng, probe_base=options.base_backoff,
            probe_cap=options.max_backoff))
    should_stop = should_stop or (lambda: False)
    report = DrainReport()
    if sinks.all_paused(now()) or should_stop():
        return report
    drainers: dict[str, _Drainer] = {}

    def drainer_for(destination: str) -> _Drainer | None:
        deliverer = sinks.deliverer(destination)
        if deliverer is None:
            return None
        key = destination if destination in sinks.destinations else ANY_DESTINATION
        if key not in drainers:
            drainers[key] = _Drainer(
                store, deliverer, now=now, lease_seconds=options.lease_seconds,
                max_attempts=options.max_attempts, logger=logger, rng=rng,
                health=sinks.health(destination), should_stop=should_stop, report=report,
            )
        return drainers[key]

    for _ in range(max(1, options.max_batches)):
        claimed_at = now()
        alerts = await asyncio.to_thread(
            store.claim_due_alerts, now=claimed_at, limit=options.batch_size,
            lease_seconds=options.lease_seconds, exclude_destinations=sinks.paused(claimed_at),
        )
        if not alerts:
            break
        keep_going = True
        for destination, group in _by_destination(fold_replies(alerts)):
            drainer = drainer_for(destination)
            if drainer is None:
                await _park_unroutable(store, group, logger)
                report.failed += sum(len(a.ids) for a in group)
                continue
            keep_going = await drainer.batch(group, claimed_at) and keep_going
        # Posting a parent makes its story's replies due: look again even after a
        # short batch (bounded by max_batches).
        parents_posted = any(a.kind == "parent" for a in alerts)
        if not keep_going or (len(alerts) < options.batch_size and not parents_posted):
            break
    if not should_stop():
        report.parents_updated = await refresh_parents(
            store, sinks.deliverer, logger=logger,
            sendable=lambda dest: sinks.health(dest).can_send(now()))
    return report


def _by_destination(alerts: Sequence[Alert]) -> list[tuple[str, list[Alert]]]:
    """Claim order kept within each destination."""
    groups: dict[str, list[Alert]] = {}
    for alert in alerts:
        groups.setdefault(alert.destination, []).append(alert)
    return list(groups.items())


async def _park_unroutable(store: Store, alerts: Sequence[Alert], logger: logging.Logger) -> None:
    """An alert queued for a destination the config no longer has: park it, say why."""
    for alert in alerts:
        for alert_id in alert.ids:
            await asyncio.to_thread(
                store.mark_alert_failed, alert_id,
                error=f"no sink is configured for destination {alert.destination!r}")
        logger.error("alert %s is for %s, which is no longer configured; parked: restore "
                     "that destination, then run `%s`", alert.id, alert.destination,
                     REQUEUE_HINT)
