"""One story, one Slack thread: the real daemon (``once``) against a local feed server and
the fake Slack, which refuses a ``thread_ts`` that names no parent and a ``chat.update``
of a message that does not exist.

The outlets below carry one wire story word for word at their own URLs, a rewrite of
it, and a separate development of the same trip, all written for this test.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from monitor.alerts.console import ConsoleDeliverer
from monitor.alerts.outbox import drain_outbox
from monitor.alerts.slack import SlackDeliverer
from monitor.cli import main
from monitor.decide import decide
from monitor.models import Article, StoryLink, Verdict
from monitor.store.sqlite import SqliteStore
from monitor.store.sqlite_stories import own_story_id
from monitor.stories.items import new_story_id
from tests.support.defaults import alert_rules, drain_options
from tests.support.fake_slack import DEFAULT_TOKEN, FakeSlack
from tests.support.feed_server import FeedServer

REPO = Path(__file__).resolve().parent.parent
NOW = datetime.now(UTC).replace(microsecond=0)

TRAIN_TITLE = "Kim Jong Un's armoured train crosses into Russia at Khasan ahead of Putin summit"
TRAIN_SUMMARY = ("The North Korean leader's train crossed the Tumen River border into Russia's "
                 "Primorye region early on Tuesday, Russian officials said, on the way to talks "
                 "with Vladimir Putin expected to cover arms and military cooperation.")
REWRITE_TITLE = "North Korean leader's train enters Russia at Khasan before Putin talks"
REWRITE_SUMMARY = ("Kim Jong Un's armoured train rolled over the Tumen River border crossing at "
                   "Khasan into Primorye, Russian officials said, ahead of a summit with Putin "
                   "where weapons deals are expected.")
PLANT_TITLE = ("Kim tours Komsomolsk-on-Amur fighter jet plant as Russia shows off Su-35 "
               "production line")
PLANT_SUMMARY = ("After the summit, the North Korean leader visited the Yuri Gagarin aircraft "
                 "factory in Komsomolsk-on-Amur, where Russian officials showed him Su-35 and "
                 "Su-57 fighter production, fuelling talk of military technology transfer.")


def rss(items: list[tuple[str, str, str, datetime]]) -> bytes:
    body = "".join(
        f"<item><title>{escape(t)}</title><link>{escape(u)}</link>"
        f"<guid>{escape(u)}</guid><description>{escape(s)}</description>"
        f"<pubDate>{format_datetime(p)}</pubDate></item>"
        for t, s, u, p in items
    )
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>feed</title><link>https://example.org/</link>{body}</channel></rss>").encode()


def config(tmp_path: Path, feeds: dict[str, str]) -> Path:
    body = f"""
[storage]
database_url = "sqlite:///{tmp_path}/state.db"
[classifier]
keywords_path = "{REPO / 'config' / 'keywords.toml'}"
[alerts]
max_article_age_hours = 0
[fetch]
unconditional_probability = 0
min_host_gap_seconds = 0
"""
    body += "".join(f'\n[[feeds]]\nname = "{n}"\nurl = "{u}"\n' for n, u in feeds.items())
    path = tmp_path / "monitor.toml"
    path.write_text(body)
    return path


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        monkeypatch.setenv("SLACK_BOT_TOKEN", DEFAULT_TOKEN)
        monkeypatch.setenv("SLACK_CHANNEL", "C0ALERTS1")
        monkeypatch.setenv("SLACK_API_URL", fake.base_url)
        yield fake


def payload_ids(message: object) -> list[str]:
    payload = message.metadata["event_payload"]  # type: ignore[attr-defined]
    return payload.get("alert_ids") or [payload["alert_id"]]


def test_syndicated_copies_thread_under_one_parent_and_a_restart_keeps_the_thread(
    tmp_path: Path, slack: FakeSlack,
) -> None:
    t = NOW - timedelta(hours=2)
    with FeedServer() as server:
        feeds = {
            "Wire": server.add_file("/wire.xml", rss([
                (TRAIN_TITLE, TRAIN_SUMMARY, "https://wire.example/a/train", t)])),
            "Herald": server.add_file("/herald.xml", rss([
                (TRAIN_TITLE, TRAIN_SUMMARY, "https://herald.example/world/kim-train",
                 t + timedelta(minutes=20))])),
            "Courier": server.add_file("/courier.xml", rss([
                (TRAIN_TITLE, TRAIN_SUMMARY + " (Wire)", "https://courier.example/n/123",
                 t + timedelta(minutes=35)),
                (PLANT_TITLE, PLANT_SUMMARY, "https://courier.example/n/130",
                 t + timedelta(hours=1))])),
        }
        path = config(tmp_path, feeds)
        assert main(["once", "--config", str(path)]) == 0
        parents = slack.top_level("C0ALERTS1")
        assert len(parents) == 2, [m.text for m in parents]  # the train, the factory
        train = next(m for m in parents if "train" in (m.text or "").lower())
        plant = next(m for m in parents if "Komsomolsk" in (m.text or ""))
        replies = slack.replies_to(train.ts)
        # the two copies arrived in one drain: one folded reply naming both outlets
        assert len(replies) == 1 and len(payload_ids(replies[0])) == 2
        reply_text = json.dumps(replies[0].blocks)
        parent_text = json.dumps(train.blocks)
        for outlet in ("Wire", "Herald", "Courier"):  # the parent's outlet, the others below
            assert (outlet in reply_text) != (f"*Outlet*\\n{outlet}" in parent_text), outlet
        assert "<https://" in reply_text  # links survive (escaping feed text only)
        assert slack.replies_to(plant.ts) == []
        # the parent was edited to show its outlets
        assert train.edits == 1 and "Reported by 3 outlet" in json.dumps(train.blocks)

        # Later, after a restart, a fourth outlet's rewrite joins the same thread.
        feeds["Gazette"] = server.add_file("/gazette.xml", rss([
            (REWRITE_TITLE, REWRITE_SUMMARY, "https://gazette.example/k/9",
             t + timedelta(hours=3))]))
        path = config(tmp_path, feeds)
        assert main(["once", "--config", str(path)]) == 0
    assert len(slack.top_level("C0ALERTS1")) == 2
    replies = slack.replies_to(train.ts)
    assert len(replies) == 2 and "Gazette" in json.dumps(replies[1].blocks)
    assert train.edits == 2 and "Reported by 4 outlet" in json.dumps(train.blocks)
    every = [i for m in slack.posted() for i in payload_ids(m)]
    assert len(every) == len(set(every)) == 5  # each report once
    store = SqliteStore(tmp_path / "state.db")
    try:
        [story] = [s for s in store.recent_stories(since=NOW - timedelta(days=1))
                   if s.member_count > 1]
        assert (story.member_count, story.source_count, story.replies) == (4, 4, 3)
    finally:
        store.close()


# --- store and outbox, without the network ---------------------------------------------------
RULES = alert_rules("slack:C0ALERTS1", max_article_age_hours=0)


def article(i: int, *, source: str, published: datetime) -> Article:
    return Article(id=f"{i:032x}", feed_name=source, source=source,
                   url=f"https://{source.lower()}.example/{i}", title=f"{TRAIN_TITLE} ({i})",
                   summary=TRAIN_SUMMARY, published_at=published, first_seen_at=published)


def verdict(a: Article, match: bool) -> Verdict:
    return Verdict(a.id, 0.9 if match else 0.1, match, 0.5, "terms", "m1", "diplomacy/summit")


def test_parent_goes_to_the_first_match_and_echoes_of_matches_become_replies(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "m.db")
    store.migrate()
    t = NOW
    first = article(1, source="Quiet", published=t)           # does not match: no alert
    second = article(2, source="Wire", published=t + timedelta(minutes=5))   # parent
    third = article(3, source="Herald", published=t + timedelta(minutes=9))  # reply
    echo = article(4, source="Courier", published=t + timedelta(minutes=12))  # copies 2
    story = own_story_id(first.id)
    assert story == new_story_id(first.id)  # the engine and the store agree on ids
    rows = []
    for a, match, near in [(first, False, None), (second, True, None), (third, True, None),
                           (echo, False, second.id)]:
        v = verdict(a, match)
        alert = decide(a, v, RULES, now=t).alert
        echo_alert = None if match else decide(a, verdict(a, True), RULES, now=t).alert
        rows.append((a, v, alert, StoryLink(story, a is first, near, echo_alert)))
    assert store.record_articles(rows) == [True] * 4
    claimed = store.claim_due_alerts(now=t + timedelta(hours=1), limit=10, lease_seconds=60)
    # only the parent is due: replies wait for its ts
    assert [(a.article_id, a.kind) for a in claimed] == [(second.id, "parent")]
    store.close()


async def test_kill_between_parent_and_replies_gives_one_parent_and_each_reply_once(
    tmp_path: Path,
) -> None:
    db = tmp_path / "m.db"
    store = SqliteStore(db)
    store.migrate()
    t = NOW
    story = own_story_id(f"{1:032x}")
    rows = []
    for i, source in enumerate(["Wire", "Herald", "Courier", "Gazette"], start=1):
        a = article(i, source=source, published=t + timedelta(minutes=i))
        v = verdict(a, True)
        rows.append((a, v, decide(a, v, RULES, now=t).alert, StoryLink(story, i == 1)))
    store.record_articles(rows)
    with FakeSlack() as slack:
        deliverer = SlackDeliverer(DEFAULT_TOKEN, "C0ALERTS1", base_url=slack.base_url)
        # Worker A posts the parent, then dies before recording it (kill -9).
        start = t + timedelta(minutes=10)
        [parent] = store.claim_due_alerts(now=start, limit=10, lease_seconds=5)
        await deliverer.deliver(parent)
        # Worker B after the lease: finds the parent, records it, posts the replies; the
        # first reply's answer is lost (posted, but B cannot know), so it is looked up.
        slack.drop_after_post_next()
        clock = [start + timedelta(seconds=10)]
        log = __import__("logging").getLogger("test.threads")
        for _ in range(6):
            await drain_outbox(store, deliverer, now=lambda: clock[0], logger=log,
                               rng=random.Random(1), options=drain_options(lease_seconds=5))
            clock[0] += timedelta(seconds=70)
        assert store.outbox_counts() == {"pending": 0, "in_flight": 0, "sent": 4, "failed": 0}
        [top] = slack.top_level()
        ids = [i for m in slack.replies_to(top.ts) for i in payload_ids(m)]
        assert sorted(ids) == sorted(r[2].id for r in rows[1:])  # each reply exactly once
        assert slack.calls_to("conversations.replies"), "the lost reply was looked up"
        assert top.edits >= 1
    store.close()


async def test_console_prints_the_parent_once_and_also_reported_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    store = SqliteStore(tmp_path / "m.db")
    store.migrate()
    story = own_story_id(f"{1:032x}")
    rules = alert_rules(max_article_age_hours=0)
    rows = []
    for i, source in enumerate(["Wire", "Herald", "Courier"], start=1):
        a = article(i, source=source, published=NOW + timedelta(minutes=i))
        v = verdict(a, True)
        rows.append((a, v, decide(a, v, rules, now=NOW).alert, StoryLink(story, i == 1)))
    store.record_articles(rows)
    log = __import__("logging").getLogger("test.threads")
    await drain_outbox(store, ConsoleDeliverer(), now=lambda: NOW + timedelta(hours=1),
                       logger=log, options=drain_options())
    out = capsys.readouterr().out
    assert out.count("=== DPRK–Russia alert") == 1
    assert "↳ also reported by Herald" in out and "↳ also reported by Courier" in out
    store.close()
