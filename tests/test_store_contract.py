"""The Store contract, once, against every backend: SQLite in the test's folder and
PostgreSQL in a schema of the test's own (skipped, with how to run it, when
``MONITOR_TEST_DATABASE_URL`` is unset).

What the daemon, the CLI, the web view, the digest and the feedback buttons rely on
is asserted here through the protocol only, so a backend that passes is a drop-in.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.errors import StoreError
from monitor.feeds import counted_failure, counted_success
from monitor.models import Alert, Article, FeedState, Receipt, StoryLink, Verdict
from monitor.store import open_store
from monitor.store.base import HIT_END, HIT_START, Store
from tests.support.pg import pg_schema

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
SCHEMA_VERSION = 10


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL for a fresh, empty database of each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state' / 'm.db'}"
        return
    with pg_schema("contract") as url:
        yield url


@pytest.fixture
def store(backend: str) -> Iterator[Store]:
    s = open_store(backend)
    yield s
    s.close()


def article(n: int, *, url: str | None = None, title: str | None = None,
            summary: str = "Body", source: str = "Outlet", at: datetime = T0) -> Article:
    return Article(id=f"a{n}", feed_name="F", source=source,
                   url=url if url is not None else f"https://news.example/{n}",
                   title=title or f"Story {n}", summary=summary, published_at=at,
                   first_seen_at=at)


def verdict(a: Article, match: bool = True) -> Verdict:
    return Verdict(a.id, 0.9 if match else 0.1, match, 0.5, "why", "m1", "arms/military",
                   ("x", "y"))


def alert(a: Article, destination: str = "console", alert_id: str | None = None) -> Alert:
    return Alert(id=alert_id or f"al-{a.id}-{destination}", article_id=a.id,
                 destination=destination, title=a.title, url=a.url, source=a.source,
                 published_at=a.published_at, score=0.9, reason="why", snippet="s",
                 event_type="arms/military")


# --- schema -------------------------------------------------------------------------------
def test_migrate_is_idempotent_and_survives_reopen(backend: str) -> None:
    first = open_store(backend)
    first.check_writable()
    first.record_articles([(article(1), verdict(article(1)), None)])
    assert first.schema_version() == SCHEMA_VERSION
    first.close()
    again = open_store(backend)
    again.migrate()
    assert again.schema_version() == SCHEMA_VERSION
    assert again.get_article("a1") is not None
    again.reopen()
    assert again.get_article("a1") is not None
    again.close()


# --- articles -----------------------------------------------------------------------------
def test_record_round_trips_and_is_idempotent(store: Store) -> None:
    a = article(1)
    assert store.record_articles([(a, verdict(a), alert(a))]) == [True]
    assert store.record_articles([(a, verdict(a), alert(a))]) == [False]
    assert store.outbox_counts() == {"pending": 1, "in_flight": 0, "sent": 0, "failed": 0}
    stored, v = store.get_article("a1")
    assert stored == a and v == verdict(a)
    assert store.get_article("nope") is None


def test_a_batch_is_one_transaction_with_a_result_per_record(store: Store) -> None:
    a, b, c = article(1), article(2), article(3)
    store.record_articles([(a, verdict(a), alert(a))])
    twin = article(4, url=b.url)  # another outlet's copy of b, in the same batch
    results = store.record_articles([(a, verdict(a), alert(a)), (b, verdict(b), alert(b)),
                                     (twin, verdict(twin), None), (c, verdict(c, False), None)])
    assert results == [False, True, False, True]
    assert store.outbox_counts()["pending"] == 2
    d, e = article(5), article(6)
    clash = alert(e, alert_id=alert(a).id)  # an alert id that is taken: the batch fails
    with pytest.raises(StoreError):
        store.record_articles([(d, verdict(d), None), (e, verdict(e), clash)])
    assert store.get_article("a5") is None  # the record before the failure is undone too
    assert store.record_articles([]) == []


def test_filter_unseen_by_id_and_canonical_url(store: Store) -> None:
    a = article(1)
    store.record_articles([(a, verdict(a, False), None)])
    same_url = article(2, url=a.url)
    fresh, no_url = article(3), article(7, url="")
    assert store.filter_unseen([article(1), same_url, fresh, no_url]) == [fresh, no_url]
    assert store.filter_unseen([]) == []


def test_recent_articles_newest_first(store: Store) -> None:
    old, new = article(1), article(2, at=T0 + timedelta(hours=1))
    store.record_articles([(old, verdict(old, False), None), (new, verdict(new), alert(new))])
    listed = store.recent_articles(limit=10)
    assert [r.article_id for r in listed] == ["a2", "a1"]
    assert listed[0].match and not listed[1].match and listed[0].score == 0.9
    assert listed[0].published_at == new.published_at
    assert [r.article_id for r in store.recent_articles(limit=10, matches_only=True)] == ["a2"]


# --- outbox -------------------------------------------------------------------------------
def test_claim_lease_retry_and_sent(store: Store) -> None:
    a = article(1)
    store.record_articles([(a, verdict(a), alert(a))])
    claimed = store.claim_due_alerts(now=T0, limit=10, lease_seconds=60)
    assert [c.id for c in claimed] == [alert(a).id] and claimed[0].attempts == 1
    assert not claimed[0].needs_lookup and claimed[0].first_attempt_at == T0
    assert claimed[0].title == a.title and claimed[0].published_at == T0
    assert store.claim_due_alerts(now=T0 + timedelta(seconds=30), limit=10,
                                  lease_seconds=60) == []
    store.mark_alert_retry(alert(a).id, error="boom", next_attempt_at=T0 + timedelta(minutes=5),
                           ambiguous=True)
    assert store.claim_due_alerts(now=T0 + timedelta(minutes=1), limit=10,
                                  lease_seconds=60) == []
    again = store.claim_due_alerts(now=T0 + timedelta(minutes=5), limit=10, lease_seconds=60)
    assert again[0].needs_lookup and again[0].attempts == 2 and again[0].first_attempt_at == T0
    store.mark_alert_sent(Receipt(alert(a).id, "console", "ts1", T0, {"channel": "C1"}))
    assert store.outbox_counts() == {"pending": 0, "in_flight": 0, "sent": 1, "failed": 0}
    store.mark_alert_retry(alert(a).id, error="late", next_attempt_at=T0, ambiguous=False)
    assert store.outbox_counts()["sent"] == 1  # a late retry never resurrects a sent alert


def test_expired_lease_is_reclaimed_with_lookup(store: Store) -> None:
    a = article(1)
    store.record_articles([(a, verdict(a), alert(a))])
    store.claim_due_alerts(now=T0, limit=10, lease_seconds=60)  # the worker "dies" here
    reclaimed = store.claim_due_alerts(now=T0 + timedelta(seconds=61), limit=10,
                                       lease_seconds=60)
    assert len(reclaimed) == 1 and reclaimed[0].needs_lookup


def test_claims_go_oldest_first_and_skip_paused_destinations(store: Store) -> None:
    late, early = article(1, at=T0 + timedelta(hours=2)), article(2)
    store.record_articles([(late, verdict(late), [alert(late), alert(late, "slack:#b")]),
                           (early, verdict(early), alert(early))])
    claimed = store.claim_due_alerts(now=T0 + timedelta(hours=3), limit=10, lease_seconds=60,
                                     exclude_destinations=["slack:#b"])
    assert [c.id for c in claimed] == [alert(early).id, alert(late).id]
    assert store.outbox_counts()["pending"] == 1


def test_failed_alerts_park_and_requeue(store: Store) -> None:
    a = article(1)
    store.record_articles([(a, verdict(a), alert(a))])
    store.claim_due_alerts(now=T0, limit=10, lease_seconds=60)
    store.mark_alert_failed(alert(a).id, error="invalid_auth")
    assert store.outbox_counts()["failed"] == 1
    causes = store.outbox_causes()
    assert [(c.status, c.cause, c.count, c.max_attempts) for c in causes] == [
        ("failed", "invalid_auth", 1, 1)]
    assert store.requeue_failed_alerts(now=T0) == 1
    assert len(store.claim_due_alerts(now=T0, limit=10, lease_seconds=60)) == 1


# --- stories --------------------------------------------------------------------------------
def test_story_parent_reply_thread_and_refresh(store: Store) -> None:
    first = article(1, source="Outlet A")
    second = article(2, source="Outlet B", at=T0 + timedelta(minutes=5))
    store.record_articles([(first, verdict(first), alert(first), StoryLink("s-1", True))])
    store.record_articles([(second, verdict(second), alert(second),
                            StoryLink("s-1", False))])
    # the reply waits for its parent's thread
    claimed = store.claim_due_alerts(now=T0 + timedelta(hours=1), limit=10, lease_seconds=60)
    assert [(c.id, c.kind) for c in claimed] == [(alert(first).id, "parent")]
    assert store.parents_to_refresh(limit=10) == []
    store.mark_alert_sent(Receipt(alert(first).id, "console", "ts1", T0, {"channel": "C1"}))
    reply = store.claim_due_alerts(now=T0 + timedelta(hours=1), limit=10, lease_seconds=60)
    assert [(c.id, c.kind, c.story_id) for c in reply] == [(alert(second).id, "reply", "s-1")]
    assert reply[0].thread is not None and reply[0].thread.message_id == "ts1"
    assert reply[0].thread.channel == "C1"
    refresh = store.parents_to_refresh(limit=10)
    assert len(refresh) == 1
    parent, facts = refresh[0]
    assert parent.id == alert(first).id and parent.thread.message_id == "ts1"
    assert (facts.member_count, facts.source_count) == (2, 2)
    assert facts.sources == ("Outlet A", "Outlet B")
    assert facts.evidence is not None and facts.evidence.outlets == 2
    store.mark_parent_refreshed("s-1", "console", 2)
    assert store.parents_to_refresh(limit=10) == []
    stories = store.recent_stories(since=T0 - timedelta(days=1))
    assert [(s.story_id, s.member_count, s.parent_status, s.replies) for s in stories] == [
        ("s-1", 2, "sent", 1)]
    members = store.story_members_since(T0 - timedelta(days=1))
    assert [(a.id, story) for a, story in members] == [("a1", "s-1"), ("a2", "s-1")]
    board = store.story_board(since=T0 - timedelta(days=1))
    assert [(e.story_id, [x.kind for x in e.alerts]) for e in board] == [
        ("s-1", ["parent", "reply"])]


def test_story_members_after_reads_each_member_once(store: Store) -> None:
    since = T0 - timedelta(days=1)
    a, b, weak = article(1), article(2), article(3)
    store.record_articles([(a, verdict(a), None, StoryLink("s-1", True)),
                           (weak, verdict(weak, False), None)])
    members, position = store.story_members_after(0, since=since, min_score_fraction=0.5)
    assert [(m.id, story) for m, story in members] == [("a1", "s-1")]  # 0.1 < 0.5 * 0.5
    assert store.story_members_after(position, since=since,
                                     min_score_fraction=0.5) == ([], position)
    store.record_articles([(b, verdict(b), None, StoryLink("s-1", False))])
    members, later = store.story_members_after(position, since=since, min_score_fraction=0.5)
    assert [(m.id, story) for m, story in members] == [("a2", "s-1")] and later > position
    everything, _ = store.story_members_after(0, since=since)
    assert [m.id for m, _ in everything] == ["a1", "a3", "a2"]
    assert store.story_members_after(0, since=T0 + timedelta(days=1)) == ([], 0)


def test_one_parent_per_story_and_destination(store: Store) -> None:
    """The unique index behind story assignment: a second parent cannot exist."""
    a, b = article(1), article(2)
    store.record_articles([(a, verdict(a), alert(a), StoryLink("s-x", True))])
    store.record_articles([(b, verdict(b), alert(b), StoryLink("s-x", False))])
    kinds = sorted(s.kind for e in store.story_board(since=T0 - timedelta(days=1))
                   for s in e.alerts)
    assert kinds == ["parent", "reply"]


def test_copies_of_a_matched_member_echo_in_its_thread(store: Store) -> None:
    """A non-matching near-duplicate of a matched member is queued as a reply; a copy of a
    member that did not match, or of a story never alerted, queues nothing."""
    wire, copy = article(1), article(2, source="Copycat")
    quiet, quiet_copy = article(3), article(4, source="Copycat")
    stale, stale_copy = article(5), article(6, source="Copycat")  # matched, too old to alert
    store.record_articles([(wire, verdict(wire), alert(wire), StoryLink("s-w", True)),
                           (quiet, verdict(quiet, False), None, StoryLink("s-q", True)),
                           (stale, verdict(stale), None, StoryLink("s-o", True))])
    store.record_articles([
        (stale_copy, verdict(stale_copy, False), None,
         StoryLink("s-o", False, near_duplicate_of="a5", echo=alert(stale_copy))),
        (copy, verdict(copy, False), None,
         StoryLink("s-w", False, near_duplicate_of="a1", echo=alert(copy))),
        (quiet_copy, verdict(quiet_copy, False), None,
         StoryLink("s-q", False, near_duplicate_of="a3", echo=alert(quiet_copy))),
    ])
    board = {e.story_id: [(x.alert_id, x.kind) for x in e.alerts]
             for e in store.story_board(since=T0 - timedelta(days=1))}
    assert board == {"s-w": [(alert(wire).id, "parent"), (alert(copy).id, "reply")]}
    stories = {s.story_id: (s.member_count, s.source_count)
               for s in store.recent_stories(since=T0 - timedelta(days=1))}
    assert stories == {"s-w": (2, 2), "s-q": (2, 2), "s-o": (2, 2)}


def test_digest_reads_and_posts_once(store: Store) -> None:
    a = article(1)
    store.record_articles([(a, verdict(a), alert(a))])
    store.claim_due_alerts(now=T0, limit=10, lease_seconds=60)
    store.mark_alert_sent(Receipt(alert(a).id, "console", "ts1", T0))
    store.add_label("a1", 1, source="cli", at=T0)
    stories = store.digest_stories(since=T0 - timedelta(days=1))
    assert [(s.story_id, s.title, s.event_type) for s in stories] == [
        ("s-a1", a.title, "arms/military")]
    stats = store.week_stats(since=T0 - timedelta(days=7))
    assert (stats.alerts_sent, stats.labels_given, stats.judged_alerts,
            stats.relevant_alerts) == (1, 1, 1, 1)
    assert store.digest_posted("d1") is None
    store.mark_digest_posted("d1", destination="console", message_id="m", at=T0)
    store.mark_digest_posted("d1", destination="console", message_id="m2", at=T0)
    assert store.digest_posted("d1") == T0


# --- feeds ----------------------------------------------------------------------------------
def test_feed_state_round_trips(store: Store) -> None:
    state = counted_failure(None, "F", "https://f/rss", error="timeout", at=T0)
    store.save_feed_state(state)
    state = counted_failure(store.get_feed_state("F"), "F", "https://f/rss", error="timeout",
                            at=T0)
    store.save_feed_state(state)
    assert state.consecutive_errors == 2 and state.error_count == 2
    store.save_feed_state(counted_success(store.get_feed_state("F"), "F", "https://f/rss",
                                          etag='"e1"', last_modified=None, at=T0))
    got = store.get_feed_state("F")
    assert got.etag == '"e1"' and got.consecutive_errors == 0 and got.error_count == 2
    assert got.polls == 3
    full = FeedState(name="G", url="https://g/rss", etag="e", last_modified="lm",
                     last_success_at=T0, last_attempt_at=T0, last_error=None, error_count=1,
                     consecutive_errors=0, polls=4, next_poll_at=T0 + timedelta(minutes=5),
                     last_new_item_at=T0, arrivals=(T0, T0 + timedelta(hours=1)),
                     moved_to="https://g2/rss", flagged="stale", disabled=None,
                     body_hash="h", ttl_seconds=600.0)
    store.save_feed_states([full])
    assert store.get_feed_state("G") == full
    assert [s.name for s in store.all_feed_states()] == ["F", "G"]
    assert store.get_feed_state("nope") is None


# --- analysts' feedback ---------------------------------------------------------------------
def test_labels_keep_history_and_latest(store: Store) -> None:
    a = article(1)
    store.record_articles([(a, verdict(a), None)])
    store.add_label("a1", 1, source="slack", at=T0, user_id="U1")
    store.add_label("a1", 0, source="cli", at=T0 + timedelta(minutes=1))
    assert store.labelled_articles() == [(a, 0)]
    history = store.label_history("a1")
    assert [(e.label, e.user_id, e.source, e.created_at) for e in history] == [
        (1, "U1", "slack", T0), (0, None, "cli", T0 + timedelta(minutes=1))]
    with pytest.raises(StoreError, match="no stored article"):
        store.add_label("missing", 1, source="cli", at=T0)
    with pytest.raises(StoreError, match="0 or 1"):
        store.add_label("a1", 2, source="cli", at=T0)
    marks = store.feedback_marks("a1", story_id=None, outlet=None, now=T0)
    assert [m.action for m in marks] == ["not_relevant"]


def test_mutes_expire_and_lift(store: Store) -> None:
    outlet = store.add_mute("outlet", "Outlet", created_by="U1", at=T0,
                            expires_at=T0 + timedelta(hours=1))
    story = store.add_mute("story", "s-1", created_by="U2", at=T0,
                           expires_at=T0 + timedelta(days=1))
    assert outlet.id != story.id and outlet.created_at == T0
    assert [m.id for m in store.active_mutes(T0 + timedelta(minutes=1))] == [outlet.id, story.id]
    assert [m.id for m in store.active_mutes(T0 + timedelta(hours=2))] == [story.id]
    marks = store.feedback_marks("a1", story_id="s-1", outlet="Outlet",
                                 now=T0 + timedelta(minutes=1))
    assert [(m.action, m.subject) for m in marks] == [("mute_outlet", "Outlet"),
                                                      ("mute_story", "")]
    assert store.remove_mute(story.id, at=T0) is True
    assert store.remove_mute(story.id, at=T0) is False
    assert store.remove_mute(9999, at=T0) is False
    listed = store.list_mutes()
    assert [m.id for m in listed] == [story.id, outlet.id]
    assert listed[0].status(T0) == "removed"
    with pytest.raises(StoreError):
        store.add_mute("channel", "x", created_by="U", at=T0, expires_at=T0 + timedelta(1))


# --- the web view's search -----------------------------------------------------------------
def _search_corpus(store: Store) -> None:
    items = [
        article(1, title="Missile parts shipped to Russia by rail",
                summary="Analysts traced the ammunition convoy from Rajin port.",
                source="Wire One", at=T0),
        article(2, title="Putin and Kim sign partnership treaty",
                summary="The pact includes a mutual defence clause.", source="Daily Two",
                at=T0 + timedelta(hours=1)),
        article(3, title="Weather in Seoul", summary="Rain later; no missile news today.",
                source="Wire One", at=T0 + timedelta(hours=2)),
    ]
    store.record_articles([(a, verdict(a, a.id != "a3"), None) for a in items])


def test_search_finds_every_word_ranks_titles_and_marks_hits(store: Store) -> None:
    _search_corpus(store)
    hits = store.search_articles("missile")
    assert [h.article_id for h in hits] == ["a1", "a3"]  # the title hit ranks first
    weather = hits[1]
    assert f"{HIT_START}missile{HIT_END}" in weather.snippet.lower()
    assert [h.article_id for h in store.search_articles("missile convoy")] == ["a1"]
    assert [h.article_id for h in store.search_articles("missil*")] == ["a1", "a3"]
    assert [h.article_id for h in store.search_articles("TREATY")] == ["a2"]
    assert [h.article_id for h in store.search_articles("missile", matches_only=True)] == ["a1"]
    assert [h.article_id for h in store.search_articles("missile", outlet="Wire One",
                                                        since=T0 + timedelta(hours=1))] == ["a3"]
    assert [h.article_id for h in store.search_articles("missile",
                                                        until=T0 + timedelta(hours=1))] == ["a1"]


def test_search_treats_any_input_as_words(store: Store) -> None:
    _search_corpus(store)
    for nasty in ('"', "NEAR(", "title:", "a & | ! b", "'; DROP TABLE articles; --", "(*)",
                  "missile OR", "-", "\\"):
        store.search_articles(nasty)  # never a syntax error
    assert [h.article_id for h in store.search_articles("(missile)")] == ["a1", "a3"]
    newest = store.search_articles("   ")
    assert [h.article_id for h in newest] == ["a3", "a2", "a1"]
    assert [h.article_id for h in store.search_articles("", limit=1, offset=1)] == ["a2"]


# --- work sharing (migration 10) -----------------------------------------------------------
def _due(store: Store, name: str, at: datetime | None) -> None:
    store.save_feed_state(FeedState(name=name, url=f"https://{name}/rss", next_poll_at=at))


def test_claim_feeds_takes_due_never_polled_first(store: Store) -> None:
    _due(store, "late", T0 - timedelta(minutes=1))
    _due(store, "later", T0 - timedelta(minutes=10))
    _due(store, "future", T0 + timedelta(minutes=10))
    names = ["late", "later", "future", "new"]
    got = store.claim_feeds(names, owner="d1", now=T0, lease_seconds=60, limit=3)
    assert got == ["new", "later", "late"]
    assert store.get_feed_state("new") is not None  # a minimal row was made for the lease
    # leased to d1: nobody else gets them; d1 itself may re-claim
    assert store.claim_feeds(names, owner="d2", now=T0, lease_seconds=60, limit=10) == []
    assert sorted(store.claim_feeds(names, owner="d1", now=T0, lease_seconds=60,
                                    limit=10)) == ["late", "later", "new"]
    # d1 dies: its leases run out and d2 takes the feeds over
    assert sorted(store.claim_feeds(names, owner="d2", now=T0 + timedelta(seconds=61),
                                    lease_seconds=60, limit=10)) == ["late", "later", "new"]
    assert store.claim_feeds([], owner="d2", now=T0, lease_seconds=60, limit=10) == []
    assert store.claim_feeds(names, owner="d3", now=T0, lease_seconds=60, limit=0) == []


def test_limit_spreads_feeds_and_release_frees_them(store: Store) -> None:
    names = [f"f{i}" for i in range(6)]
    first = store.claim_feeds(names, owner="d1", now=T0, lease_seconds=3600, limit=3)
    second = store.claim_feeds(names, owner="d2", now=T0, lease_seconds=60, limit=3)
    assert len(first) == len(second) == 3 and not set(first) & set(second)
    # the poll's state is saved (next poll in 5 minutes) and then released
    for name in first:
        _due(store, name, T0 + timedelta(minutes=5))
    store.release_feeds(first, owner="d2")  # not d2's: nothing happens
    assert store.claim_feeds(first, owner="d3", now=T0 + timedelta(minutes=6),
                             lease_seconds=60, limit=10) == []  # still leased to d1
    store.release_feeds(first, owner="d1")
    assert store.claim_feeds(first, owner="d3", now=T0, lease_seconds=60, limit=10) == []
    assert sorted(store.claim_feeds(first, owner="d3", now=T0 + timedelta(minutes=6),
                                    lease_seconds=60, limit=10)) == sorted(first)


def test_saving_state_keeps_the_lease_and_renewal_detects_takeover(store: Store) -> None:
    store.claim_feeds(["a", "b"], owner="d1", now=T0, lease_seconds=60, limit=10)
    _due(store, "a", T0)  # save_feed_state (still due) must not clear the lease
    assert store.claim_feeds(["a"], owner="d2", now=T0 + timedelta(seconds=30),
                             lease_seconds=60, limit=10) == []
    assert store.renew_feed_leases(["a", "b"], owner="d1", now=T0 + timedelta(seconds=50),
                                   lease_seconds=60) == ["a", "b"]
    # renewed until T0+110s: still d1's at T0+100s
    assert store.claim_feeds(["b"], owner="d2", now=T0 + timedelta(seconds=100),
                             lease_seconds=60, limit=10) == []
    assert store.claim_feeds(["b"], owner="d2", now=T0 + timedelta(seconds=111),
                             lease_seconds=60, limit=10) == ["b"]
    assert store.renew_feed_leases(["a", "b"], owner="d1", now=T0 + timedelta(seconds=112),
                                   lease_seconds=60) == ["a"]
    assert store.renew_feed_leases([], owner="d1", now=T0, lease_seconds=60) == []


def test_next_feed_due(store: Store) -> None:
    assert store.next_feed_due([]) is None
    soon, later = datetime.now(UTC) + timedelta(minutes=5), datetime.now(UTC) + timedelta(hours=1)
    _due(store, "a", later)
    _due(store, "b", soon)
    assert store.next_feed_due(["a", "b"]) == soon
    assert store.next_feed_due(["a"]) == later
    before = datetime.now(UTC)
    assert before <= store.next_feed_due(["a", "never-polled"]) <= datetime.now(UTC)
    # another daemon's lease on a due feed: not claimable before the lease ends
    _due(store, "c", before - timedelta(minutes=1))
    store.claim_feeds(["c"], owner="d1", now=before, lease_seconds=600, limit=1)
    assert store.next_feed_due(["c"]) == before + timedelta(seconds=600)


def test_take_send_slot_paces_a_destination_shared_by_all(store: Store) -> None:
    now = 1_700_000_000.0
    waits = [store.take_send_slot("slack:#a", now=now, interval=1.0, burst=2)
             for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.0, 1.0, 2.0])
    assert store.take_send_slot("slack:#b", now=now, interval=1.0, burst=1) == 0.0
    # time passes: the pace drains
    assert store.take_send_slot("slack:#a", now=now + 10, interval=1.0,
                                burst=2) == pytest.approx(0.0)



def test_hold_send_slots_pauses_every_sender_then_no_burst(store: Store) -> None:
    now = 1_700_000_000.0
    store.hold_send_slots("slack:#a", until=now + 30, interval=1.0, burst=3)
    waits = [store.take_send_slot("slack:#a", now=now, interval=1.0, burst=3)
             for _ in range(3)]
    assert waits == pytest.approx([30.0, 31.0, 32.0])
    # an older, shorter hold never shortens a longer one
    store.hold_send_slots("slack:#a", until=now + 5, interval=1.0, burst=3)
    assert store.take_send_slot("slack:#a", now=now, interval=1.0,
                                burst=3) == pytest.approx(33.0)
    assert store.take_send_slot("slack:#b", now=now, interval=1.0, burst=3) == 0.0


def test_story_lock_is_a_context_manager(store: Store) -> None:
    with store.story_lock():
        a = article(1)
        assert store.record_articles([(a, verdict(a), None)]) == [True]
    with store.story_lock():
        pass
