"""The sink registry: each alert goes through the deliverer of its own destination, each
destination keeps its own outage record, and an alert for a destination that is no longer
configured is parked with a reason (real store, fake Slack on loopback, a real console)."""

from __future__ import annotations

import io
import logging
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.alerts.console import ConsoleDeliverer
from monitor.alerts.outbox import drain_outbox
from monitor.alerts.sinks import Sinks
from monitor.alerts.slack import SlackDeliverer
from monitor.models import Alert, Article, Verdict
from monitor.store.sqlite import SqliteStore
from tests.support.defaults import drain_options
from tests.support.fake_slack import DEFAULT_TOKEN, FakeSlack

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
LOG = logging.getLogger("test.sinks")


def queue(store: SqliteStore, i: int, destination: str) -> None:
    article = Article(id=f"art-{i}", feed_name="w", source="Wire", url=f"https://w.example/{i}",
                      title=f"Report {i} on Pyongyang and Moscow", summary="s",
                      published_at=T0 + timedelta(minutes=i), first_seen_at=T0)
    verdict = Verdict(article.id, 0.9, True, 0.5, "terms", "m1", "arms/military")
    alert = Alert(id=f"al-{i}", article_id=article.id, destination=destination,
                  title=article.title, url=article.url, source="Wire",
                  published_at=article.published_at, score=0.9, reason="terms", snippet="s")
    assert store.record_article(article, verdict, alert)


async def test_alerts_are_routed_by_destination_and_outages_stay_separate(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "m.db")
    store.migrate()
    for i, dest in enumerate(["slack:C0ALERTS1", "console", "slack:C0ALERTS1", "console",
                              "teams:gone"], start=1):
        queue(store, i, dest)
    out = io.StringIO()
    with FakeSlack() as slack:
        sinks = Sinks.build({
            "slack:C0ALERTS1": SlackDeliverer(DEFAULT_TOKEN, "C0ALERTS1",
                                              base_url=slack.base_url),
            "console": ConsoleDeliverer(out),
        }, logger=LOG, rng=random.Random(1))
        slack.fail_next(5, status=503)  # Slack is down; the console is not
        clock = T0 + timedelta(hours=1)
        report = await drain_outbox(store, sinks, now=lambda: clock, logger=LOG,
                                    options=drain_options())
        assert out.getvalue().count("=== DPRK–Russia alert") == 2
        assert not sinks.health("slack:C0ALERTS1").can_send(clock)
        assert sinks.health("console").can_send(clock)
        assert report.failed == 1  # teams:gone has no sink: parked, with a reason
        slack.clear_failures()
        clock += timedelta(minutes=5)
        await drain_outbox(store, sinks, now=lambda: clock, logger=LOG, options=drain_options())
        assert sorted(m.metadata["event_payload"]["alert_id"] for m in slack.posted()) == [
            "al-1", "al-3"]
    assert store.outbox_counts() == {"pending": 0, "in_flight": 0, "sent": 4, "failed": 1}
    store.close()
