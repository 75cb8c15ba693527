"""When to poll a feed next.

A fixed interval either hammers quiet feeds or lags busy ones, and failed feeds
that all retry at the same minute look like an attack to their hosts. The next
poll therefore follows how often the feed really publishes (a week divided by
the new items seen in the last week), is never sooner than the server asked
(Cache-Control max-age, Expires, RSS <ttl>, Retry-After), backs off
exponentially on failure, and is spread by random jitter. Pure functions only:
the pipeline supplies the facts, the scheduler applies the result.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

WEEK_SECONDS = 7 * 24 * 3600.0
MAX_SERVER_DELAY_SECONDS = 24 * 3600.0  # a server may slow us down, but not for days


@dataclass(frozen=True, slots=True)
class CadencePolicy:
    """Bounds of the adaptive interval; the values come from ``[schedule]`` (monitor.settings),
    the only place their defaults are written."""

    min_seconds: float
    max_seconds: float
    default_seconds: float
    jitter_fraction: float = 0.1
    max_backoff_exponent: int = 8


@dataclass(frozen=True, slots=True)
class PollFacts:
    """What the last poll taught us about the feed."""

    new_items_last_week: int | None          # None: not enough history yet
    consecutive_errors: int = 0
    override_seconds: float | None = None    # per-feed interval from config
    server_min_seconds: float | None = None  # max-age / Expires / <ttl> / Retry-After


def publishing_interval(new_items_last_week: int, policy: CadencePolicy) -> float:
    """A week divided by the items seen in it, clamped to the policy's bounds."""
    if new_items_last_week <= 0:
        return policy.max_seconds
    return min(max(WEEK_SECONDS / new_items_last_week, policy.min_seconds), policy.max_seconds)


def next_poll_delay(facts: PollFacts, policy: CadencePolicy, rng: random.Random) -> float:
    if facts.override_seconds is not None:
        base = facts.override_seconds
    elif facts.new_items_last_week is None:
        base = policy.default_seconds
    else:
        base = publishing_interval(facts.new_items_last_week, policy)
    if facts.consecutive_errors > 0:
        exponent = min(facts.consecutive_errors, policy.max_backoff_exponent)
        base = min(base * (2 ** exponent), max(policy.max_seconds, base))
        # Full jitter on failures so that feeds that failed together spread out.
        base = rng.uniform(base / 2, base)
    else:
        spread = base * policy.jitter_fraction
        base = base + rng.uniform(-spread, spread)
    if facts.server_min_seconds is not None:
        base = max(base, min(facts.server_min_seconds, MAX_SERVER_DELAY_SECONDS))
    return max(base, 1.0)


def items_in_window(
    timestamps: list[datetime], now: datetime, window: timedelta = timedelta(days=7)
) -> list[datetime]:
    """Keep only the arrival times inside the window (the store keeps this list short)."""
    start = now - window
    return [t for t in timestamps if t >= start]
