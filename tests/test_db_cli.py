"""``db upgrade`` and ``db migrate-from``: the real CLI against real databases.

The SQLite state to copy is made by the SQLite store itself (feeds, articles with
verdicts, a story with a sent parent and a waiting reply, labels with their
history, mutes, a posted digest); the copy is then read back through the
PostgreSQL store, and a second run must copy nothing.
"""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.cli import EXIT_CONFIG, EXIT_OK, main
from monitor.models import Alert, Article, FeedState, Receipt, StoryLink, Verdict
from monitor.store import open_store
from monitor.store.sqlite import MIGRATIONS, SqliteStore
from tests.support.configs import write_config
from tests.support.pg import pg_url  # noqa: F401 - the fixture

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def _article(n: int, source: str) -> Article:
    return Article(id=f"a{n}", feed_name="F", source=source, url=f"https://news.example/{n}",
                   title=f"Shell shipment {n} crosses the Tumen bridge",
                   summary="Rail cars loaded with artillery shells were seen at Tumangang.",
                   published_at=T0 + timedelta(minutes=n), first_seen_at=T0 + timedelta(minutes=n),
                   guid=f"g{n}")


def _verdict(a: Article, match: bool = True) -> Verdict:
    return Verdict(a.id, 0.93 if match else 0.2, match, 0.5, "shells by rail", "m7",
                   "arms/military", ("shells", "Tumen"))


def _alert(a: Article) -> Alert:
    return Alert(id=f"al-{a.id}", article_id=a.id, destination="slack:#dprk-ru", title=a.title,
                 url=a.url, source=a.source, published_at=a.published_at, score=0.93,
                 reason="shells by rail", snippet="Rail cars…", event_type="arms/military")


def _old_state(path: Path) -> None:
    """A used SQLite database, as a daemon leaves it."""
    store = SqliteStore(path)
    store.migrate()
    one, two, other = _article(1, "Wire A"), _article(2, "Daily B"), _article(3, "Wire A")
    store.record_articles([(one, _verdict(one), _alert(one), StoryLink("s-shells", True))])
    store.record_articles([(two, _verdict(two), _alert(two), StoryLink("s-shells", False)),
                           (other, _verdict(other, False), None)])
    store.claim_due_alerts(now=T0 + timedelta(hours=1), limit=5, lease_seconds=60)
    store.mark_alert_sent(Receipt("al-a1", "slack:#dprk-ru", "1700.01", T0 + timedelta(hours=1),
                                  {"channel": "C42"}))
    store.add_label("a1", 0, source="slack", at=T0 + timedelta(hours=2), user_id="U1")
    store.add_label("a1", 1, source="slack", at=T0 + timedelta(hours=3), user_id="U2")
    store.add_mute("outlet", "Daily B", created_by="U1", at=T0, expires_at=T0 + timedelta(days=9))
    lifted = store.add_mute("story", "s-shells", created_by="U2", at=T0,
                            expires_at=T0 + timedelta(days=1))
    store.remove_mute(lifted.id, at=T0 + timedelta(hours=1))
    store.mark_digest_posted("digest-2025-03-01", destination="slack:#dprk-ru",
                             message_id="1700.09", at=T0 + timedelta(hours=20))
    store.save_feed_state(FeedState(name="F", url="https://f.example/rss", etag='"v1"',
                                    polls=12, next_poll_at=T0 + timedelta(minutes=15),
                                    arrivals=(T0, T0 + timedelta(minutes=3)), ttl_seconds=900.0))
    store.claim_feeds(["F"], owner="old-daemon", now=T0, lease_seconds=60, limit=1)
    store.close()


def _run(config: Path, *args: str) -> int:
    return main([*args, "--config", str(config)])


def test_db_upgrade_on_sqlite_applies_migrations_and_prints_the_version(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, {})
    assert _run(config, "db", "upgrade") == EXIT_OK
    assert f"schema version {len(MIGRATIONS)}" in capsys.readouterr().out
    assert (tmp_path / "state.db").exists()


@pytest.mark.postgres
def test_db_upgrade_on_postgres_twice(tmp_path: Path, pg_url: str,  # noqa: F811
                                      monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MONITOR_DATABASE_URL", pg_url)
    config = write_config(tmp_path, {})
    for _ in range(2):
        assert _run(config, "db", "upgrade") == EXIT_OK
        assert f"schema version {len(MIGRATIONS)}" in capsys.readouterr().out
    assert not (tmp_path / "state.db").exists()


@pytest.mark.postgres
def test_db_upgrade_brings_an_older_postgres_schema_forward(
        tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    """A database migrated by an older release (schema 8, before search and leases)."""
    import psycopg
    from psycopg import sql

    from monitor.store.pg_migrations import MIGRATIONS as PG_MIGRATIONS
    from tests.support.pg import server_url

    schema = pg_url.rsplit("schema=", 1)[1]
    with psycopg.connect(server_url(pg_url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for version, script in enumerate(PG_MIGRATIONS[:8], start=1):
            conn.execute(script)
            conn.execute("INSERT INTO schema_version VALUES (%s)", (version,))
        conn.execute("INSERT INTO articles (id, feed_name, source, url, title, summary, "
                     "published_at, first_seen_at, story_id) VALUES ('a1', 'F', 'Wire', "
                     "'https://x/1', 'Shoigu in Pyongyang', 'Talks.', now(), now(), 's-a1')")
    monkeypatch.setenv("MONITOR_DATABASE_URL", pg_url)
    config = write_config(tmp_path, {})
    assert _run(config, "db", "upgrade") == EXIT_OK
    assert "schema version 10" in capsys.readouterr().out
    pg = open_store(pg_url)
    try:
        assert [h.article_id for h in pg.search_articles("shoigu")] == ["a1"]  # backfilled
        assert pg.claim_feeds(["F"], owner="d", now=T0, lease_seconds=5, limit=1) == ["F"]
    finally:
        pg.close()


@pytest.mark.postgres
def test_migrate_from_copies_everything_once(tmp_path: Path, pg_url: str,  # noqa: F811
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    old = tmp_path / "old.db"
    _old_state(old)
    before = hashlib.sha256(old.read_bytes()).hexdigest()
    source = SqliteStore(old)
    expected = {
        "articles": [source.get_article(f"a{n}") for n in (1, 2, 3)],
        "outbox": source.outbox_counts(),
        "history": source.label_history("a1"),
        "mutes": source.list_mutes(),
        "feed": source.get_feed_state("F"),
        "stories": source.recent_stories(since=T0 - timedelta(days=1)),
        "labelled": source.labelled_articles(),
    }
    source.close()
    monkeypatch.setenv("MONITOR_DATABASE_URL", pg_url)
    config = write_config(tmp_path, {})

    assert _run(config, "db", "migrate-from", f"sqlite:///{old}") == EXIT_OK
    out = capsys.readouterr().out
    for table, count in (("feeds", 1), ("articles", 3), ("verdicts", 3), ("stories", 2),
                         ("alerts", 2), ("labels", 1), ("label_events", 2), ("mutes", 2),
                         ("digests", 1)):
        assert f"{table:<13} {count:>8} copied" in out, (table, out)
    assert hashlib.sha256(old.read_bytes()).hexdigest() == before  # the source is untouched

    assert _run(config, "db", "migrate-from", f"sqlite:///{old}") == EXIT_OK
    again = capsys.readouterr().out
    assert "done: 0 row(s) copied" in again and "articles             0 copied" in again

    pg = open_store(pg_url)
    try:
        assert [pg.get_article(f"a{n}") for n in (1, 2, 3)] == expected["articles"]
        assert pg.outbox_counts() == expected["outbox"] == {
            "pending": 1, "in_flight": 0, "sent": 1, "failed": 0}
        assert pg.label_history("a1") == expected["history"]
        assert pg.list_mutes() == expected["mutes"]
        assert pg.labelled_articles() == expected["labelled"]
        assert pg.recent_stories(since=T0 - timedelta(days=1)) == expected["stories"]
        assert pg.get_feed_state("F") == expected["feed"]
        assert pg.digest_posted("digest-2025-03-01") == T0 + timedelta(hours=20)
        # the old daemon's lease is not carried over: any daemon may poll the feed
        assert pg.claim_feeds(["F"], owner="new", now=T0 + timedelta(hours=1),
                              lease_seconds=60, limit=1) == ["F"]
        # the copied waiting reply threads under the copied parent
        reply = pg.claim_due_alerts(now=T0 + timedelta(hours=2), limit=5, lease_seconds=60)
        assert [(a.id, a.kind, a.thread.message_id) for a in reply] == [
            ("al-a2", "reply", "1700.01")]
        # search works on copied rows (PostgreSQL indexes them itself)
        assert {h.article_id for h in pg.search_articles("tumen shells")} == {"a1", "a2", "a3"}
        # new rows get ids past the copied ones
        fresh = pg.add_mute("outlet", "Wire A", created_by="U3", at=T0,
                            expires_at=T0 + timedelta(days=1))
        assert fresh.id > max(m.id for m in expected["mutes"])
        pg.add_label("a2", 1, source="cli", at=T0)
    finally:
        pg.close()


@pytest.mark.postgres
def test_migrate_from_an_older_schema(tmp_path: Path, pg_url: str,  # noqa: F811
                                      monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A database last written by an older release (schema 6) is copied too, and stays
    at its version: the snapshot is upgraded, never the original."""
    old = tmp_path / "v6.db"
    conn = sqlite3.connect(old)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for version, script in enumerate(MIGRATIONS[:6], start=1):
        conn.executescript(script)
        conn.execute("INSERT INTO schema_version VALUES (?)", (version,))
    conn.execute("INSERT INTO articles (id, feed_name, source, url, title, summary, "
                 "published_at, first_seen_at, story_id) VALUES ('a1', 'F', 'Wire', "
                 "'https://x/1', 'Kim visits Vostochny', 'Cosmodrome tour.', ?, ?, 's-a1')",
                 (T0.isoformat(), T0.isoformat()))
    conn.execute("INSERT INTO verdicts VALUES ('a1', 0.8, 1, 0.5, 'r', 'm', NULL, '[]')")
    conn.commit()
    conn.close()
    monkeypatch.setenv("MONITOR_DATABASE_URL", pg_url)
    config = write_config(tmp_path, {})
    assert _run(config, "db", "migrate-from", f"sqlite:///{old}") == EXIT_OK
    assert "articles             1 copied" in capsys.readouterr().out
    check = sqlite3.connect(old)
    assert check.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == 6
    check.close()
    pg = open_store(pg_url)
    try:
        found = pg.get_article("a1")
        assert found is not None and found[0].title == "Kim visits Vostochny"
    finally:
        pg.close()


def test_migrate_from_needs_a_postgres_target_and_an_sqlite_source(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, {})
    assert _run(config, "db", "migrate-from", f"sqlite:///{tmp_path}/x.db") == EXIT_CONFIG
    assert "postgresql://" in capsys.readouterr().err
    assert _run(config, "db", "migrate-from") == EXIT_CONFIG
    assert "sqlite:///" in capsys.readouterr().err
