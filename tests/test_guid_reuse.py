"""Feeds that reuse one guid for different stories (issue 0, item 6).

A guid-only id made every story after the first a "duplicate", silently, for ever.
Now a guid with a different canonical link is a different item, while an updated
story (same guid, same link) and tracking-parameter variants of one link stay one.
Driven through ``run_feed`` against a real local feed server and real SQLite.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from datetime import UTC, datetime, timedelta

import pytest

from monitor.classify import ArticleClassifier
from monitor.http import FetchLimits, build_client
from monitor.models import Article, Feed, ParsedFeed, Verdict
from monitor.parse import parse_feed
from monitor.pipeline import FeedReport, PipelineDeps, run_feed
from monitor.store.sqlite import SqliteStore
from tests.support.defaults import alert_rules, lifecycle
from tests.support.feed_server import FeedServer

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
LIMITS = FetchLimits(user_agent="guid-test/1 (+https://example.invalid)",
                     unconditional_probability=0.0)
STORIES = [
    ("Pyongyang and Moscow open a new rail link", "https://desk.example/2025/rail-link"),
    ("Russian delegation visits Wonsan resort", "https://desk.example/2025/wonsan"),
    ("Grain shipment reaches Rajin port", "https://desk.example/2025/rajin-grain"),
]


def rss(items: list[tuple[str, str, str]]) -> bytes:
    """An RSS 2.0 document of (guid, title, link) items."""
    body = "".join(
        f"<item><guid isPermaLink=\"false\">{guid}</guid><title>{title}</title>"
        f"<link>{link.replace('&', '&amp;')}</link><description>{title}.</description>"
        f"<pubDate>Sun, 01 Jun 2025 0{i}:00:00 GMT</pubDate></item>"
        for i, (guid, title, link) in enumerate(items)
    )
    return (f"<?xml version=\"1.0\" encoding=\"utf-8\"?><rss version=\"2.0\"><channel>"
            f"<title>Desk</title><link>https://desk.example/</link>{body}</channel></rss>"
            ).encode()


async def _parse_in_thread(feed_name: str, body: bytes, **kwargs: object) -> ParsedFeed:
    return await asyncio.to_thread(parse_feed, feed_name, body, **kwargs)  # type: ignore[arg-type]


def poll(feed: Feed, store: SqliteStore, classifier: ArticleClassifier, at: datetime
         ) -> FeedReport:
    async def run() -> FeedReport:
        async with build_client(LIMITS) as client:
            deps = PipelineDeps(
                client=client, store=store, classify=classifier.classify_in_thread,
                fetch_limits=LIMITS, max_items=100, now=lambda: at, parse=_parse_in_thread,
                rules=alert_rules(max_article_age_hours=0), lifecycle=lifecycle(),
                rng=random.Random(1),
            )
            return await run_feed(feed, deps)
    return asyncio.run(run())


def stored(store: SqliteStore, feed: str) -> list[tuple[str, str]]:
    """(url, title) of every stored article of ``feed``, through the store's own reads."""
    found = [store.get_article(row.article_id) for row in store.recent_articles(limit=100)]
    return sorted((a.url, a.title) for a, _verdict in filter(None, found) if a.feed_name == feed)


def test_one_guid_for_three_stories_gives_three_articles(
    store: SqliteStore, classifier: ArticleClassifier, caplog: pytest.LogCaptureFixture
) -> None:
    with FeedServer() as server, caplog.at_level(logging.WARNING, logger="monitor.dedupe"):
        feed = Feed("Reuser", server.add_file(
            "/feed.xml", rss([("item", title, link) for title, link in STORIES])))
        first = poll(feed, store, classifier, T0)
        assert first.status == "ok" and (first.entries, first.new_items) == (3, 3)
        # the same document again (no validators, so a full 200): nothing new, no new log line
        server.add_file("/feed.xml", rss([("item", title, link) for title, link in STORIES])
                        + b"\n")
        again = poll(feed, store, classifier, T0 + timedelta(hours=1))
        assert again.status == "ok" and again.new_items == 0
    assert stored(store, "Reuser") == sorted((link, title) for title, link in STORIES)
    lines = [r.getMessage() for r in caplog.records if r.name == "monitor.dedupe"]
    assert len(lines) == 1  # once per feed, not per item or per poll
    assert "'Reuser'" in lines[0] and "'item'" in lines[0] and "3 different links" in lines[0]


def test_one_guid_for_a_different_story_on_every_poll(
    store: SqliteStore, classifier: ArticleClassifier
) -> None:
    """A "latest story" feed: one item at a time, always the same guid."""
    with FeedServer() as server:
        url = ""
        for hour, (title, link) in enumerate(STORIES):
            url = server.add_file("/latest.xml", rss([("latest", title, link)]))
            report = poll(Feed("Latest", url), store, classifier, T0 + timedelta(hours=hour))
            assert report.status == "ok" and report.new_items == 1
    assert len(stored(store, "Latest")) == 3


def test_an_updated_story_stays_one_article(
    store: SqliteStore, classifier: ArticleClassifier
) -> None:
    title, link = STORIES[0]
    with FeedServer() as server:
        url = server.add_file("/feed.xml", rss([("rail-1", title, link)]))
        assert poll(Feed("Desk", url), store, classifier, T0).new_items == 1
        server.add_file("/feed.xml", rss([("rail-1", title + " (updated)", link)]))
        assert poll(Feed("Desk", url), store, classifier, T0 + timedelta(hours=1)).new_items == 0
    assert stored(store, "Desk") == [(link, title)]


def test_tracking_parameter_variants_of_one_link_stay_one_article(
    store: SqliteStore, classifier: ArticleClassifier
) -> None:
    title, link = STORIES[1]
    variants = [f"{link}?utm_source=rss&utm_medium=feed", f"{link}/?fbclid=abc", link]
    with FeedServer() as server:
        url = server.add_file("/feed.xml", rss([("wonsan", title, v) for v in variants]))
        assert poll(Feed("Desk", url), store, classifier, T0).new_items == 1
        server.add_file("/feed.xml", rss([("wonsan", title, f"{link}?utm_campaign=x")]))
        assert poll(Feed("Desk", url), store, classifier, T0 + timedelta(hours=1)).new_items == 0
    assert stored(store, "Desk") == [(link, title)]


def test_articles_stored_under_the_old_guid_only_id_are_not_new_again(
    store: SqliteStore, classifier: ArticleClassifier
) -> None:
    """An upgrade changes the id of a non-permalink guid with a link; the store's URL
    check still knows the story, so nothing is alerted twice."""
    title, link = STORIES[2]
    old_id = hashlib.sha256(b"feed:Desk\nguid:rajin").hexdigest()[:32]
    article = Article(id=old_id, feed_name="Desk", source="Desk", url=link, title=title,
                      summary=f"{title}.", published_at=T0, first_seen_at=T0, guid="rajin")
    store.record_articles([(article, Verdict(old_id, 0.0, False, 0.5, "", "old"), None)])
    with FeedServer() as server:
        url = server.add_file("/feed.xml", rss([("rajin", title, link)]))
        report = poll(Feed("Desk", url), store, classifier, T0 + timedelta(days=1))
    assert report.status == "ok" and report.new_items == 0 and report.alerts == 0
    assert stored(store, "Desk") == [(link, title)]
