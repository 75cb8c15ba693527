"""One feed refresh, stage by stage: fetch → parse → normalise → dedupe →
classify → decide → record, then the feed's life-cycle update.

This is the only module that knows the order of the stages. Every failure is
caught here *per feed*, recorded against that feed and logged once with the
feed's name, so one broken feed can never stop the others or the daemon.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import httpx

from monitor.decide import AlertRules, Decision, decide
from monitor.dedupe import dedupe_batch
from monitor.errors import FetchError, MonitorError, StoreError
from monitor.feeds import (
    FeedStates,
    LifecyclePolicy,
    PollOutcome,
    after_poll,
    counted_failure,
    counted_success,
    effective_url,
    with_lifecycle,
)
from monitor.fetch import fetch_feed
from monitor.http import FetchLimits, HostLimiter, HostPausedError
from monitor.models import Article, Feed, FeedState, FetchResult, ParsedFeed, StoryLink, Verdict
from monitor.normalise import normalise_entries
from monitor.store.base import Store

log = logging.getLogger("monitor.pipeline")

ParseFn = Callable[..., Awaitable[ParsedFeed]]
ClassifyFn = Callable[[list[Article]], Awaitable[list[Verdict]]]
StoryFn = Callable[[list[Article], list[Verdict]], list[StoryLink]]
EnrichFn = Callable[[list[Article]], Awaitable[list[Article]]]
RecordFn = Callable[[list[Article], list[Verdict], list[StoryLink]], tuple[int, int]]
SharedStoryFn = Callable[[list[Article], list[Verdict], RecordFn],
                         Awaitable[tuple[list[StoryLink], list[tuple[int, int]]]]]


@dataclass(frozen=True, slots=True)
class PipelineDeps:
    client: httpx.AsyncClient
    store: Store
    classify: ClassifyFn
    """Scores articles off the event loop (classifier worker processes or a thread)."""
    fetch_limits: FetchLimits
    rules: AlertRules
    max_items: int
    now: Callable[[], datetime]
    parse: ParseFn
    """Runs feedparser off the event loop (a worker process or thread)."""
    lifecycle: LifecyclePolicy
    rng: random.Random = dataclasses.field(default_factory=random.Random)
    enrich: EnrichFn | None = None
    """Optional full-text step between dedupe and classify."""
    limiter: HostLimiter | None = None
    """Per-host concurrency and spacing; None (tests, tools) means no host limits."""
    states: FeedStates | None = None
    """The daemon's write-through copy of feed states; None reads the store on every poll."""
    stories: StoryFn | None = None
    """Story assignment (``monitor.stories.stage``); None makes every article its own story."""
    shared_stories: SharedStoryFn | None = None
    """Instead of ``stories`` on a database shared by several daemons: records the poll,
    its story candidates in a turn under the store's story lock
    (``SharedStories.link_and_record``). The poll's articles are then recorded in two
    transactions, the others first: a crash between the two is a crash mid-poll (the
    feed's validators are saved only after both, so its next poll records the rest)."""


@dataclass(frozen=True, slots=True)
class FeedReport:
    feed: str
    status: str            # "ok", "not_modified", "unchanged", "disabled" or the error kind
    http_status: int | None
    entries: int
    new_items: int
    matches: int
    alerts: int
    duration_seconds: float
    error: str | None = None
    next_poll_at: datetime | None = None
    notice: str | None = None
    store_error: str | None = None
    """Set when the store refused a read or write during this poll (the daemon treats
    storage failures as one incident: ``monitor.storehealth``)."""
    fetch_seconds: float | None = None
    """The HTTP exchange alone (None when no response came); for the latency metric."""
    bytes_fetched: int = 0
    """Body bytes after decompression (0 for a 304)."""
    new_stories: int = 0
    """Stories started by a matching new article (the metrics' "stories")."""

    def log_line(self, url: str | None = None) -> str:
        """The poll's one log line; ``url`` (the feed's address) goes before the error,
        which is last because it may contain spaces."""
        code = self.http_status if self.http_status is not None else "-"
        line = (
            f"poll feed={self.feed!r} status={self.status} http={code} entries={self.entries} "
            f"new={self.new_items} matches={self.matches} alerts={self.alerts} "
            f"duration={self.duration_seconds:.2f}s"
        )
        if self.next_poll_at is not None:
            line += f" next={self.next_poll_at:%H:%M:%S}"
        if url:
            line += f" url={url}"
        return f"{line} error={self.error}" if self.error else line


@dataclass(slots=True)
class _Progress:
    http_status: int | None = None
    entries: int = 0
    new: int = 0
    matches: int = 0
    alerts: int = 0
    fetch_seconds: float | None = None
    bytes_fetched: int = 0
    new_stories: int = 0


def _record_batch(
    store: Store, pairs: list[tuple[Article, Verdict]], links: list[StoryLink] | None,
    rules: AlertRules, now: datetime,
) -> tuple[int, int]:
    """Record the poll's articles with their verdicts, stories and alerts in one
    transaction; returns (new, alerts)."""
    decisions = [decide(article, verdict, rules, now=now) for article, verdict in pairs]
    stories: list[StoryLink | None] = list(links) if links is not None else [None] * len(pairs)
    muted = _apply_mutes(store, pairs, decisions, stories, now)
    inserted = store.record_articles(
        [(article, verdict, decision.alerts, story)
         for (article, verdict), decision, story in zip(pairs, decisions, stories, strict=True)])
    new = alerts = 0
    for (article, verdict), decision, is_new in zip(pairs, decisions, inserted, strict=True):
        if not is_new:
            continue
        new += 1
        if decision.alert is not None:
            alerts += len(decision.alerts)
        elif verdict.match or article.id in muted:
            log.info("no alert for %s (%s): %s", article.id, article.source, decision.reason)
    return new, alerts


def _apply_mutes(
    store: Store, pairs: list[tuple[Article, Verdict]], decisions: list[Decision],
    stories: list[StoryLink | None], now: datetime,
) -> set[str]:
    """Drop the alerts (parents, replies and "also reported by" echoes) that an analyst's
    mute covers, in place; returns the ids of the muted articles.

    Here rather than in the store: this is alerting policy with a stated reason, like
    ``decide``, so the reason is logged and the poll's alert count stays true; the
    articles and verdicts are still recorded. The mutes are read once per poll, and
    only when something would alert.
    """
    if not any(d.alert is not None for d in decisions) and not any(
            s is not None and s.echo is not None for s in stories):
        return set()
    mutes = store.active_mutes(now)
    if not mutes:
        return set()
    muted: set[str] = set()
    for i, (article, _verdict) in enumerate(pairs):
        story = stories[i]
        story_id = story.story_id if story is not None else ""
        mute = next((m for m in mutes if m.applies_to(source=article.source, story_id=story_id)),
                    None)
        if mute is None:
            continue
        muted.add(article.id)
        what = f"outlet {article.source!r}" if mute.kind == "outlet" else "its story"
        decisions[i] = Decision(None, f"{what} muted by {mute.created_by} until "
                                      f"{mute.expires_at:%Y-%m-%d %H:%M} UTC (mute {mute.id}); "
                                      "stored without alert")
        if story is not None and story.echo is not None:
            stories[i] = dataclasses.replace(story, echo=None)
    return muted


async def _polite_fetch(target: Feed, state: FeedState | None, deps: PipelineDeps) -> FetchResult:
    """Fetch within the host's politeness limits; a 429/503 pauses the whole host."""
    limiter = deps.limiter
    if limiter is None:
        return await fetch_feed(deps.client, target, state, deps.fetch_limits, rng=deps.rng)
    try:
        async with limiter.slot(target.url):
            try:
                return await fetch_feed(
                    deps.client, target, state, deps.fetch_limits, rng=deps.rng
                )
            except FetchError as exc:
                if exc.retry_after and exc.status in (429, 503):
                    limiter.pause(target.url, exc.retry_after)
                raise
    except HostPausedError as exc:
        # Rescheduled for the end of the pause, rather than parked in the queue
        # holding one of the daemon's concurrent-feed slots for that long.
        raise FetchError("host_paused", f"not polled: {exc}", retry_after=exc.seconds) from exc


async def _poll(feed: Feed, state: FeedState | None, deps: PipelineDeps,
                progress: _Progress) -> PollOutcome:
    """Fetch and process; raises typed errors for the caller to record."""
    target = dataclasses.replace(feed, url=effective_url(feed, state))
    result = await _polite_fetch(target, state, deps)
    progress.http_status = result.status
    progress.fetch_seconds = result.elapsed_seconds
    progress.bytes_fetched = len(result.body or b"")
    moved = result.permanent_redirect
    if result.body is None:
        return PollOutcome(ok=True, http_status=304, moved_to=moved,
                           server_min_seconds=result.server_min_seconds,
                           etag=result.etag or (state.etag if state else None),
                           last_modified=result.last_modified
                           or (state.last_modified if state else None),
                           body_hash=state.body_hash if state else None,
                           ttl_seconds=state.ttl_seconds if state else None)
    digest = body_digest(result)
    if state is not None and state.body_hash == digest:
        # The same bytes as the last body whose items were all recorded: parsing
        # them again could find nothing new (an unconditional refetch, or a server
        # that sends no validators). Its <ttl> still counts.
        return PollOutcome(ok=True, http_status=result.status, moved_to=moved,
                           server_min_seconds=_larger(result.server_min_seconds,
                                                      state.ttl_seconds),
                           etag=result.etag, last_modified=result.last_modified,
                           body_hash=digest, ttl_seconds=state.ttl_seconds, unchanged=True)
    parsed = await deps.parse(
        feed.name, result.body, content_type=result.content_type,
        base_url=result.final_url, max_items=deps.max_items,
    )
    if parsed.problem:
        log.warning("feed %r (%s) is malformed, kept %d entries: %s",
                    feed.name, target.url, len(parsed.entries), parsed.problem,
                    extra={"feed": feed.name, "url": target.url})
    progress.entries = len(parsed.entries)
    now = deps.now()
    articles = dedupe_batch(normalise_entries(parsed.entries, source=feed.name, now=now))
    fresh = await asyncio.to_thread(deps.store.filter_unseen, articles)
    if deps.enrich is not None and fresh:
        fresh = await deps.enrich(fresh)
    # Oldest first: the first matching report of a story becomes its Slack parent, and a
    # feed lists its newest item first.
    fresh.sort(key=lambda a: a.published_at)
    verdicts = await deps.classify(fresh)
    progress.matches = sum(v.match for v in verdicts)
    links: list[StoryLink] | None
    if deps.shared_stories is not None and fresh:
        links, counts = await deps.shared_stories(
            fresh, verdicts,
            lambda arts, verds, assigned: _record_batch(
                deps.store, list(zip(arts, verds, strict=True)), assigned, deps.rules, now))
        progress.new, progress.alerts = (sum(n for n, _ in counts), sum(a for _, a in counts))
    else:
        links = deps.stories(fresh, verdicts) if deps.stories is not None and fresh else None
        progress.new, progress.alerts = await asyncio.to_thread(
            _record_batch, deps.store, list(zip(fresh, verdicts, strict=True)), links,
            deps.rules, now
        )
    progress.new_stories = sum(
        1 for i, v in enumerate(verdicts) if v.match and (links is None or links[i].is_new))
    # The validators travel in the outcome and are saved (by run_feed, with the
    # rest of the poll's bookkeeping) only now that the items are safely recorded:
    # a crash before that means the next poll fetches (and records) them again.
    return PollOutcome(ok=True, new_items=progress.new, http_status=result.status,
                       moved_to=moved,
                       server_min_seconds=_larger(result.server_min_seconds, parsed.ttl_seconds),
                       etag=result.etag, last_modified=result.last_modified,
                       body_hash=digest, ttl_seconds=parsed.ttl_seconds)


def _larger(a: float | None, b: float | None) -> float | None:
    return max((v for v in (a, b) if v is not None), default=None)


def body_digest(result: FetchResult) -> str:
    """What identifies a body's parse result: the bytes, where they came from, their type."""
    digest = hashlib.blake2b(result.body or b"", digest_size=16)
    digest.update(f"\0{result.final_url}\0{result.content_type}".encode())
    return digest.hexdigest()


async def run_feed(feed: Feed, deps: PipelineDeps) -> FeedReport:
    started = time.monotonic()
    progress = _Progress()
    status, error = "ok", None
    states = deps.states or FeedStates(deps.store)
    state: FeedState | None = None
    state_read = False
    try:
        state = await states.get(feed.name)
        state_read = True
        if state is not None and state.disabled and state.url == feed.url:
            return FeedReport(feed.name, "disabled", None, 0, 0, 0, 0, 0.0,
                              error=f"disabled: {state.disabled}")
        outcome = await _poll(feed, state, deps, progress)
        if outcome.http_status == 304:
            status = "not_modified"
        elif outcome.unchanged:
            status = "unchanged"
    except MonitorError as exc:
        status = getattr(exc, "kind", None) or type(exc).__name__
        error = str(exc)
        if isinstance(exc, FetchError):
            progress.http_status = exc.status
        outcome = PollOutcome(ok=False, http_status=progress.http_status,
                              error=f"{status}: {error}",
                              retry_after=exc.retry_after if isinstance(exc, FetchError) else None)
    except Exception as exc:  # a bug must not kill the daemon: log it with the traceback
        log.exception("unexpected error while polling feed %r (%s)", feed.name, feed.url,
                      extra={"feed": feed.name, "url": feed.url})
        status, error = "internal", f"{type(exc).__name__}: {exc}"
        outcome = PollOutcome(ok=False, error=f"{status}: {error}")

    next_poll_at = notice = None
    store_error = error if status == "StoreError" else None
    try:
        if not state_read:  # counting from a made-up state would reset the feed's record
            raise StoreError("its state could not be read, so this poll is not counted")
        next_poll_at, notice, streak = await _record_outcome(feed, deps, states, state, outcome)
        if error is not None:
            error += streak
    except StoreError as exc:
        store_error = str(exc)
        # Re-armed all the same, with the failure back-off: a feed must never wait for
        # its safety net because the store had a hiccup.
        next_poll_at = _retry_after_store_failure(feed, deps, states, state, outcome)
        log.debug("feed %r (%s): could not record the poll's outcome: %s", feed.name,
                  feed.url, exc, extra={"feed": feed.name, "url": feed.url})
        extra = f"could not record the outcome ({exc}); next try {next_poll_at:%H:%M:%S}"
        error = f"{error}; {extra}" if error is not None else extra
        if status in ("ok", "not_modified", "unchanged"):
            status = "StoreError"
    return FeedReport(
        feed.name, status, progress.http_status, progress.entries, progress.new,
        progress.matches, progress.alerts, time.monotonic() - started, error,
        next_poll_at, notice, store_error, progress.fetch_seconds, progress.bytes_fetched,
        progress.new_stories,
    )


def _retry_after_store_failure(
    feed: Feed, deps: PipelineDeps, states: FeedStates, state: FeedState | None,
    outcome: PollOutcome,
) -> datetime:
    """The next poll after an unsaved outcome: the feed's failure back-off, counting the
    store failures in a row that memory has seen (the store could not count them)."""
    now = deps.now()
    unsaved = states.note_unsaved(feed.name)
    counted = counted_failure(state, feed.name, feed.url, error="store failure", at=now)
    counted = dataclasses.replace(
        counted, consecutive_errors=counted.consecutive_errors + unsaved - 1)
    failed = dataclasses.replace(outcome, ok=False, new_items=0)
    return after_poll(feed, counted, failed, deps.lifecycle, now=now, rng=deps.rng,
                      override_seconds=feed.interval_seconds).next_poll_at


async def _record_outcome(
    feed: Feed, deps: PipelineDeps, states: FeedStates, state: FeedState | None,
    outcome: PollOutcome,
) -> tuple[datetime, str | None, str]:
    """Count the poll, decide the feed's life cycle and save both in one store write.

    ``state`` is the one the poll started from; the new state is computed in memory
    (``monitor.feeds.transitions``), so a 304 costs one transaction and one thread hop.
    """
    now = deps.now()
    streak = ""
    if outcome.ok:
        counted = counted_success(state, feed.name, feed.url, etag=outcome.etag,
                                  last_modified=outcome.last_modified, at=now,
                                  body_hash=outcome.body_hash, ttl_seconds=outcome.ttl_seconds)
    else:
        counted = counted_failure(state, feed.name, feed.url,
                                  error=outcome.error or "unknown error", at=now)
    update = after_poll(feed, counted, outcome, deps.lifecycle, now=now, rng=deps.rng,
                        override_seconds=feed.interval_seconds)
    if not outcome.ok:
        streak = (f"; {counted.consecutive_errors} consecutive failure(s), "
                  f"next try {update.next_poll_at:%H:%M:%S}")
    await states.save(with_lifecycle(counted, update, new_items=outcome.new_items, at=now))
    return update.next_poll_at, update.notice, streak
