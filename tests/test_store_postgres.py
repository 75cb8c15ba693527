"""What only PostgreSQL has to get right: several stores (as several daemons) on one
database at the same moment, and connections that the server drops.

Each "daemon" here is its own ``PostgresStore`` with its own pool, driven from its
own threads, so claims really race inside the server; the dropped connections are
real too (``pg_terminate_backend`` of the store's sessions).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from monitor.errors import StoreError
from monitor.models import Alert, Article, Receipt, StoryLink, Verdict
from monitor.store import open_store
from monitor.store.postgres import PostgresStore
from tests.support.pg import pg_url, server_url  # noqa: F401 - the fixture

pytestmark = pytest.mark.postgres

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def _article(n: int, at: datetime = T0) -> Article:
    return Article(id=f"a{n}", feed_name="F", source=f"Outlet {n % 3}",
                   url=f"https://news.example/{n}", title=f"Report {n}", summary="Body",
                   published_at=at + timedelta(seconds=n), first_seen_at=at)


def _verdict(a: Article) -> Verdict:
    return Verdict(a.id, 0.9, True, 0.5, "why", "m1", "arms/military")


def _alert(a: Article) -> Alert:
    return Alert(id=f"al-{a.id}", article_id=a.id, destination="console", title=a.title,
                 url=a.url, source=a.source, published_at=a.published_at, score=0.9,
                 reason="why", snippet="s")


@pytest.fixture
def stores(pg_url: str) -> Iterator[list[PostgresStore]]:  # noqa: F811
    """Three stores on one schema, as three daemons would have."""
    opened = [open_store(pg_url) for _ in range(3)]
    yield opened  # type: ignore[misc]
    for store in opened:
        store.close()


def _race(workers: list[Callable[[], None]]) -> None:
    """Start every worker at once (a barrier), wait for all, re-raise the first error."""
    barrier = threading.Barrier(len(workers))

    def run(work: Callable[[], None]) -> None:
        barrier.wait()
        work()

    with ThreadPoolExecutor(len(workers)) as pool:
        for future in [pool.submit(run, w) for w in workers]:
            future.result()


def test_two_drainers_never_claim_one_alert_twice(stores: list[PostgresStore]) -> None:
    articles = [_article(n) for n in range(120)]
    stores[0].record_articles([(a, _verdict(a), _alert(a)) for a in articles])
    claimed: list[list[str]] = [[], [], [], []]

    def drainer(index: int) -> Callable[[], None]:
        store = stores[index % 2]

        def drain() -> None:
            while batch := store.claim_due_alerts(now=T0 + timedelta(hours=1), limit=7,
                                                  lease_seconds=300):
                for alert in batch:
                    claimed[index].append(alert.id)
                    store.mark_alert_sent(Receipt(alert.id, "console", f"ts-{alert.id}", T0))
        return drain

    _race([drainer(i) for i in range(4)])  # two threads on each of two stores
    everything = [alert_id for part in claimed for alert_id in part]
    assert Counter(everything).most_common(1)[0][1] == 1  # nobody got an alert twice
    assert len(everything) == 120
    assert stores[1].outbox_counts() == {"pending": 0, "in_flight": 0, "sent": 120, "failed": 0}
    assert sum(1 for part in claimed if part) >= 2  # the work really was shared


def test_three_daemons_claim_disjoint_feeds_and_all_of_them(
        stores: list[PostgresStore]) -> None:
    names = [f"feed-{i:03d}" for i in range(300)]
    held: dict[str, list[str]] = {"d0": [], "d1": [], "d2": []}

    def daemon(index: int) -> Callable[[], None]:
        owner = f"d{index}"

        def claim() -> None:
            # as a daemon does: it offers the feeds it is not polling already
            while got := stores[index].claim_feeds(
                    [n for n in names if n not in held[owner]], owner=owner, now=T0,
                    lease_seconds=600, limit=10):
                held[owner].extend(got)
        return claim

    _race([daemon(i) for i in range(3)])
    everything = [name for part in held.values() for name in part]
    assert sorted(everything) == names  # every feed once, none twice
    assert all(held.values())


def test_send_pace_is_shared_between_daemons(stores: list[PostgresStore]) -> None:
    waits: list[float] = []
    lock = threading.Lock()

    def sender(store: PostgresStore) -> Callable[[], None]:
        def send() -> None:
            for _ in range(10):
                wait = store.take_send_slot("slack:#c", now=1_000.0, interval=1.0, burst=1)
                with lock:
                    waits.append(wait)
        return send

    _race([sender(s) for s in stores])
    # 30 sends at the same instant across three stores: 30 distinct one-second slots
    assert sorted(waits) == [float(i) for i in range(30)]


def test_two_reports_of_one_story_at_once_make_one_parent(
        stores: list[PostgresStore]) -> None:
    """Without the story lock, the unique parent index decides: one parent, the other a
    reply, and neither record fails."""
    for round_ in range(10):
        story = f"s-race-{round_}"
        a, b = _article(1000 + 2 * round_), _article(1001 + 2 * round_)
        results: list[list[bool]] = []

        def record(store: PostgresStore, art: Article, story_id: str = story,
                   out: list[list[bool]] = results) -> Callable[[], None]:
            return lambda: out.append(store.record_articles(
                [(art, _verdict(art), _alert(art), StoryLink(story_id, True))]))

        _race([record(stores[0], a), record(stores[1], b)])
        assert results == [[True], [True]]
    board = stores[2].story_board(since=T0 - timedelta(days=1), limit=50)
    kinds = {entry.story_id: sorted(x.kind for x in entry.alerts) for entry in board}
    assert len(kinds) == 10 and set(map(tuple, kinds.values())) == {("parent", "reply")}
    members = {entry.story_id: entry.member_count for entry in board}
    assert set(members.values()) == {2}


def test_story_lock_excludes_other_daemons(stores: list[PostgresStore]) -> None:
    inside = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def first() -> None:
        with stores[0].story_lock():
            order.append("first in")
            inside.set()
            release.wait(5)
            order.append("first out")

    def second() -> None:
        inside.wait(5)
        with stores[1].story_lock():
            order.append("second in")

    with ThreadPoolExecutor(2) as pool:
        done = [pool.submit(first), pool.submit(second)]
        inside.wait(5)
        threading.Event().wait(0.3)  # the second daemon is now waiting for the lock
        assert order == ["first in"]
        release.set()
        for future in done:
            future.result()
    assert order == ["first in", "first out", "second in"]


def _terminate(url: str, schema_of: PostgresStore) -> int:
    """End every server session of the store (what a restart or an admin does)."""
    with psycopg.connect(server_url(url), autocommit=True) as admin:
        return len(admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()",
            (schema_of.target.application_name,)).fetchall())


def test_dropped_connections_are_survived_without_loss(pg_url: str) -> None:  # noqa: F811
    store = open_store(pg_url)
    assert isinstance(store, PostgresStore)
    try:
        first = _article(1)
        store.record_articles([(first, _verdict(first), _alert(first))])
        assert _terminate(pg_url, store) >= 1
        # the next write and read go through on fresh connections
        second = _article(2)
        assert store.record_articles([(second, _verdict(second), _alert(second))]) == [True]
        assert store.outbox_counts()["pending"] == 2
        assert _terminate(pg_url, store) >= 1
        claimed = store.claim_due_alerts(now=T0 + timedelta(hours=1), limit=10,
                                         lease_seconds=60)
        assert sorted(a.id for a in claimed) == ["al-a1", "al-a2"]

        # a connection that dies in the middle of a transaction: the server rolled it
        # back, and the store runs it again on a new connection
        attempts: list[int] = []

        def work(conn: psycopg.Connection) -> int:
            attempts.append(conn.info.backend_pid)
            conn.execute("UPDATE feeds SET polls = polls + 1 WHERE name = 'x'")
            conn.execute("INSERT INTO feeds (name, url, polls) VALUES ('x', 'u', 1) "
                         "ON CONFLICT (name) DO NOTHING")
            if len(attempts) == 1:
                _terminate(pg_url, store)
            return conn.execute("SELECT polls FROM feeds WHERE name = 'x'").fetchone()["polls"]

        assert store.execute_transaction(work) == 1  # counted once, not twice
        assert len(attempts) == 2 and attempts[0] != attempts[1]
        assert store.get_feed_state("x").polls == 1
    finally:
        store.close()


def test_reopen_resets_the_pool(pg_url: str) -> None:  # noqa: F811
    store = open_store(pg_url)
    try:
        store.check_writable()
        store.reopen()
        store.check_writable()
        assert store.schema_version() == 10
    finally:
        store.close()


def test_errors_are_one_line_with_what_to_do(pg_url: str) -> None:  # noqa: F811
    with pytest.raises(StoreError) as refused:
        PostgresStore("postgresql://postgres@127.0.0.1:1/test", busy_timeout=2)
    assert "\n" not in str(refused.value) and "is the PostgreSQL server running" in str(
        refused.value)
    base = server_url(pg_url).rsplit("/", 1)[0]
    with pytest.raises(StoreError) as missing:
        PostgresStore(f"{base}/no_such_database_here", busy_timeout=2)
    assert "create the database" in str(missing.value) and "\n" not in str(missing.value)
    with pytest.raises(StoreError, match="not a plain SQL identifier"):
        PostgresStore(f"{base}/test?schema=bad;name")


def test_pool_size_bounds_the_connections_one_store_opens(pg_url: str) -> None:  # noqa: F811
    """``storage.pool_size`` reaches the pool: eight threads waiting on a busy server
    never hold more than the configured three sessions."""
    store = open_store(pg_url, pool_size=3)
    try:
        assert isinstance(store, PostgresStore) and store.max_connections == 3
        app = f"pool-size-test-{threading.get_ident()}"
        peak = 0

        def sessions() -> int:
            with psycopg.connect(server_url(pg_url), autocommit=True) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND backend_type = 'client backend' "
                    "AND query LIKE %s", (f"%{app}%",)).fetchone()
                return int(row[0]) if row else 0

        def slow_read() -> None:
            store.execute_transaction(
                lambda conn: conn.execute(f"SELECT pg_sleep(0.4) /* {app} */"))
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = [pool.submit(slow_read) for _ in range(8)]
            for _ in range(6):
                threading.Event().wait(0.1)
                peak = max(peak, sessions())
            for future in futures:
                future.result()
        assert 1 <= peak <= 3
    finally:
        store.close()
