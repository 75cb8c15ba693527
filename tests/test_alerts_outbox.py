"""The outbox drainer with the real SQLite store and the real Slack deliverer (fake API).

The promises under test: each alert is posted exactly once; failures are
retried with back-off or parked with a reason; a rate limit pauses the batch;
and a worker that dies between posting and recording does not cause a second
post, because the alert is looked up in the channel before it is sent again.
"""

from __future__ import annotations

import asyncio
import io
import logging
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.alerts.console import ConsoleDeliverer
from monitor.alerts.health import DestinationHealth
from monitor.alerts.outbox import DrainReport, drain_outbox
from monitor.alerts.slack import SlackDeliverer
from monitor.alerts.webhook import WebhookDeliverer
from monitor.models import Alert, Article, Verdict
from monitor.store.sqlite import SqliteStore
from tests.support.defaults import drain_options
from tests.support.fake_slack import FakeSlack

TOKEN = "xoxb-3333-4444-OutboxSecretToken"
T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
LOG = logging.getLogger("test.outbox")


class Clock:
    """The drainer's notion of now; tests move it explicitly."""

    def __init__(self, start: datetime) -> None:
        self.t = start

    def __call__(self) -> datetime:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


class SteppingClock(Clock):
    """Moves forward by ``step`` seconds every time it is read (a slow destination)."""

    def __init__(self, start: datetime, step: float) -> None:
        super().__init__(start)
        self.step = step

    def __call__(self) -> datetime:
        now = self.t
        self.t += timedelta(seconds=self.step)
        return now


def queue(store: SqliteStore, n: int, destination: str = "slack:alerts") -> list[Alert]:
    """Record n matching articles with their pending alerts, as the pipeline would."""
    alerts = []
    for i in range(1, n + 1):
        article = Article(
            id=f"art-{i}", feed_name="wire", source="Example Wire",
            url=f"https://news.example/{i}", title=f"Story {i} on Pyongyang–Moscow arms",
            summary="Summary", published_at=T0, first_seen_at=T0,
        )
        verdict = Verdict(article.id, 0.9, True, 0.5, "terms matched", "m1", "arms/military")
        alert = Alert(
            id=f"al-{i}", article_id=article.id, destination=destination, title=article.title,
            url=article.url, source=article.source, published_at=T0, score=0.9,
            reason="terms matched", snippet="Snippet", event_type="arms/military",
        )
        assert store.record_article(article, verdict, alert)
        alerts.append(alert)
    return alerts


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "monitor.db"


@pytest.fixture
def store(db: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(db)
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def deliverer(slack: FakeSlack) -> SlackDeliverer:
    return SlackDeliverer(TOKEN, "C0ALERTS1", base_url=slack.base_url, timeout=2.0)


async def drain(store: SqliteStore, deliverer: Any, clock: Clock, **kw: Any) -> DrainReport:
    kw.setdefault("rng", random.Random(1))
    options = {k: kw.pop(k) for k in ("batch_size", "lease_seconds", "base_backoff",
                                      "max_backoff", "max_attempts", "max_batches") if k in kw}
    return await drain_outbox(store, deliverer, now=clock, logger=LOG,
                              options=drain_options(**options), **kw)


def posted_ids(slack: FakeSlack) -> list[str]:
    return [m.metadata["event_payload"]["alert_id"] for m in slack.messages if m.metadata]


# --- the happy path ----------------------------------------------------------------------
async def test_each_alert_is_sent_exactly_once(
    store: SqliteStore, deliverer: SlackDeliverer, slack: FakeSlack
) -> None:
    queue(store, 3)
    clock = Clock(T0 + timedelta(seconds=1))
    report = await drain(store, deliverer, clock)
    assert (report.sent, report.retried, report.failed, report.found_existing) == (3, 0, 0, 0)
    assert sorted(posted_ids(slack)) == ["al-1", "al-2", "al-3"]
    assert store.outbox_counts() == {"pending": 0, "in_flight": 0, "sent": 3, "failed": 0}
    clock.advance(3600)
    again = await drain(store, deliverer, clock)
    assert again == DrainReport()
    assert len(slack.messages) == 3


async def test_full_batches_keep_draining(
    store: SqliteStore, deliverer: SlackDeliverer, slack: FakeSlack
) -> None:
    queue(store, 5)
    report = await drain(store, deliverer, Clock(T0 + timedelta(seconds=1)), batch_size=2)
    assert report.sent == 5 and len(slack.messages) == 5


# --- retries -----------------------------------------------------------------------------
async def test_server_error_is_retried_with_backoff_then_sent_once(
    store: SqliteStore, deliverer: SlackDeliverer, slack: FakeSlack,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="test.outbox")
    queue(store, 1)
    clock = Clock(T0 + timedelta(seconds=1))
    slack.fail_next(status=500)
    report = await drain(store, deliverer, clock, base_backoff=10, max_backoff=100)
    assert (report.sent, report.retried) == (0, 1)
    assert store.outbox_counts()["pending"] == 1
    [line] = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "slack is unreachable" in line and "internal_error" in line
    assert "nothing is lost" in line
    # Not due again at once (the floor), due after the first back-off ceiling (10 s).
    assert await drain(store, deliverer, clock) == DrainReport()
    clock.advance(10.5)
    report = await drain(store, deliverer, clock)
    assert report.sent == 1 and posted_ids(slack) == ["al-1"]
    # A 500 may have posted, so the retry looked in the channel before posting.
    methods = [c.method for c in slack.calls]
    assert methods == ["chat.postMessage", "conversations.history", "chat.postMessage"]


def test_outage_probes_back_off_with_jitter_and_a_cap() -> None:
    health = DestinationHealth("slack", logger=LOG, probe_base=2, probe_cap=60,
                               rng=random.Random(42))
    for failures, ceiling in [(1, 2), (2, 4), (3, 8), (6, 60), (50, 60)]:
        while health.failures < failures - 1:
            health.failed("down", T0)
        probe = health.failed("down", T0)
        wait = (probe - T0).total_seconds()
        assert ceiling / 2 <= wait <= ceiling
        assert not health.can_send(T0) and health.can_send(probe)


async def test_successive_failures_back_off_further(
    store: SqliteStore, deliverer: SlackDeliverer, slack: FakeSlack
) -> None:
    queue(store, 1)
    clock = Clock(T0 + timedelta(seconds=1))
    health = DestinationHealth("slack", logger=LOG, probe_base=10, probe_cap=1000,
                               rng=random.Random(0))
    slack.fail_next(3, error="service_unavailable")
    for ceiling in (10, 20, 40):
        report = await drain(store, deliverer, clock, health=health)
        assert report.retried == 1
        clock.advance(ceiling / 2 - 0.5)  # every jittered delay is at least half its ceiling
        assert await drain(store, deliverer, clock, health=health) == DrainReport()
        clock.advance(ceiling / 2 + 1)
    assert (await drain(store, deliverer, clock, health=health)).sent == 1
    assert len(slack.calls_to("chat.postMessage")) == 4 and len(slack.messages) == 1


async def test_max_attempts_parks_the_alert(
    store: SqliteStore, deliverer: SlackDeliverer, slack: FakeSlack
) -> None:
    queue(store, 1)
    clock = Clock(T0 + timedelta(seconds=1))
    slack.fail_next(5, error="service_unavailable")
    assert (await drain(store, deliverer, clock, max_attempts=2)).retried == 1
    clock.advance(7200)
    assert (await drain(store, deliverer, clock, max_attempts=2)).failed == 1
    assert store.outbox_counts()["failed"] == 1


# --- rate limits ---------------------------------------------------------------------------
async def test_rate_limit_stops_the_batch_until_retry_after(
    store: SqliteStore, deliverer: SlackDeliverer, slack: FakeSlack
) -> None:
    queue(store, 3)
    clock = Clock(T0 + timedelta(seconds=1))
    slack.fail_next(error="ratelimited", retry_after=120)
    report = await drain(store, deliverer, clock, base_backoff=5)
    assert (report.sent, report.retried, report.deferred) == (0, 1, 2)
    assert len(slack.calls) == 1  # the other two were not even tried
    assert store.outbox_counts() == {"pending": 3, "in_flight": 0, "sent": 0, "failed": 0}
    clock.advance(60)
    assert await drain(store, deliverer, clock) == DrainReport()
    assert len(slack.calls) == 1
    clock.advance(61)
    report = await drain(store, deliverer, clock)
    assert report.sent == 3 and sorted(posted_ids(slack)) == ["al-1", "al-2", "al-3"]
    assert slack.calls_to("conversations.history") == []  # a 429 is not ambiguous


# --- parking -----------------------------------------------------------------------------
async def test_invalid_auth_is_parked_with_a_fix_and_no_token_in_logs(
    store: SqliteStore, slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    queue(store, 2)
    clock = Clock(T0 + timedelta(seconds=1))
    wrong = SlackDeliverer("xoxb-5555-revoked-token", "C0ALERTS1", base_url=slack.base_url)
    report = await drain(store, wrong, clock)
    assert (report.sent, report.failed) == (0, 2)
    assert store.outbox_counts()["failed"] == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2
    assert all("parked" in e and "SLACK_BOT_TOKEN" in e and "requeue-failed" in e for e in errors)
    assert "revoked-token" not in caplog.text and TOKEN not in caplog.text
    # The operator fixes the token and requeues: the alerts go out once.
    assert store.requeue_failed_alerts(now=clock()) == 2
    fixed = SlackDeliverer(TOKEN, "C0ALERTS1", base_url=slack.base_url)
    assert (await drain(store, fixed, clock)).sent == 2 and len(slack.messages) == 2


# --- ambiguity and crashes ---------------------------------------------------------------
async def test_dropped_connection_does_not_post_twice(
    store: SqliteStore, deliverer: SlackDeliverer, slack: FakeSlack
) -> None:
    queue(store, 2)
    clock = Clock(T0 + timedelta(seconds=1))
    slack.drop_after_post_next()  # al-1 is posted but the answer is lost
    report = await drain(store, deliverer, clock)
    # A lost answer counts as trouble at the destination: the rest waits for the probe.
    assert (report.sent, report.retried, report.deferred) == (0, 1, 1)
    assert posted_ids(slack) == ["al-1"]
    clock.advance(3600)
    report = await drain(store, deliverer, clock)
    assert (report.found_existing, report.sent) == (1, 1)
    assert sorted(posted_ids(slack)) == ["al-1", "al-2"]  # one post each
    assert store.outbox_counts()["sent"] == 2


async def test_crashed_worker_alert_is_looked_up_not_reposted(
    db: Path, store: SqliteStore, slack: FakeSlack
) -> None:
    queue(store, 2)
    start = T0 + timedelta(seconds=1)
    # Worker A claims both, posts al-1, and dies before recording anything.
    worker_a = SqliteStore(db)
    claimed = worker_a.claim_due_alerts(now=start, limit=10, lease_seconds=120)
    assert [a.id for a in claimed] == ["al-1", "al-2"] and not claimed[0].needs_lookup
    a_deliverer = SlackDeliverer(TOKEN, "C0ALERTS1", base_url=slack.base_url)
    await a_deliverer.deliver(claimed[0])
    worker_a.close()
    # Worker B, its own connection, cannot take them while A's lease holds ...
    worker_b = SqliteStore(db)
    b_deliverer = SlackDeliverer(TOKEN, "C0ALERTS1", base_url=slack.base_url)
    clock = Clock(start + timedelta(seconds=60))
    assert await drain(worker_b, b_deliverer, clock, lease_seconds=120) == DrainReport()
    # ... and after the lease expired it looks before posting.
    clock.advance(61)
    report = await drain(worker_b, b_deliverer, clock, lease_seconds=120)
    assert (report.found_existing, report.sent) == (1, 1)
    assert sorted(posted_ids(slack)) == ["al-1", "al-2"]
    assert worker_b.outbox_counts()["sent"] == 2
    worker_b.close()


async def test_lookup_failure_keeps_the_alert_for_later(
    store: SqliteStore, deliverer: SlackDeliverer, slack: FakeSlack
) -> None:
    queue(store, 1)
    clock = Clock(T0 + timedelta(seconds=1))
    slack.drop_after_post_next()
    await drain(store, deliverer, clock)
    slack.fail_next(status=503, method="conversations.history")
    clock.advance(3600)
    report = await drain(store, deliverer, clock)
    assert report.retried == 1 and len(slack.messages) == 1  # could not look: did not post
    clock.advance(3600)
    assert (await drain(store, deliverer, clock)).found_existing == 1
    assert len(slack.messages) == 1


async def test_slow_batch_hands_back_alerts_before_the_lease_runs_out(
    store: SqliteStore, deliverer: SlackDeliverer, slack: FakeSlack
) -> None:
    queue(store, 4)
    clock = SteppingClock(T0 + timedelta(seconds=1), step=20)
    report = await drain(store, deliverer, clock, lease_seconds=60)
    assert report.sent == 1 and report.deferred == 3
    counts = store.outbox_counts()
    assert counts["in_flight"] == 0 and counts["pending"] == 3
    assert slack.calls_to("conversations.history") == []


async def test_webhook_ambiguous_failure_is_retried_and_may_duplicate(
    store: SqliteStore, slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="test.outbox")
    queue(store, 1, destination="webhook")
    clock = Clock(T0 + timedelta(seconds=1))
    hook = WebhookDeliverer(slack.webhook_url)
    slack.drop_after_post_next(method="webhook")
    assert (await drain(store, hook, clock)).retried == 1
    assert "cannot be checked" in caplog.text
    clock.advance(3600)
    assert (await drain(store, hook, clock)).sent == 1
    assert len(slack.messages) == 2  # the documented cost of webhooks: no lookup


async def test_console_drain(store: SqliteStore) -> None:
    queue(store, 2, destination="console")
    out = io.StringIO()
    report = await drain(store, ConsoleDeliverer(out), Clock(T0 + timedelta(seconds=1)))
    assert report.sent == 2 and out.getvalue().count("=== DPRK–Russia alert") == 2


async def test_cancelled_drain_returns_untried_alerts_and_keeps_the_one_in_flight(
    store: SqliteStore, slack: FakeSlack
) -> None:
    queue(store, 3)
    slow = SlackDeliverer(TOKEN, "C0ALERTS1", base_url=slack.base_url, timeout=5.0)
    slack.stall_next(0.5)
    task = asyncio.create_task(drain(store, slow, Clock(T0 + timedelta(seconds=1))))
    for _ in range(200):  # wait until the first post is on the wire
        if slack.calls:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # al-1 may have been posted: it stays in flight so its lease expiry triggers a lookup.
    assert store.outbox_counts() == {"pending": 2, "in_flight": 1, "sent": 0, "failed": 0}


class BrokenDeliverer:
    """A deliverer with a bug: the outbox must survive it and keep the alert."""

    name = "broken"
    supports_lookup = False

    async def deliver(self, alert: Alert) -> Any:
        raise KeyError("unexpected shape")

    async def find_delivered(self, alert: Alert) -> None:
        return None

    async def aclose(self) -> None:
        return None


async def test_a_deliverer_bug_is_retried_not_fatal(store: SqliteStore) -> None:
    queue(store, 2)
    report = await drain(store, BrokenDeliverer(), Clock(T0 + timedelta(seconds=1)))
    assert report.retried == 2
    assert store.outbox_counts()["pending"] == 2
