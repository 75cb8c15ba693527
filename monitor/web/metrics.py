"""Prometheus metrics of one daemon, on a registry of its own.

A dedicated ``CollectorRegistry`` rather than prometheus-client's global one: tests
(and tools) build several daemons in one process, and the global registry refuses
a second metric of the same name. Counting happens where the daemon already has
the facts: ``Monitor.poll`` hands each ``FeedReport`` to ``observe_poll`` and
``Monitor.drain`` each ``DrainReport`` to ``observe_drain``; two thin wrappers time
classification and each delivery; what lives elsewhere (outbox counts, each feed's
error streak, each destination's health) is read once per scrape by ``refresh``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from monitor.alerts.base import Deliverer
from monitor.alerts.outbox import DrainReport
from monitor.errors import DeliveryError
from monitor.models import Alert, Article, FeedState, Receipt, StoryFacts, Verdict
from monitor.pipeline import FeedReport

__all__ = ["CONTENT_TYPE", "SUCCESS_STATUSES", "Metrics", "TimedDeliverer"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

SUCCESS_STATUSES = frozenset({"ok", "not_modified", "unchanged"})
"""Poll statuses that mean the feed answered and its items (if any) were recorded."""

_FAST = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_FETCH = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_LAG = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """Every metric the daemon exports, and the few facts /readyz needs."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.polls = Counter("monitor_polls", "Feed polls by outcome (ok, not_modified, "
                             "unchanged, disabled, or the error kind)", ["status"], registry=r)
        self.poll_seconds = Histogram("monitor_poll_duration_seconds",
                                      "Whole poll: fetch, parse, classify, store",
                                      buckets=_FETCH, registry=r)
        self.fetch_seconds = Histogram("monitor_fetch_seconds",
                                       "HTTP exchange of a feed fetch that got an answer",
                                       buckets=_FETCH, registry=r)
        self.bytes = Counter("monitor_fetched_bytes", "Feed body bytes after decompression",
                             registry=r)
        self.not_modified_share = Gauge(
            "monitor_not_modified_ratio",
            "Share of answered feed fetches that were 304 Not Modified, since start",
            registry=r)
        self.items = Counter("monitor_items_parsed", "Entries parsed from feed bodies",
                             registry=r)
        self.new_articles = Counter("monitor_new_articles", "Articles stored for the first time",
                                    registry=r)
        self.matches = Counter("monitor_matches", "New articles the classifier matched",
                               registry=r)
        self.stories = Counter("monitor_stories", "Stories started by a matching new article",
                               registry=r)
        self.alerts_queued = Counter("monitor_alerts_queued", "Alerts put in the outbox",
                                     registry=r)
        self.drained = Counter("monitor_drain_alerts", "Alerts handled by outbox drains, by "
                               "result (sent, found_existing, retried, failed, deferred)",
                               ["result"], registry=r)
        self.outbox = Gauge("monitor_outbox_alerts", "Alerts in the outbox by status "
                            "(pending, in_flight, sent, failed)", ["status"], registry=r)
        self.delivery_seconds = Histogram(
            "monitor_delivery_seconds", "One post to a destination (Slack latency), by outcome",
            ["destination", "outcome"], buckets=_FAST, registry=r)
        self.rate_limits = Counter("monitor_delivery_rate_limits",
                                   "Rate limits (HTTP 429) answered by a destination",
                                   ["destination"], registry=r)
        self.destination_up = Gauge("monitor_destination_up",
                                    "1 while a destination takes posts, 0 during an outage",
                                    ["destination"], registry=r)
        self.classify_seconds = Histogram("monitor_classify_seconds",
                                          "Classification of one poll's new articles",
                                          buckets=_FAST, registry=r)
        self.loop_lag = Histogram("monitor_event_loop_lag_seconds",
                                  "How late the heartbeat woke up (event-loop lag)",
                                  buckets=_LAG, registry=r)
        self.feed_errors = Gauge("monitor_feed_consecutive_errors",
                                 "Failed polls in a row, per feed", ["feed"], registry=r)
        self.last_success = Gauge("monitor_last_successful_poll_timestamp_seconds",
                                  "Unix time of the last successful poll (0: none yet)",
                                  registry=r)
        self.store_errors = Counter("monitor_store_errors",
                                    "Polls or drains the store refused", registry=r)
        self._answered = 0
        self._not_modified = 0
        self.last_success_monotonic: float | None = None
        self.last_drain_monotonic: float | None = None

    # --- fed by the daemon -------------------------------------------------------
    def observe_poll(self, report: FeedReport) -> None:
        self.polls.labels(report.status).inc()
        if report.status == "disabled":
            return
        self.poll_seconds.observe(report.duration_seconds)
        if report.fetch_seconds is not None:
            self.fetch_seconds.observe(report.fetch_seconds)
        if report.http_status is not None and report.status in SUCCESS_STATUSES:
            self._answered += 1
            self._not_modified += report.http_status == 304
            self.not_modified_share.set(self._not_modified / self._answered)
        self.bytes.inc(report.bytes_fetched)
        self.items.inc(report.entries)
        self.new_articles.inc(report.new_items)
        self.matches.inc(report.matches)
        self.stories.inc(report.new_stories)
        self.alerts_queued.inc(report.alerts)
        if report.store_error is not None:
            self.store_errors.inc()
        elif report.status in SUCCESS_STATUSES:
            self.last_success_monotonic = time.monotonic()
            self.last_success.set(time.time())

    def observe_drain(self, report: object) -> None:
        """A drain's ``DrainReport``; None (the store refused) counts as a store error."""
        self.last_drain_monotonic = time.monotonic()
        if not isinstance(report, DrainReport):
            self.store_errors.inc()
            return
        for result in ("sent", "found_existing", "retried", "failed", "deferred"):
            self.drained.labels(result).inc(getattr(report, result))

    def timed_classify(
        self, classify: Callable[[list[Article]], Awaitable[list[Verdict]]],
    ) -> Callable[[list[Article]], Awaitable[list[Verdict]]]:
        async def timed(articles: list[Article]) -> list[Verdict]:
            if not articles:
                return await classify(articles)
            started = time.monotonic()
            try:
                return await classify(articles)
            finally:
                self.classify_seconds.observe(time.monotonic() - started)

        return timed

    def timed_deliverers(self, deliverers: Mapping[str, Deliverer]) -> dict[str, Deliverer]:
        return {dest: TimedDeliverer(d, dest, self) for dest, d in deliverers.items()}

    # --- read at scrape time -------------------------------------------------------
    def refresh(self, *, outbox: Mapping[str, int] | None, feeds: Iterable[FeedState],
                destinations: Mapping[str, bool]) -> None:
        """Gauges of state kept elsewhere: called on the event loop, once per scrape."""
        if outbox is not None:
            for status, count in outbox.items():
                self.outbox.labels(status).set(count)
        for state in feeds:
            self.feed_errors.labels(state.name).set(state.consecutive_errors)
        for destination, up in destinations.items():
            self.destination_up.labels(destination).set(1 if up else 0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class TimedDeliverer:
    """A deliverer that times each post and counts rate limits; everything else is the
    wrapped deliverer's (attributes such as ``check`` included)."""

    def __init__(self, inner: Deliverer, destination: str, metrics: Metrics) -> None:
        self._inner = inner
        self._destination = destination
        self._metrics = metrics
        self.name = inner.name
        self.supports_lookup = inner.supports_lookup

    async def deliver(self, alert: Alert) -> Receipt:
        started = time.monotonic()
        outcome = "error"
        try:
            receipt = await self._inner.deliver(alert)
            outcome = "ok"
            return receipt
        except DeliveryError as exc:
            if exc.retry_after is not None and "rate limit" in str(exc):
                outcome = "rate_limited"
                self._metrics.rate_limits.labels(self._destination).inc()
            else:
                outcome = "retry" if exc.retryable else "failed"
            raise
        finally:
            self._metrics.delivery_seconds.labels(self._destination, outcome).observe(
                time.monotonic() - started)

    async def update_parent(self, parent: Alert, story: StoryFacts) -> None:
        await self._inner.update_parent(parent, story)

    async def find_delivered(self, alert: Alert) -> Receipt | None:
        return await self._inner.find_delivered(alert)

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
