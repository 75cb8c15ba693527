"""One store write per poll: the in-memory transitions, ``save_feed_state`` and the cache.

Real SQLite and a real local HTTP server throughout. Failures are made real too:
a SQLite trigger aborts the insert or update we want to fail, so the code under
test meets a genuine ``sqlite3`` error rather than a patched function.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.classify import ArticleClassifier
from monitor.feeds import (
    FAILURE_FLAG_PREFIX,
    FeedStates,
    LifecyclePolicy,
    LifecycleUpdate,
    counted_failure,
    counted_success,
    with_lifecycle,
)
from monitor.http import FetchLimits, build_client
from monitor.models import Feed, FeedState, ParsedFeed
from monitor.parse import parse_feed
from monitor.pipeline import FeedReport, PipelineDeps, run_feed
from monitor.store.sqlite import SqliteStore
from tests.support.defaults import alert_rules, lifecycle
from tests.support.feed_server import FeedServer

REPO = Path(__file__).resolve().parent.parent
DESK = (REPO / "tests" / "fixtures" / "integration" / "desk_rss.xml").read_bytes()
T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


# -- the transitions, step by step, against a table of expected rows ---------------------------


def _in_memory(store: SqliteStore, step: tuple[str, ...], at: datetime,
               update: LifecycleUpdate, new_items: int) -> None:
    kind, name, url = step[:3]
    before = store.get_feed_state(name)
    if kind == "ok":
        counted = counted_success(before, name, url, etag=step[3], last_modified=None, at=at)
    else:
        counted = counted_failure(before, name, url, error=step[3], at=at)
    store.save_feed_state(with_lifecycle(counted, update, new_items=new_items, at=at))


URL, MOVED = "https://f.example/rss", "https://g.example/rss"
# step, lifecycle update, new items, then the stored row: url, polls, errors, errors in a
# row, last error's length, etag, moved_to, flagged, disabled, arrivals kept, and the days
# after T0 of the last success, the last new item and the last attempt.
TRANSITIONS: list[tuple[tuple[str, ...], LifecycleUpdate, int, tuple[object, ...]]] = [
    (("ok", "F", URL, '"e1"'), LifecycleUpdate(T0, moved_to=MOVED), 5,
     (URL, 1, 0, 0, 0, '"e1"', MOVED, None, None, 5, 0, 0, 0)),
    (("fail", "F", URL, "timeout"), LifecycleUpdate(T0, flagged="failing: 1"), 0,
     (URL, 2, 1, 1, 7, '"e1"', MOVED, "failing: 1", None, 5, 0, 0, 3)),
    # an error text is kept to 1,000 characters
    (("fail", "F", URL, "x" * 3000), LifecycleUpdate(T0, disabled="410 Gone"), 0,
     (URL, 3, 2, 2, 1000, '"e1"', MOVED, "failing: 1", "410 Gone", 5, 0, 0, 6)),
    # the configured URL changes: redirect, flag, disabled reason and arrivals are forgotten
    (("ok", "F", URL + "?v=2", '"e2"'), LifecycleUpdate(T0), 0,
     (URL + "?v=2", 4, 2, 0, 1000, '"e2"', None, None, None, 0, 9, 0, 9)),
    (("ok", "F", URL + "?v=2", None), LifecycleUpdate(T0, flagged=None), 3,
     (URL + "?v=2", 5, 2, 0, 1000, None, None, None, None, 3, 12, 12, 12)),
    (("fail", "G", URL, "dns"), LifecycleUpdate(T0), 0,  # a first poll that fails
     (URL, 1, 1, 1, 3, None, None, None, None, 0, None, None, 15)),
]


def _days(value: datetime | None) -> int | None:
    return None if value is None else (value - T0).days


def test_transitions_write_the_expected_rows(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "m.db")
    store.migrate()
    for i, (step, update, new_items, expected) in enumerate(TRANSITIONS):
        at = T0 + timedelta(days=3 * i)  # old arrivals fall out of the 7-day window
        update = LifecycleUpdate(at + timedelta(minutes=15), update.flagged, update.disabled,
                                 update.moved_to)
        _in_memory(store, step, at, update, new_items)
        s = _state(store, step[1])
        row = (s.url, s.polls, s.error_count, s.consecutive_errors, len(s.last_error or ""),
               s.etag, s.moved_to, s.flagged, s.disabled, len(s.arrivals),
               _days(s.last_success_at), _days(s.last_new_item_at), _days(s.last_attempt_at))
        assert row == expected, f"after step {i}: {step[:2]}"
        assert s.next_poll_at == update.next_poll_at
    store.close()


# -- through the pipeline, against a local server ----------------------------------------------


async def _parse_in_thread(feed_name: str, body: bytes, **kwargs: object) -> ParsedFeed:
    return await asyncio.to_thread(parse_feed, feed_name, body, **kwargs)  # type: ignore[arg-type]


async def _poll(feed: Feed, store: SqliteStore, classifier: ArticleClassifier,
                states: FeedStates | None, *, at: datetime,
                policy: LifecyclePolicy | None = None) -> FeedReport:
    limits = FetchLimits(user_agent="bookkeeping-test/1 (+https://example.invalid)",
                         unconditional_probability=0.0)
    async with build_client(limits) as client:
        deps = PipelineDeps(
            client=client, store=store, classify=classifier.classify_in_thread, fetch_limits=limits,
            rules=alert_rules(max_article_age_hours=0), max_items=100,
            now=lambda: at, parse=_parse_in_thread, rng=random.Random(1), states=states,
            lifecycle=policy or lifecycle(),
        )
        return await run_feed(feed, deps)


def poll(*args: object, **kwargs: object) -> FeedReport:
    return asyncio.run(_poll(*args, **kwargs))  # type: ignore[arg-type]


def _state(store: SqliteStore, name: str) -> FeedState:
    state = store.get_feed_state(name)
    assert state is not None
    return state


@pytest.mark.parametrize("cached", [True, False], ids=["state cache", "no cache"])
def test_not_modified_polls_count_and_reschedule(
    store: SqliteStore, classifier: ArticleClassifier, cached: bool
) -> None:
    states = FeedStates(store) if cached else None
    with FeedServer() as server:
        feed = Feed("Desk", server.add_file("/desk.xml", DESK, etag='"v1"'))
        first = poll(feed, store, classifier, states, at=T0)
        assert first.status == "ok" and first.new_items == 4
        for i in (1, 2):
            report = poll(feed, store, classifier, states, at=T0 + timedelta(hours=i))
            assert report.status == "not_modified" and report.http_status == 304
        sent = [r.headers.get("if-none-match") for r in server.requests]
    assert sent == [None, '"v1"', '"v1"']
    state = _state(store, "Desk")
    last = T0 + timedelta(hours=2)
    assert (state.polls, state.consecutive_errors, state.error_count) == (3, 0, 0)
    assert state.etag == '"v1"' and state.last_success_at == last == state.last_attempt_at
    assert state.next_poll_at == report.next_poll_at and state.next_poll_at > last
    assert len(state.arrivals) == 4 and state.last_new_item_at == T0  # 304s add nothing
    assert store.outbox_counts()["pending"] == first.alerts
    if states is not None:
        assert asyncio.run(states.get("Desk")) == state  # the cache is the stored row


def test_failures_flag_then_a_success_resets_the_run(
    store: SqliteStore, classifier: ArticleClassifier
) -> None:
    states = FeedStates(store)
    policy = lifecycle(flag_after_failures=2)
    with FeedServer() as server:
        feed = Feed("Flaky", server.add_status("/flaky.xml", 500))
        one = poll(feed, store, classifier, states, at=T0, policy=policy)
        two = poll(feed, store, classifier, states, at=T0 + timedelta(minutes=5), policy=policy)
        assert one.status == two.status == "http_status"
        assert "2 consecutive failure(s)" in (two.error or "")
        assert two.notice is not None and "failed 2 times" in two.notice
        broken = _state(store, "Flaky")
        assert (broken.consecutive_errors, broken.error_count, broken.polls) == (2, 2, 2)
        assert (broken.flagged or "").startswith(FAILURE_FLAG_PREFIX) and broken.etag is None
        assert broken.next_poll_at == two.next_poll_at

        server.add_file("/flaky.xml", DESK, etag='"ok"')
        three = poll(feed, store, classifier, states, at=T0 + timedelta(minutes=10),
                     policy=policy)
    assert three.status == "ok" and three.notice is not None and "working again" in three.notice
    fixed = _state(store, "Flaky")
    assert (fixed.consecutive_errors, fixed.error_count, fixed.polls) == (0, 2, 3)
    assert fixed.flagged is None and fixed.etag == '"ok"' and len(fixed.arrivals) == 4
    assert asyncio.run(states.get("Flaky")) == fixed


def test_gone_disables_and_is_not_polled_again(
    store: SqliteStore, classifier: ArticleClassifier
) -> None:
    states = FeedStates(store)
    with FeedServer() as server:
        feed = Feed("Gone", server.add_status("/gone.xml", 410))
        first = poll(feed, store, classifier, states, at=T0)
        again = poll(feed, store, classifier, states, at=T0 + timedelta(hours=1))
        assert len(server.requests) == 1
    assert first.notice is not None and "410 Gone" in first.notice
    assert again.status == "disabled"
    assert (_state(store, "Gone").disabled or "").startswith("410 Gone")


def test_a_failure_mid_batch_keeps_the_old_validators_and_loses_nothing(
    store: SqliteStore, classifier: ArticleClassifier
) -> None:
    """The store fails after some of a 200's articles are written: the poll's one
    transaction rolls back and the validators are not saved, so the next poll refetches
    and records them all, alerting each once."""
    states = FeedStates(store)
    store._conn.executescript("""
        CREATE TRIGGER boom BEFORE INSERT ON articles
        WHEN (SELECT COUNT(*) FROM articles) >= 2
        BEGIN SELECT RAISE(ABORT, 'disk full (test)'); END;
    """)
    with FeedServer() as server:
        feed = Feed("Desk", server.add_file("/desk.xml", DESK, etag='"v1"'))
        crashed = poll(feed, store, classifier, states, at=T0)
        assert crashed.status == "StoreError" and "disk full" in (crashed.error or "")
        half = _state(store, "Desk")
        assert half.etag is None and half.consecutive_errors == 1
        assert len(store.recent_articles(limit=50)) == 0  # all or nothing

        store._conn.execute("DROP TRIGGER boom")
        healed = poll(feed, store, classifier, states, at=T0 + timedelta(minutes=5))
        sent = [r.headers.get("if-none-match") for r in server.requests]
    assert sent == [None, None]  # no validator was stored by the failed poll
    assert healed.status == "ok" and healed.new_items == 4
    assert len(store.recent_articles(limit=50)) == 4
    alerts = store.claim_due_alerts(now=T0 + timedelta(days=1), limit=50, lease_seconds=60)
    assert len({a.article_id for a in alerts}) == len(alerts)  # each alert exactly once
    matches = [a for a in store.recent_articles(limit=50) if a.match]
    assert len(alerts) == len(matches) > 0
    assert _state(store, "Desk").etag == '"v1"'


def test_a_failed_bookkeeping_write_is_not_remembered(
    store: SqliteStore, classifier: ArticleClassifier
) -> None:
    """If saving the poll's outcome fails, neither the store nor the cache counts it."""
    states = FeedStates(store)
    with FeedServer() as server:
        feed = Feed("Desk", server.add_file("/desk.xml", DESK, etag='"v1"'))
        poll(feed, store, classifier, states, at=T0)
        store._conn.executescript("""
            CREATE TRIGGER frozen BEFORE UPDATE ON feeds
            BEGIN SELECT RAISE(ABORT, 'read-only (test)'); END;
        """)
        failed = poll(feed, store, classifier, states, at=T0 + timedelta(hours=1))
        # Not counted, yet re-armed with the failure back-off (never left to the safety net).
        assert failed.status == "StoreError" and failed.store_error is not None
        assert failed.next_poll_at is not None and failed.next_poll_at > T0 + timedelta(hours=1)
        assert _state(store, "Desk").polls == 1
        store._conn.execute("DROP TRIGGER frozen")
        poll(feed, store, classifier, states, at=T0 + timedelta(hours=2))
    state = _state(store, "Desk")
    assert state.polls == 2  # counted from the stored row, not from the unsaved one
    assert state.last_success_at == T0 + timedelta(hours=2)
    assert asyncio.run(states.get("Desk")) == state


# -- group commit -------------------------------------------------------------------------------


def test_concurrent_saves_share_transactions_and_a_bad_row_fails_alone(
    store: SqliteStore,
) -> None:
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)  # SQLite's own statement trace
    states = FeedStates(store)

    def rows(at: datetime) -> list[FeedState]:
        return [counted_success(None, f"F{i:03d}", f"https://f.example/{i}", etag=f'"{i}"',
                                last_modified=None, at=at) for i in range(100)]

    async def save_all(batch: list[FeedState]) -> list[BaseException | None]:
        return await asyncio.gather(*(states.save(s) for s in batch), return_exceptions=True)

    assert asyncio.run(save_all(rows(T0))) == [None] * 100
    commits = sum(1 for s in statements if s.strip().upper() == "COMMIT")
    assert commits <= 3, commits  # the first save alone, then the other 99 together

    store._conn.executescript("""
        CREATE TRIGGER refuse BEFORE UPDATE ON feeds WHEN NEW.name = 'F013'
        BEGIN SELECT RAISE(ABORT, 'refused (test)'); END;
    """)
    later = rows(T0 + timedelta(hours=1))
    results = asyncio.run(save_all(later))
    failed = [i for i, r in enumerate(results) if r is not None]
    assert failed == [13] and "refused" in str(results[13])
    saved = {s.name: s for s in store.all_feed_states()}
    assert all(saved[s.name] == s for s in later if s.name != "F013")
    assert saved["F013"].last_success_at == T0  # its batch rolled back, it alone failed
    assert asyncio.run(states.get("F013")) == saved["F013"]  # re-read, not the unsaved one
    assert asyncio.run(states.get("F042")) == saved["F042"]


# -- an identical 200 body is not parsed again ------------------------------------------------


def test_an_identical_body_is_skipped_but_counted_and_its_ttl_kept(
    store: SqliteStore, classifier: ArticleClassifier
) -> None:
    states = FeedStates(store)
    with_ttl = DESK.replace(b"<channel>", b"<channel><ttl>120</ttl>", 1)
    assert with_ttl != DESK
    with FeedServer() as server:  # no validators at all: every poll is a 200
        feed = Feed("NoCache", server.add_file("/nocache.xml", with_ttl))
        first = poll(feed, store, classifier, states, at=T0)
        assert first.status == "ok" and first.new_items == 4 and first.entries == 4
        later = T0 + timedelta(hours=3)
        same = poll(feed, store, classifier, states, at=later)
        assert same.status == "unchanged" and same.http_status == 200
        assert same.entries == 0 and same.new_items == 0 and same.error is None
        assert same.next_poll_at is not None
        assert same.next_poll_at >= later + timedelta(minutes=120)  # <ttl> still honoured
        state = _state(store, "NoCache")
        assert state.polls == 2 and state.last_success_at == later and state.ttl_seconds == 7200
        assert len(state.arrivals) == 4 and state.body_hash is not None

        changed = with_ttl.replace(b"</channel>", NEW_ITEM + b"</channel>", 1)
        server.add_file("/nocache.xml", changed)
        again = poll(feed, store, classifier, states, at=later + timedelta(hours=3))
    assert again.status == "ok" and again.new_items == 1 and again.entries == 5
    assert _state(store, "NoCache").body_hash != state.body_hash


NEW_ITEM = b"""<item><title>Pyongyang and Moscow sign a new rail accord</title>
<link>https://desk.example/a/new-rail-accord</link><guid>new-rail-accord</guid>
<description>North Korea and Russia agreed on a rail link.</description>
<pubDate>Sun, 01 Jun 2025 10:00:00 GMT</pubDate></item>"""

