"""A feed's state after one poll, computed in memory rather than in SQL.

A warm cycle is almost all 304s. Computing the next ``FeedState`` here, from the
state the poll started with, lets the pipeline persist a poll's whole
bookkeeping (counters, validators, arrivals, schedule, flags) with one
``Store.save_feed_state`` call: one transaction and one thread hop per poll,
instead of a write, a re-read and another write.

Pure functions only: they compute the feed's next row from the last one, and the
tests check that the two agree.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from monitor.feeds.lifecycle import LifecycleUpdate
from monitor.models import MAX_ARRIVALS, FeedState

ARRIVALS_WINDOW = timedelta(days=7)
"""A week of a very busy feed; keeps the row small."""


def _for_url(state: FeedState | None, name: str, url: str) -> FeedState:
    """The state to count against: a fresh one, or one whose URL-bound facts are reset.

    A changed configured URL means the analyst fixed the feed, so the old redirect
    target, flag and disabled reason no longer apply.
    """
    if state is None:
        return FeedState(name=name, url=url)
    if state.url != url:
        return dataclasses.replace(state, url=url, moved_to=None, flagged=None, disabled=None,
                                   body_hash=None, ttl_seconds=None)
    return state


def counted_success(
    state: FeedState | None, name: str, url: str, *,
    etag: str | None, last_modified: str | None, at: datetime,
    body_hash: str | None = None, ttl_seconds: float | None = None,
) -> FeedState:
    """The state once a successful poll (200 or 304) is counted: new validators, error run reset.

    ``body_hash``/``ttl_seconds`` describe the body whose items are now all recorded.
    """
    base = _for_url(state, name, url)
    return dataclasses.replace(
        base, etag=etag, last_modified=last_modified, last_success_at=at,
        last_attempt_at=at, consecutive_errors=0, polls=base.polls + 1,
        body_hash=body_hash, ttl_seconds=ttl_seconds,
    )


def counted_failure(
    state: FeedState | None, name: str, url: str, *, error: str, at: datetime
) -> FeedState:
    """The state once a failed poll is counted: validators kept, error run extended."""
    base = _for_url(state, name, url)
    return dataclasses.replace(
        base, last_attempt_at=at, last_error=error[:1000], error_count=base.error_count + 1,
        consecutive_errors=base.consecutive_errors + 1, polls=base.polls + 1,
    )


def with_lifecycle(
    state: FeedState, update: LifecycleUpdate, *, new_items: int, at: datetime,
    window: timedelta = ARRIVALS_WINDOW,
) -> FeedState:
    """Apply the life-cycle decision: arrivals, schedule, redirect, flag, disabled.

    ``flagged``/``disabled`` False in the update means "leave as is".
    """
    cutoff = at - window
    arrivals = state.arrivals
    if new_items or (arrivals and min(arrivals) < cutoff):
        kept = [t for t in arrivals if t >= cutoff]
        kept.extend([at] * new_items)
        arrivals = tuple(kept[-MAX_ARRIVALS:])
    changes: dict[str, object] = {"arrivals": arrivals, "next_poll_at": update.next_poll_at}
    if new_items:
        changes["last_new_item_at"] = at
    if update.moved_to is not None:
        changes["moved_to"] = update.moved_to
    if update.flagged is not False:
        changes["flagged"] = update.flagged
    if update.disabled is not False:
        changes["disabled"] = update.disabled
    return dataclasses.replace(state, **changes)  # type: ignore[arg-type]
