"""Adaptive schedule and feed life cycle: pure decisions, checked with a seeded RNG."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from monitor.feeds import (
    CadencePolicy,
    LifecyclePolicy,
    PollFacts,
    PollOutcome,
    after_poll,
    effective_url,
    feed_cadence,
    next_poll_delay,
    publishing_interval,
)
from monitor.models import Feed, FeedState
from tests.support.defaults import lifecycle

POLICY = CadencePolicy(min_seconds=120, max_seconds=6 * 3600, default_seconds=600,
                       jitter_fraction=0.1)
NOW = datetime(2025, 6, 1, tzinfo=UTC)


def delays(facts: PollFacts, n: int = 200) -> list[float]:
    rng = random.Random(7)
    return [next_poll_delay(facts, POLICY, rng) for _ in range(n)]


def test_interval_follows_publishing_rate_within_bounds() -> None:
    assert publishing_interval(7 * 24, POLICY) == 3600          # one item an hour
    assert publishing_interval(100_000, POLICY) == 120          # clamped to the minimum
    assert publishing_interval(1, POLICY) == 6 * 3600           # clamped to the maximum
    assert publishing_interval(0, POLICY) == 6 * 3600


def test_jitter_spreads_polls_but_stays_near_the_interval() -> None:
    values = delays(PollFacts(new_items_last_week=7 * 24))
    assert min(values) >= 3600 * 0.9 and max(values) <= 3600 * 1.1
    assert len({round(v) for v in values}) > 50


def test_server_hints_are_lower_bounds_and_unknown_history_uses_default() -> None:
    assert min(delays(PollFacts(new_items_last_week=10_000, server_min_seconds=900))) >= 900
    # a server cannot push us away for more than a day
    assert max(delays(PollFacts(new_items_last_week=10_000, server_min_seconds=10**7))) <= 86400
    values = delays(PollFacts(new_items_last_week=None))
    assert min(values) >= 540 and max(values) <= 660


def test_failures_back_off_exponentially_with_full_jitter() -> None:
    one = delays(PollFacts(new_items_last_week=None, consecutive_errors=1))
    three = delays(PollFacts(new_items_last_week=None, consecutive_errors=3))
    assert min(one) >= 600 and max(one) <= 1200
    assert min(three) >= 2400 and max(three) <= 4800
    many = delays(PollFacts(new_items_last_week=None, consecutive_errors=30))
    assert max(many) <= 6 * 3600
    # failed feeds do not all retry at the same minute
    assert len({round(v / 60) for v in many}) > 30


def test_fixed_interval_from_config_wins() -> None:
    values = delays(PollFacts(new_items_last_week=10_000, override_seconds=1800))
    assert min(values) >= 1620 and max(values) <= 1980


FEED = Feed("F", "https://f.example/rss")


def test_a_feed_can_have_its_own_bounds() -> None:
    wire = Feed("Wire", "https://w.example/rss", min_interval_seconds=30)
    annual = Feed("Annual", "https://a.example/rss", min_interval_seconds=86_400)
    capped = Feed("Capped", "https://c.example/rss", max_interval_seconds=60)
    busy = 100_000  # new items last week: the minimum applies
    assert feed_cadence(FEED, POLICY) is POLICY
    assert publishing_interval(busy, feed_cadence(wire, POLICY)) == 30
    assert publishing_interval(1, feed_cadence(wire, POLICY)) == 6 * 3600  # global max kept
    # a minimum above the global maximum lifts the maximum with it; likewise downwards
    assert publishing_interval(busy, feed_cadence(annual, POLICY)) == 86_400
    assert publishing_interval(1, feed_cadence(capped, POLICY)) == 60
    assert feed_cadence(capped, POLICY).default_seconds == 60
    rng = random.Random(3)
    update = after_poll(wire, state(), PollOutcome(ok=True, new_items=busy),
                        lifecycle(cadence=POLICY),
                        now=NOW, rng=rng, override_seconds=None)
    assert (update.next_poll_at - NOW).total_seconds() <= 33  # 30 s plus 10 % jitter


def state(**kw: object) -> FeedState:
    base = dict(name="F", url=FEED.url, polls=5, last_success_at=NOW - timedelta(hours=1),
                last_new_item_at=NOW - timedelta(hours=1))
    base.update(kw)
    return FeedState(**base)  # type: ignore[arg-type]


def decide(st: FeedState, outcome: PollOutcome, policy: LifecyclePolicy | None = None):
    return after_poll(FEED, st, outcome, policy or lifecycle(), now=NOW,
                      rng=random.Random(1), override_seconds=None)


def test_flag_once_after_n_failures_and_clear_on_recovery() -> None:
    policy = lifecycle(flag_after_failures=3)
    early = decide(state(consecutive_errors=2), PollOutcome(ok=False, error="x"), policy)
    assert early.notice is None
    flagged = decide(state(consecutive_errors=3), PollOutcome(ok=False, error="timeout"), policy)
    assert flagged.notice and "3 times" in flagged.notice and flagged.flagged
    again = decide(state(consecutive_errors=4, flagged=flagged.flagged),
                   PollOutcome(ok=False, error="timeout"), policy)
    assert again.notice is None and again.flagged is False  # no notice per poll
    recovered = decide(state(flagged=flagged.flagged), PollOutcome(ok=True), policy)
    assert recovered.flagged is None and "working again" in recovered.notice


def test_gone_disables_with_a_notice() -> None:
    update = decide(state(consecutive_errors=1), PollOutcome(ok=False, http_status=410))
    assert update.disabled and "410" in update.notice


def test_stale_feed_flagged_once() -> None:
    old = state(last_new_item_at=NOW - timedelta(days=20))
    update = decide(old, PollOutcome(ok=True))
    assert update.flagged and update.flagged.startswith("stale:") and "20 days" in update.notice
    assert decide(state(last_new_item_at=NOW - timedelta(days=21), flagged=update.flagged),
                  PollOutcome(ok=True)).notice is None
    back = decide(state(flagged=update.flagged), PollOutcome(ok=True, new_items=2))
    assert back.flagged is None and back.notice


def test_permanent_redirect_is_followed_until_config_changes() -> None:
    update = decide(state(), PollOutcome(ok=True, moved_to="https://new.example/rss"))
    assert update.moved_to == "https://new.example/rss" and "moved" in update.notice
    moved = state(moved_to="https://new.example/rss")
    assert effective_url(FEED, moved) == "https://new.example/rss"
    edited = Feed("F", "https://edited.example/rss")
    assert effective_url(edited, moved) == "https://edited.example/rss"
