"""What a poll's outcome means for the feed: next poll time, flags, notices.

Feed readers are known for feeds that die unnoticed for a month. Here every
outcome updates the feed's record, and a *change* of condition (now broken,
now stale, gone, moved, recovered) produces exactly one notice — never one
per poll. Pure decisions; the pipeline stores them and the app sends notices.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx

from monitor.feeds.cadence import CadencePolicy, PollFacts, items_in_window, next_poll_delay
from monitor.models import Feed, FeedState
from monitor.netguard import blocked_reason, literal_address, same_server

FAILURE_FLAG_PREFIX = "failing:"
STALE_FLAG_PREFIX = "stale:"


@dataclass(frozen=True, slots=True)
class LifecyclePolicy:
    """From ``[schedule]`` (monitor.settings, where the defaults are written)."""

    cadence: CadencePolicy
    flag_after_failures: int
    stale_after: timedelta


@dataclass(frozen=True, slots=True)
class PollOutcome:
    ok: bool
    new_items: int = 0
    http_status: int | None = None
    error: str | None = None
    retry_after: float | None = None
    server_min_seconds: float | None = None
    moved_to: str | None = None
    etag: str | None = None
    """Validators to keep for the next conditional GET (successful polls only)."""
    last_modified: str | None = None
    body_hash: str | None = None
    """Digest of the body whose items are now recorded (kept as is on a 304)."""
    ttl_seconds: float | None = None
    unchanged: bool = False
    """A 200 whose body was identical to the last recorded one: not parsed."""


@dataclass(frozen=True, slots=True)
class LifecycleUpdate:
    next_poll_at: datetime
    flagged: str | bool | None = False     # False: unchanged
    disabled: str | bool | None = False
    moved_to: str | None = None
    notice: str | None = None


def effective_url(feed: Feed, state: FeedState | None) -> str:
    """Poll the permanent-redirect target, unless the analyst changed the configured URL.

    A move saved before redirect hops were checked may point at an internal
    address; such a move is ignored rather than trusted as a start URL.
    """
    if (state is not None and state.url == feed.url and state.moved_to
            and may_save_move(feed.url, state.moved_to)):
        return state.moved_to
    return feed.url


def may_save_move(configured_url: str, target: str) -> bool:
    """False for a move to a literal internal address (or ``localhost``) on another host
    than the configured URL's.

    The fetch already refuses to report such a move (``fetch.FeedHopGuard``,
    which also resolves names); this second, pure check against the *operator's*
    URL keeps one from ever becoming the trusted start URL of later polls.
    """
    try:
        moved, configured = httpx.URL(target), httpx.URL(configured_url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return False
    if same_server(moved, configured):
        return True
    host = moved.raw_host.decode("ascii").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return False
    address = literal_address(host)
    return address is None or blocked_reason(address) is None


def feed_cadence(feed: Feed, cadence: CadencePolicy) -> CadencePolicy:
    """The schedule's bounds with the feed's own where the config gives them (a wire
    service may be worth polling every minute, an annual-report feed once a day)."""
    low, high = feed.min_interval_seconds, feed.max_interval_seconds
    if low is None and high is None:
        return cadence
    # A feed's own bound wins over the other, global one where the two would cross.
    if low is None:
        low = min(cadence.min_seconds, high)
    if high is None:
        high = max(cadence.max_seconds, low)
    return dataclasses.replace(cadence, min_seconds=low, max_seconds=high,
                               default_seconds=min(max(cadence.default_seconds, low), high))


def after_poll(
    feed: Feed,
    state: FeedState,
    outcome: PollOutcome,
    policy: LifecyclePolicy,
    *,
    now: datetime,
    rng: random.Random,
    override_seconds: float | None,
) -> LifecycleUpdate:
    """``state`` is the feed's state *after* the success/failure was counted."""
    history_known = state.polls > 1 and state.last_success_at is not None
    recent = items_in_window(list(state.arrivals), now) if history_known else None
    facts = PollFacts(
        new_items_last_week=(len(recent) + outcome.new_items) if recent is not None else None,
        consecutive_errors=state.consecutive_errors,
        override_seconds=override_seconds,
        server_min_seconds=max(
            (v for v in (outcome.retry_after, outcome.server_min_seconds) if v is not None),
            default=None,
        ),
    )
    next_at = now + timedelta(seconds=next_poll_delay(facts, feed_cadence(feed, policy.cadence),
                                                      rng))
    name = f"feed {feed.name!r} ({feed.url})"

    if not outcome.ok and outcome.http_status == 410:
        reason = f"410 Gone at {now:%Y-%m-%d %H:%M} UTC"
        return LifecycleUpdate(
            next_at, disabled=reason,
            notice=f"{name} answered 410 Gone: it is disabled and will not be polled again "
                   "until its URL changes in the config.",
        )
    if not outcome.ok:
        if state.consecutive_errors >= policy.flag_after_failures and not (
            state.flagged or ""
        ).startswith(FAILURE_FLAG_PREFIX):
            reason = f"{FAILURE_FLAG_PREFIX} {state.consecutive_errors} consecutive failures"
            return LifecycleUpdate(
                next_at, flagged=reason,
                notice=f"{name} has failed {state.consecutive_errors} times in a row "
                       f"(last error: {outcome.error}); still retrying with back-off.",
            )
        return LifecycleUpdate(next_at)

    moved_to = outcome.moved_to
    if moved_to is not None and not may_save_move(feed.url, moved_to):
        moved_to = None
    moved_notice = None
    if moved_to and moved_to != state.moved_to:
        moved_notice = (f"{name} moved permanently to {moved_to}; polling the new "
                        "address (update the config when convenient).")
    flag = state.flagged or ""
    if flag.startswith(FAILURE_FLAG_PREFIX):
        return LifecycleUpdate(next_at, flagged=None, moved_to=moved_to,
                               notice=moved_notice or f"{name} is working again.")
    last_new = state.last_new_item_at or state.last_success_at
    if outcome.new_items:
        if flag.startswith(STALE_FLAG_PREFIX):
            return LifecycleUpdate(next_at, flagged=None, moved_to=moved_to,
                                   notice=moved_notice or f"{name} publishes again.")
    elif (
        last_new is not None
        and history_known
        and now - last_new > policy.stale_after
        and not flag.startswith(STALE_FLAG_PREFIX)
    ):
        days = (now - last_new).days
        return LifecycleUpdate(
            next_at, flagged=f"{STALE_FLAG_PREFIX} no new item for {days} days",
            moved_to=moved_to,
            notice=moved_notice or f"{name} has published nothing new for {days} days; "
                                   "check that it is still the right address.",
        )
    return LifecycleUpdate(next_at, moved_to=moved_to, notice=moved_notice)
