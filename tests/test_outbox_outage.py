"""Slack outages, rate limits and stops, seen from the outbox (real store, fake Slack on loopback).

The promises: an outage is one log line when it starts and one when it ends (not one
per alert per attempt); once Slack is back the backlog goes out at once, oldest news
first, each alert once; a rate limit pauses without growing anyone's back-off; a stop
lets the alert on the wire finish and hands the rest back; a duplicate look-up reaches
back to the first attempt however many messages were posted since.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from monitor.alerts.health import DestinationHealth
from monitor.alerts.outbox import drain_outbox
from monitor.alerts.slack import SlackDeliverer
from monitor.models import Alert, Article, Verdict
from monitor.store.sqlite import SqliteStore
from tests.support.defaults import drain_options
from tests.support.fake_slack import FakeSlack
from tests.test_alerts_outbox import Clock

TOKEN = "xoxb-5555-6666-OutageSecretToken"
LOG_NAME = "test.outage"
LOG = logging.getLogger(LOG_NAME)


def queue_published(store: SqliteStore, published: list[datetime], seen: datetime) -> None:
    """Alerts recorded in list order, whatever their publication times."""
    for i, when in enumerate(published, start=1):
        article = Article(
            id=f"art-{i}", feed_name="wire", source="Example Wire",
            url=f"https://news.example/{i}", title=f"Report {i} on Pyongyang–Moscow arms",
            summary="Summary", published_at=when, first_seen_at=seen,
        )
        verdict = Verdict(article.id, 0.9, True, 0.5, "terms matched", "m1", "arms/military")
        alert = Alert(
            id=f"al-{i}", article_id=article.id, destination="slack:alerts",
            title=article.title, url=article.url, source=article.source, published_at=when,
            score=0.9, reason="terms matched", snippet="Snippet", event_type="arms/military",
        )
        assert store.record_article(article, verdict, alert)


def posted_ids(slack: FakeSlack) -> list[str]:
    return [m.metadata["event_payload"]["alert_id"] for m in slack.messages if m.metadata]


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def deliverer(slack: FakeSlack) -> SlackDeliverer:
    return SlackDeliverer(TOKEN, "C0ALERTS1", base_url=slack.base_url, timeout=2.0)


async def test_outage_is_one_line_each_way_and_the_backlog_goes_out_in_order(
    store: SqliteStore, deliverer: SlackDeliverer, slack: FakeSlack,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOG_NAME)
    t0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    # Recorded newest-first: publication order is the reverse of the queue's order.
    published = [t0 - timedelta(minutes=i) for i in range(20)]
    queue_published(store, published, seen=t0)
    clock = Clock(t0 + timedelta(seconds=1))
    health = DestinationHealth("slack", logger=LOG, probe_base=2, probe_cap=30,
                               rng=random.Random(3))
    slack.fail_next(6, status=500)
    drains = 0
    while store.outbox_counts()["sent"] < 20 and drains < 200:
        await drain_outbox(store, deliverer, now=clock, logger=LOG, health=health,
                           rng=random.Random(drains), options=drain_options(batch_size=50))
        clock.advance(1)
        drains += 1
    assert store.outbox_counts() == {"pending": 0, "in_flight": 0, "sent": 20, "failed": 0}
    # Every alert once, oldest publication first.
    assert posted_ids(slack) == [f"al-{i}" for i in range(20, 0, -1)]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "slack is unreachable" in warnings[0]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO
             and "reachable again" in r.getMessage()]
    assert len(infos) == 1 and "19 waiting" in infos[0]
    # Probing took one call per probe (post, or look-up after a 500 that may have
    # posted), not one per alert: 6 failed calls in all, then 20 posts.
    assert slack.pending_failures() == 0
    assert len(slack.calls_to("chat.postMessage")) + len(
        slack.calls_to("conversations.history")) <= 6 + 20 + 1


async def test_backlog_waits_at_most_one_probe_interval_after_recovery(
    store: SqliteStore, deliverer: SlackDeliverer, slack: FakeSlack,
) -> None:
    t0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    queue_published(store, [t0] * 5, seen=t0)
    clock = Clock(t0)
    health = DestinationHealth("slack", logger=LOG, probe_base=2, probe_cap=30,
                               rng=random.Random(5))
    slack.fail_next(1000, status=503)
    for _ in range(600):  # ten minutes of outage, one drain a second
        await drain_outbox(store, deliverer, now=clock, logger=LOG, health=health,
                           options=drain_options())
        clock.advance(1)
    probes = len(slack.calls_to("chat.postMessage"))
    assert probes <= 600 / 15 + 6  # capped probing, not one call per drain
    slack.clear_failures()
    recovered_at = clock()
    while store.outbox_counts()["sent"] < 5:
        await drain_outbox(store, deliverer, now=clock, logger=LOG, health=health,
                           options=drain_options())
        clock.advance(1)
        assert (clock() - recovered_at).total_seconds() <= 31, "backlog waited past the cap"
    assert sorted(posted_ids(slack)) == [f"al-{i}" for i in range(1, 6)]


async def test_a_short_rate_limit_is_waited_out_in_order_without_growing_any_back_off(
    store: SqliteStore, deliverer: SlackDeliverer, slack: FakeSlack,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOG_NAME)
    t0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    queue_published(store, [t0 + timedelta(minutes=i) for i in range(4)], seen=t0)
    clock = Clock(t0 + timedelta(hours=1))
    health = DestinationHealth("slack", logger=LOG)
    slack.fail_next(2, error="ratelimited", retry_after=1)
    report = await drain_outbox(store, deliverer, now=clock, logger=LOG, health=health,
                                options=drain_options())
    # one drain: the 429s were waited out and the same alert resent each time
    assert (report.sent, report.retried, report.deferred) == (4, 0, 0)
    assert posted_ids(slack) == ["al-1", "al-2", "al-3", "al-4"]
    assert health.rate_limits == 2 and health.down_since is None
    lines = [r for r in caplog.records if r.levelno >= logging.INFO
             and "rate limiting" in r.getMessage()]
    assert len(lines) == 1  # one line per storm, not per refusal
    assert store.outbox_counts()["sent"] == 4


async def test_stop_finishes_the_post_on_the_wire_and_hands_back_the_rest(
    store: SqliteStore, deliverer: SlackDeliverer, slack: FakeSlack,
) -> None:
    t0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    queue_published(store, [t0] * 4, seen=t0)
    clock = Clock(t0 + timedelta(seconds=1))
    report = await drain_outbox(store, deliverer, now=clock, logger=LOG,
                                should_stop=lambda: len(slack.messages) >= 1,
            options=drain_options())
    assert (report.sent, report.deferred) == (1, 3)
    assert store.outbox_counts() == {"pending": 3, "in_flight": 0, "sent": 1, "failed": 0}
    report = await drain_outbox(store, deliverer, now=clock, logger=LOG, options=drain_options())
    assert report.sent == 3 and slack.calls_to("conversations.history") == []
    assert len(posted_ids(slack)) == len(set(posted_ids(slack))) == 4


async def test_lookup_reaches_back_to_the_first_attempt_past_a_long_backlog(
    store: SqliteStore, deliverer: SlackDeliverer, slack: FakeSlack,
) -> None:
    now = datetime.now(UTC)
    queue_published(store, [now], seen=now)
    clock = Clock(now)
    [claimed] = store.claim_due_alerts(now=clock(), limit=1, lease_seconds=5)
    assert claimed.first_attempt_at == now
    await deliverer.deliver(claimed)  # posted; then the process dies before recording it
    for i in range(450):  # the channel moves on: far more than one history page
        slack.add_message("C0ALERTS1", f"later message {i}")
    clock.advance(10)  # the lease expired
    report = await drain_outbox(store, deliverer, now=clock, logger=LOG,
                                options=drain_options(lease_seconds=5))
    assert (report.found_existing, report.sent) == (1, 0)
    assert posted_ids(slack) == ["al-1"]
    [call, *_] = slack.calls_to("conversations.history")
    assert float(call.params["oldest"]) <= now.timestamp()
