"""One feed refresh, stage by stage: fetch → parse → normalise → dedupe →
classify → decide → record.

This is the only module that knows the order of the stages. Every failure is
caught here *per feed*, recorded against that feed and logged once with the
feed's name, so one broken feed can never stop the others or the daemon.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import httpx

from monitor.classify import ArticleClassifier
from monitor.decide import AlertRules, decide
from monitor.dedupe import dedupe_batch
from monitor.errors import ClassifyError, FetchError, MonitorError, ParseError, StoreError
from monitor.fetch import FetchLimits, fetch_feed
from monitor.models import Article, Feed, Verdict
from monitor.normalise import normalise_entries
from monitor.parse import parse_feed
from monitor.store.base import Store

log = logging.getLogger("monitor.pipeline")


@dataclass(frozen=True, slots=True)
class PipelineDeps:
    client: httpx.AsyncClient
    store: Store
    classifier: ArticleClassifier
    fetch_limits: FetchLimits
    rules: AlertRules
    max_items: int
    now: Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class FeedReport:
    feed: str
    status: str            # "ok", "not_modified" or the error kind
    http_status: int | None
    entries: int
    new_items: int
    matches: int
    alerts: int
    duration_seconds: float
    error: str | None = None

    def log_line(self) -> str:
        code = self.http_status if self.http_status is not None else "-"
        line = (
            f"poll feed={self.feed!r} status={self.status} http={code} entries={self.entries} "
            f"new={self.new_items} matches={self.matches} alerts={self.alerts} "
            f"duration={self.duration_seconds:.2f}s"
        )
        return f"{line} error={self.error}" if self.error else line


def _record_batch(
    store: Store, pairs: list[tuple[Article, Verdict]], rules: AlertRules, now: datetime
) -> tuple[int, int]:
    """Record each article with its verdict and alert atomically; returns (new, alerts)."""
    new = alerts = 0
    for article, verdict in pairs:
        decision = decide(article, verdict, rules, now=now)
        if store.record_article(article, verdict, decision.alert):
            new += 1
            if decision.alert is not None:
                alerts += 1
            elif verdict.match:
                log.info("no alert for %s (%s): %s", article.id, article.source, decision.reason)
    return new, alerts


async def run_feed(feed: Feed, deps: PipelineDeps) -> FeedReport:
    started = time.monotonic()
    http_status: int | None = None
    entries = 0

    def report(status: str, *, new: int = 0, matches: int = 0, alerts: int = 0,
               error: str | None = None) -> FeedReport:
        return FeedReport(feed.name, status, http_status, entries, new, matches, alerts,
                          time.monotonic() - started, error)

    try:
        state = await asyncio.to_thread(deps.store.get_feed_state, feed.name)
        result = await fetch_feed(deps.client, feed, state, deps.fetch_limits)
        http_status = result.status
        if result.body is None:
            await asyncio.to_thread(
                deps.store.record_fetch_success, feed.name, feed.url,
                etag=result.etag or (state.etag if state else None),
                last_modified=result.last_modified or (state.last_modified if state else None),
                at=deps.now(),
            )
            return report("not_modified")
        parsed = await asyncio.to_thread(
            parse_feed, feed.name, result.body, content_type=result.content_type,
            base_url=result.final_url, max_items=deps.max_items,
        )
        if parsed.problem:
            log.warning("feed %r (%s) is malformed, kept %d entries: %s",
                        feed.name, feed.url, len(parsed.entries), parsed.problem)
        entries = len(parsed.entries)
        now = deps.now()
        articles = dedupe_batch(normalise_entries(parsed.entries, source=feed.name, now=now))
        fresh = await asyncio.to_thread(deps.store.filter_unseen, articles)
        verdicts = await asyncio.to_thread(deps.classifier.classify, fresh)
        matches = sum(v.match for v in verdicts)
        new, alerts = await asyncio.to_thread(
            _record_batch, deps.store, list(zip(fresh, verdicts, strict=True)), deps.rules, now
        )
        # Validators are saved only after the items are safely recorded: a crash
        # before this point means the next poll fetches (and records) them again.
        await asyncio.to_thread(
            deps.store.record_fetch_success, feed.name, feed.url,
            etag=result.etag, last_modified=result.last_modified, at=deps.now(),
        )
        return report("ok", new=new, matches=matches, alerts=alerts)
    except (FetchError, ParseError, ClassifyError, StoreError) as exc:
        kind = exc.kind if isinstance(exc, FetchError) else type(exc).__name__
        if isinstance(exc, FetchError):
            http_status = exc.status
        return await _failed(feed, deps, kind, str(exc), report)
    except MonitorError as exc:
        return await _failed(feed, deps, type(exc).__name__, str(exc), report)
    except Exception as exc:  # a bug must not kill the daemon: log it with the traceback
        log.exception("unexpected error while polling feed %r (%s)", feed.name, feed.url)
        return await _failed(feed, deps, "internal", f"{type(exc).__name__}: {exc}", report)


async def _failed(
    feed: Feed, deps: PipelineDeps, kind: str, message: str,
    report: Callable[..., FeedReport],
) -> FeedReport:
    try:
        state = await asyncio.to_thread(
            deps.store.record_fetch_failure, feed.name, feed.url,
            error=f"{kind}: {message}", at=deps.now(),
        )
        streak = f"; {state.consecutive_errors} consecutive failure(s), will retry next interval"
    except StoreError as store_exc:
        streak = f"; could not record the failure either: {store_exc}"
    return report(kind, error=f"{message}{streak}")
