"""Full-text search (migration 9, FTS5) on a real SQLite file, the search form, the
[http] settings, the page helpers' escaping, and readiness when things are wrong."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from monitor.errors import SettingsError
from monitor.models import Article, Verdict
from monitor.settings import load_settings
from monitor.store.base import HIT_END, HIT_START
from monitor.store.sqlite import MIGRATIONS, SqliteStore
from monitor.store.sqlite_web import fts_query
from monitor.web import views
from monitor.web.health import Health, Heartbeat
from monitor.web.metrics import Metrics
from monitor.web.search import SearchForm
from tests.support.configs import write_config

T0 = datetime(2024, 6, 19, 9, 0, tzinfo=UTC)


def article(i: int, title: str, summary: str, *, source: str = "Wire",
            days: int = 0) -> Article:
    when = T0 + timedelta(days=days, minutes=i)
    return Article(f"{i:032x}", source, source, f"https://{source.lower()}.example/{i}", title,
                   summary, when, when)


def verdict(a: Article, match: bool) -> Verdict:
    return Verdict(a.id, 0.9 if match else 0.05, match, 0.5, "terms", "m1",
                   "arms/military" if match else None)


def record(store: SqliteStore, *pairs: tuple[Article, bool]) -> None:
    store.record_articles([(a, verdict(a, m), None) for a, m in pairs])


CORPUS = [
    (article(1, "North Korea ships artillery shells to Russia",
             "Trains crossed the Tumen River bridge.", days=0), True),
    (article(2, "Kim and Putin sign a defence treaty", "Signed in Pyongyang.",
             source="Herald", days=1), True),
    (article(3, "Rice harvest in Thailand", "Artillery of rain clouds, a poet said.",
             days=2), False),
    (article(4, "Séoul says shells reached Russia", "By rail via Rajin.", source="Herald",
             days=3), True),
]


def test_words_are_quoted_so_no_input_is_query_syntax(store: SqliteStore) -> None:
    record(store, *CORPUS)
    assert fts_query('artillery "NEAR(" title:x') == '"artillery" """NEAR(""" "title:x"'
    assert fts_query("shell*") == '"shell"*'
    assert fts_query('" * ( ) -') is None
    for query in ('"', "NEAR(", "NEAR(a b", "title:", "a AND", "OR", "NOT x", "^x", "'",
                  "a:b:c", "\\", "{x}", "x*y", "*"):
        store.search_articles(query)  # never an SQLite error
    hits = store.search_articles("NEAR(artillery")
    assert not hits  # "near(artillery" is one quoted phrase, not a NEAR group


def test_search_ranks_title_hits_filters_and_pages(store: SqliteStore) -> None:
    record(store, *CORPUS)
    hits = store.search_articles("artillery")
    assert hits[0].title == "North Korea ships artillery shells to Russia"
    assert {h.article_id for h in hits} == {CORPUS[0][0].id, CORPUS[2][0].id}
    assert [h.title for h in store.search_articles("artillery", matches_only=True)] == [
        "North Korea ships artillery shells to Russia"]
    rail = store.search_articles("rail")
    assert HIT_START + "rail" + HIT_END in rail[0].snippet
    assert [h.source for h in store.search_articles("shells", outlet="Herald")] == ["Herald"]
    assert store.search_articles("seoul")  # diacritics folded: Séoul
    assert store.search_articles("shell*") and store.search_articles("SHELLS")
    dated = store.search_articles("", since=T0 + timedelta(days=1),
                                  until=T0 + timedelta(days=3))
    assert [h.article_id for h in dated] == [CORPUS[2][0].id, CORPUS[1][0].id]
    newest = store.search_articles("", limit=2)
    assert [h.article_id for h in newest] == [CORPUS[3][0].id, CORPUS[2][0].id]
    assert [h.article_id for h in store.search_articles("", limit=2, offset=2)] == [
        CORPUS[1][0].id, CORPUS[0][0].id]
    assert store.search_articles("", limit=2, offset=4) == []


def test_migration_9_backfills_existing_articles(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for version, script in enumerate(MIGRATIONS[:8], start=1):
        for statement in filter(str.strip, script.split(";")):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version VALUES (?)", (version,))
    conn.execute("INSERT INTO articles (id, feed_name, source, url, title, summary, "
                 "published_at, first_seen_at, story_id) VALUES ('a1', 'Wire', 'Wire', "
                 "'https://w.example/1', 'Old shells story', 'Before the index existed', ?, ?,"
                 " 's-a1')", (T0.isoformat(), T0.isoformat()))
    conn.commit()
    conn.close()
    store = SqliteStore(path)
    try:
        store.migrate()
        assert [h.article_id for h in store.search_articles("shells")] == ["a1"]
        record(store, CORPUS[0])  # the triggers index new rows
        assert len(store.search_articles("shells")) == 2
        with store._tx() as tx:  # an edit and a delete stay in sync too
            tx.execute("UPDATE articles SET title = 'Renamed' WHERE id = 'a1'")
        assert [h.title for h in store.search_articles("renamed")] == ["Renamed"]
        assert len(store.search_articles("shells")) == 1
        with store._tx() as tx:
            tx.execute("DELETE FROM articles WHERE id = 'a1'")
        assert store.search_articles("renamed") == []
        store.migrate()  # idempotent
    finally:
        store.close()


def test_search_form_parses_untrusted_parameters() -> None:
    form = SearchForm.parse({"q": "  shells  ", "since": "2024-06-01", "until": "nonsense",
                             "outlet": "Wire", "matches": "1", "page": "-3"})
    assert (form.words, form.since, form.until, form.page) == ("shells", date(2024, 6, 1),
                                                               None, 1)
    assert form.matches_only and form.problems and "nonsense" in form.problems[0]
    assert SearchForm.parse({"page": "x"}).page == 1
    form = SearchForm.parse({"q": "a&b", "until": "2024-06-19", "page": "2"})
    assert form.until_at == datetime(2024, 6, 20, tzinfo=UTC) and form.offset == 20
    assert form.page_url(3) == "/search?q=a%26b&until=2024-06-19&page=3"


def test_pages_escape_feed_text_and_link_only_http() -> None:
    assert views.href("javascript:alert(1)", "x") == "x"
    assert views.href(" JavaScript:alert(1)", "<b>") == "&lt;b&gt;"
    assert views.href('https://e.example/?a="b"', "t") == (
        '<a href="https://e.example/?a=&quot;b&quot;" rel="noopener noreferrer">t</a>')
    snippet = views._snippet(f"<img src=x> {HIT_START}shells{HIT_END}")
    assert snippet == "&lt;img src=x&gt; <mark>shells</mark>"


def test_http_settings(tmp_path: Path) -> None:
    path = write_config(tmp_path, {})
    assert load_settings(path, env={}).http.address == ("127.0.0.1", 8787)
    env = {"MONITOR_HTTP_LISTEN": "0.0.0.0:9100"}
    assert load_settings(path, env=env).http.address == ("0.0.0.0", 9100)
    assert load_settings(path, env={"MONITOR_HTTP_LISTEN": "off"}).http.address is None
    assert load_settings(path, env={"MONITOR_HTTP_LISTEN": "[::1]:0"}).http.address == (
        "::1", 0)
    off = write_config(tmp_path, {}, sections='[http]\nlisten = ""\n')
    assert load_settings(off, env={}).http.address is None
    for bad in ("8787", "localhost", "host:99999", ":80", "a b:1"):
        with pytest.raises(SettingsError, match=r"http\.listen"):
            load_settings(path, env={"MONITOR_HTTP_LISTEN": bad})


async def test_readiness_names_what_is_wrong(store: SqliteStore, tmp_path: Path) -> None:
    metrics = Metrics()
    health = Health(heartbeat=Heartbeat(), metrics=metrics, store=store,
                    scheduler_running=lambda: False, model_version=None, drain_every=1,
                    drain_grace=1, ready_poll_age=60, polls_expected=True)
    checks = {c.name: c for c in await health.readiness()}
    assert checks["store"].ok and not checks["model"].ok
    assert not checks["polls"].ok and "no successful poll yet" in checks["polls"].detail
    live = {c.name: c for c in health.liveness()}
    assert not live["scheduler"].ok and not live["event_loop"].ok  # heartbeat never started
    broken = SqliteStore(tmp_path / "other.db")
    broken.close()
    health.store = broken
    checks = {c.name: c for c in await health.readiness()}
    assert not checks["store"].ok
    # two daemons' metrics in one process: separate registries
    assert Metrics().registry is not metrics.registry
