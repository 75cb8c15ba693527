"""SQLite store: atomic recording, dedupe, and the outbox's claim/lease life cycle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.errors import StoreError
from monitor.models import Alert, Article, Receipt, Verdict
from monitor.store.sqlite import SqliteStore

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def article(n: int, url: str | None = None) -> Article:
    return Article(
        id=f"a{n}", feed_name="F", source="Outlet", url=url or f"https://news.example/{n}",
        title=f"Story {n}", summary="Body", published_at=T0, first_seen_at=T0,
    )


def verdict(a: Article, match: bool = True) -> Verdict:
    return Verdict(a.id, 0.9 if match else 0.1, match, 0.5, "why", "m1", "arms/military", ("x",))


def alert(a: Article) -> Alert:
    return Alert(id=f"al-{a.id}", article_id=a.id, destination="console", title=a.title,
                 url=a.url, source=a.source, published_at=T0, score=0.9, reason="why",
                 snippet="s", event_type="arms/military")


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    s = SqliteStore(tmp_path / "state" / "m.db")
    s.migrate()
    yield s
    s.close()


def test_migrate_is_idempotent_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    first = SqliteStore(path)
    first.migrate()
    first.record_article(article(1), verdict(article(1)), None)
    first.close()
    again = SqliteStore(path)
    again.migrate()
    assert again.get_article("a1") is not None
    again.close()


def test_record_is_atomic_and_idempotent(store: SqliteStore) -> None:
    a = article(1)
    assert store.record_article(a, verdict(a), alert(a)) is True
    assert store.record_article(a, verdict(a), alert(a)) is False
    assert store.outbox_counts()["pending"] == 1
    stored, v = store.get_article("a1")
    assert stored == a and v is not None and v.keywords == ("x",)


def test_failed_alert_insert_rolls_back_article(store: SqliteStore) -> None:
    a, b = article(1), article(2)
    store.record_article(a, verdict(a), alert(a))
    clash = alert(b)
    clash = Alert(**{**{f: getattr(clash, f) for f in clash.__slots__}, "id": "al-a1"})
    with pytest.raises(StoreError):
        store.record_article(b, verdict(b), clash)
    assert store.get_article("a2") is None  # nothing half-written


def test_a_batch_is_one_transaction_with_a_result_per_record(store: SqliteStore) -> None:
    a, b, c = article(1), article(2), article(3)
    store.record_article(a, verdict(a), alert(a))
    twin = article(4, url=b.url)  # another outlet's copy of b, in the same batch
    results = store.record_articles([(a, verdict(a), alert(a)), (b, verdict(b), alert(b)),
                                     (twin, verdict(twin), None), (c, verdict(c, False), None)])
    assert results == [False, True, False, True]
    assert store.outbox_counts()["pending"] == 2
    clash = Alert(**{**{f: getattr(alert(c), f) for f in Alert.__slots__}, "id": "al-a1"})
    d, e = article(5), article(6)
    with pytest.raises(StoreError):
        store.record_articles([(d, verdict(d), None), (e, verdict(e), clash)])
    assert store.get_article("a5") is None  # the record before the failure is undone too
    assert store.record_articles([]) == []


def test_filter_unseen_by_id_and_canonical_url(store: SqliteStore) -> None:
    a = article(1)
    store.record_article(a, verdict(a, False), None)
    same_url_other_outlet = article(2, url=a.url)
    fresh = article(3)
    assert store.filter_unseen([article(1), same_url_other_outlet, fresh]) == [fresh]
    # and a second copy of the same URL is refused at write time too
    dup = same_url_other_outlet
    assert store.record_article(dup, verdict(dup), None) is False


def test_the_seen_check_uses_indexes_not_a_table_scan(store: SqliteStore) -> None:
    """It runs on every changed feed; a scan grows with the whole archive."""
    from monitor.store.sqlite import _SEEN_IDS, _SEEN_URLS

    for query in (f"{_SEEN_URLS} (?, ?)", f"{_SEEN_IDS} (?, ?)"):
        plan = " ".join(row[3] for row in store._conn.execute(f"EXPLAIN QUERY PLAN {query}",
                                                               ("a", "b")))
        assert "USING COVERING INDEX" in plan and "SCAN" not in plan, (query, plan)


def test_claim_lease_retry_and_sent(store: SqliteStore) -> None:
    a = article(1)
    store.record_article(a, verdict(a), alert(a))
    claimed = store.claim_due_alerts(now=T0, limit=10, lease_seconds=60)
    assert [c.id for c in claimed] == ["al-a1"] and claimed[0].attempts == 1
    assert not claimed[0].needs_lookup
    # claimed alerts are not handed out twice while the lease holds
    assert store.claim_due_alerts(now=T0 + timedelta(seconds=30), limit=10, lease_seconds=60) == []
    store.mark_alert_retry("al-a1", error="boom", next_attempt_at=T0 + timedelta(minutes=5),
                           ambiguous=True)
    assert store.claim_due_alerts(now=T0 + timedelta(minutes=1), limit=10, lease_seconds=60) == []
    again = store.claim_due_alerts(now=T0 + timedelta(minutes=5), limit=10, lease_seconds=60)
    assert again[0].needs_lookup and again[0].attempts == 2
    store.mark_alert_sent(Receipt("al-a1", "console", "ts1", T0))
    assert store.outbox_counts() == {"pending": 0, "in_flight": 0, "sent": 1, "failed": 0}
    # a late retry mark must not resurrect a sent alert
    store.mark_alert_retry("al-a1", error="late", next_attempt_at=T0, ambiguous=False)
    assert store.outbox_counts()["sent"] == 1


def test_expired_lease_is_reclaimed_with_lookup(store: SqliteStore) -> None:
    a = article(1)
    store.record_article(a, verdict(a), alert(a))
    store.claim_due_alerts(now=T0, limit=10, lease_seconds=60)  # worker "dies" here
    reclaimed = store.claim_due_alerts(now=T0 + timedelta(seconds=61), limit=10, lease_seconds=60)
    assert len(reclaimed) == 1 and reclaimed[0].needs_lookup


def test_failed_alerts_park_and_requeue(store: SqliteStore) -> None:
    a = article(1)
    store.record_article(a, verdict(a), alert(a))
    store.claim_due_alerts(now=T0, limit=10, lease_seconds=60)
    store.mark_alert_failed("al-a1", error="invalid_auth")
    assert store.outbox_counts()["failed"] == 1
    assert store.requeue_failed_alerts(now=T0) == 1
    assert len(store.claim_due_alerts(now=T0, limit=10, lease_seconds=60)) == 1


def test_feed_state_success_and_failures(store: SqliteStore) -> None:
    from monitor.feeds import counted_failure, counted_success

    state = counted_failure(None, "F", "https://f/rss", error="timeout", at=T0)
    store.save_feed_state(state)
    state = counted_failure(store.get_feed_state("F"), "F", "https://f/rss", error="timeout", at=T0)
    store.save_feed_state(state)
    assert state.consecutive_errors == 2 and state.error_count == 2
    store.save_feed_state(counted_success(store.get_feed_state("F"), "F", "https://f/rss",
                                          etag='"e1"', last_modified=None, at=T0))
    state = store.get_feed_state("F")
    assert state.etag == '"e1"' and state.consecutive_errors == 0 and state.error_count == 2
    assert state.polls == 3


def test_labels(store: SqliteStore) -> None:
    a = article(1)
    store.record_article(a, verdict(a), None)
    store.add_label("a1", 1, source="cli", at=T0)
    store.add_label("a1", 0, source="cli", at=T0)
    assert store.labelled_articles() == [(a, 0)]
    with pytest.raises(StoreError, match="no stored article"):
        store.add_label("missing", 1, source="cli", at=T0)
