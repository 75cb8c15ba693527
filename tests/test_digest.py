"""The daily digest: stories grouped by event type with outlet counts and the lead headline,
the weekly line, and one post per day (real store, the CLI, fake Slack on loopback)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.decide import AlertRules, decide
from monitor.digest import build_digest, digest_message
from monitor.models import Article, Receipt, StoryLink, Verdict
from monitor.store.sqlite import SqliteStore
from tests.support.configs import write_config
from tests.support.fake_slack import DEFAULT_TOKEN, FakeSlack

NOW = datetime.now(UTC).replace(microsecond=0)


def seed(store: SqliteStore, destination: str) -> None:
    """Two arms stories (one reported by three outlets) and a summit story, all alerted;
    one analyst label on each side; and an older story outside the period."""
    rules = AlertRules(destination=destination, max_article_age_hours=0, snippet_chars=200)
    plan = [  # (article no., story no., outlet, event type, hours ago)
        (1, 1, "Wire", "arms/military", 5), (2, 1, "Herald", "arms/military", 4),
        (3, 1, "Courier", "arms/military", 3), (4, 2, "Wire", "arms/military", 2),
        (5, 3, "Gazette", "diplomacy/summit", 6), (6, 4, "Wire", "trade", 40),
    ]
    for i, story, outlet, event, ago in plan:
        when = NOW - timedelta(hours=ago)
        a = Article(f"{i:032x}", outlet, outlet, f"https://{outlet.lower()}.example/{i}",
                    f"Story {story} <b>report</b> {i}", "summary", when, when)
        v = Verdict(a.id, 0.9, True, 0.5, "r", "m", event)
        alert = decide(a, v, rules, now=NOW).alert
        store.record_articles([(a, v, alert, StoryLink(f"s-{story}", i in (1, 4, 5, 6)))])
        assert alert is not None
        store.claim_due_alerts(now=NOW, limit=10, lease_seconds=60)
        store.mark_alert_sent(Receipt(alert.id, destination, f"ts{i}", NOW,
                                      {"channel": "C0ALERTS1"}))
    store.add_label(f"{1:032x}", 1, source="slack", at=NOW)
    store.add_label(f"{4:032x}", 0, source="slack", at=NOW)


def test_digest_groups_stories_by_event_type_with_outlet_counts(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "m.db")
    store.migrate()
    seed(store, "console")
    digest = build_digest(store, now=NOW, timezone="UTC")
    store.close()
    assert [etype for etype, _ in digest.groups] == ["arms/military", "diplomacy/summit"]
    arms = digest.groups[0][1]
    assert [(s.story_id, s.source_count) for s in arms] == [("s-1", 3), ("s-2", 1)]
    assert arms[0].title.startswith("Story 1")  # the lead (parent) headline
    assert digest.week.alerts_sent == 6 and digest.week.labels_given == 2
    assert digest.week.precision == 0.5
    blob = json.dumps(digest_message(digest).blocks)
    assert "&lt;b&gt;report" in blob and "<b>" not in blob  # feed text stays inert
    assert "precision from labels 50%" in blob


def test_digest_goes_to_slack_once_per_day(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    with FakeSlack() as slack:
        for key, value in {"SLACK_BOT_TOKEN": DEFAULT_TOKEN, "SLACK_CHANNEL": "C0ALERTS1",
                           "SLACK_API_URL": slack.base_url}.items():
            monkeypatch.setenv(key, value)
        config = write_config(tmp_path, {})
        store = SqliteStore(tmp_path / "state.db")
        store.migrate()
        seed(store, "slack:C0ALERTS1")
        store.close()
        assert main(["digest", "--config", str(config)]) == 0  # a preview posts nothing
        assert "arms/military (2)" in capsys.readouterr().out and slack.posted() == []
        assert main(["digest", "--post", "--config", str(config)]) == 0
        assert main(["digest", "--post", "--config", str(config)]) == 1  # already sent today
        [message] = slack.posted()
        assert "daily digest" in (message.text or "")
        assert message.metadata["event_payload"]["kind"] == "digest"
