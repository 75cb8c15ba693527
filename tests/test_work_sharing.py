"""Several daemons on one database, in one process and in seconds: the claim loop, the
shared send pace and story catch-up, on the real SQLite store (whose claim, lease and
pace methods have PostgreSQL's semantics). The multi-process PostgreSQL runs are in
``tests/test_pg_daemons.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.alerts.pacing import Pacer
from monitor.claims import ClaimLoop, ClaimOptions, daemon_owner_id, shared_backend
from monitor.feeds import FeedStates
from monitor.models import Article, Feed, FeedState, StoryLink, Verdict
from monitor.schedule import TaskTracker
from monitor.store import open_store
from monitor.store.base import Store
from monitor.store.sqlite import SqliteStore
from monitor.stories import StoryIndex
from monitor.stories.stage import SharedStories, StoryStage
from tests.support.defaults import alert_rules
from tests.support.pg import pg_schema

OPTIONS = ClaimOptions(lease_seconds=30, batch=4, safety_net_seconds=600, max_sleep=0.2,
                       busy_sleep=0.05)


@dataclasses.dataclass
class Polled:
    next_poll_at: datetime | None


class FakeDaemonPolls:
    """Stands in for ``Monitor.poll``: notes who polls what and when, saves the next time."""

    def __init__(self, store: SqliteStore, seconds: float = 0.02) -> None:
        self.store = store
        self.seconds = seconds
        self.active: set[str] = set()
        self.overlaps: list[str] = []
        self.polls: list[tuple[str, str]] = []

    def for_owner(self, owner: str):  # type: ignore[no-untyped-def]
        async def poll(feed: Feed) -> Polled:
            if feed.name in self.active:
                self.overlaps.append(feed.name)
            self.active.add(feed.name)
            try:
                await asyncio.sleep(self.seconds)
                when = datetime.now(UTC) + timedelta(hours=1)
                await asyncio.to_thread(self.store.save_feed_state, FeedState(
                    name=feed.name, url=feed.url, polls=1, next_poll_at=when))
                self.polls.append((owner, feed.name))
                return Polled(when)
            finally:
                self.active.discard(feed.name)
        return poll


def feeds(n: int) -> list[Feed]:
    return [Feed(f"f{i:03d}", f"http://127.0.0.1:9/f{i}.xml") for i in range(n)]


def test_shared_backend_is_postgresql_only() -> None:
    assert shared_backend("postgresql://postgres@127.0.0.1/test")
    assert shared_backend("postgres://u@h/db")
    assert not shared_backend("sqlite:///state/monitor.db")
    host, pid, tag = daemon_owner_id().rsplit(":", 2)
    assert host and pid.isdigit() and len(tag) == 6


async def test_two_daemons_poll_every_feed_once_and_never_the_same_feed_at_once(
        tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "m.db")
    store.migrate()
    try:
        polls = FakeDaemonPolls(store)
        all_feeds = feeds(30)
        stop = asyncio.Event()
        loops = [ClaimLoop(store, all_feeds, poll=polls.for_owner(o), options=OPTIONS,
                           owner=o, tracker=TaskTracker()) for o in ("a:1:x", "b:2:y")]
        runs = [asyncio.create_task(loop.run(stop)) for loop in loops]
        deadline = time.monotonic() + 10
        while len(polls.polls) < 30 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # nothing is due any more: no second poll may start
        stop.set()
        await asyncio.gather(*runs)
        for loop in loops:
            await loop.close()
        polled = [name for _, name in polls.polls]
        assert sorted(polled) == [f.name for f in all_feeds], "each feed exactly once"
        assert polls.overlaps == []
        assert {owner for owner, _ in polls.polls} == {"a:1:x", "b:2:y"}, "work is shared"
        assert all(s.next_poll_at is not None for s in store.all_feed_states())
        # every lease was handed back: a third daemon could claim a due feed at once
        later = datetime.now(UTC) + timedelta(hours=2)
        assert len(store.claim_feeds([f.name for f in all_feeds], owner="c", now=later,
                                     lease_seconds=30, limit=100)) == 30
    finally:
        store.close()


async def test_a_dead_daemons_feeds_are_taken_over_when_its_leases_expire(
        tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "m.db")
    store.migrate()
    try:
        all_feeds = feeds(6)
        names = [f.name for f in all_feeds]
        # The dead daemon claimed everything 31 s ago (leases of 30 s) and never came back.
        taken = store.claim_feeds(names, owner="dead:1:x",
                                  now=datetime.now(UTC) - timedelta(seconds=31),
                                  lease_seconds=30, limit=10)
        assert sorted(taken) == names
        polls = FakeDaemonPolls(store)
        stop = asyncio.Event()
        loop = ClaimLoop(store, all_feeds, poll=polls.for_owner("live"), options=OPTIONS,
                         owner="live:2:y", tracker=TaskTracker())
        run = asyncio.create_task(loop.run(stop))
        deadline = time.monotonic() + 5
        while len(polls.polls) < 6 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        await run
        await loop.close()
        assert sorted(n for _, n in polls.polls) == names
    finally:
        store.close()


async def test_a_live_lease_is_respected_and_a_lost_one_stops_the_poll(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "m.db")
    store.migrate()
    try:
        other = store.claim_feeds(["held"], owner="other", now=datetime.now(UTC),
                                  lease_seconds=60, limit=1)
        assert other == ["held"]
        started = asyncio.Event()

        async def slow_poll(feed: Feed) -> Polled:
            started.set()
            await asyncio.sleep(30)
            return Polled(None)

        stop = asyncio.Event()
        loop = ClaimLoop(store, [*feeds(1), Feed("held", "http://127.0.0.1:9/h.xml")],
                         poll=slow_poll, options=OPTIONS, owner="me", tracker=TaskTracker())
        run = asyncio.create_task(loop.run(stop))
        await asyncio.wait_for(started.wait(), 5)
        assert list(loop.running) == ["f000"], "the feed leased by another daemon is left alone"
        # The lease ran out (a stalled renewal) and another daemon took the feed over.
        store.release_feeds(["f000"], owner="me")
        assert store.claim_feeds(["f000"], owner="thief", now=datetime.now(UTC),
                                 lease_seconds=60, limit=1) == ["f000"]
        assert await loop.renew() == ["f000"]
        await asyncio.sleep(0.05)
        assert "f000" not in loop.running, "a poll whose lease was lost is stopped"
        stop.set()
        await run
        await loop.close()
    finally:
        store.close()


async def test_a_claim_drops_the_cached_state_so_the_poll_reads_the_stored_row(
        tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "m.db")
    store.migrate()
    try:
        states = FeedStates(store)
        await states.save(FeedState(name="f000", url="u", polls=1))
        # Another daemon polls the feed and saves its outcome.
        store.save_feed_state(FeedState(name="f000", url="u", polls=7))
        seen: list[int] = []

        async def poll(feed: Feed) -> Polled:
            state = await states.get(feed.name)
            assert state is not None
            seen.append(state.polls)
            when = datetime.now(UTC) + timedelta(hours=1)
            await states.save(dataclasses.replace(state, polls=state.polls + 1,
                                                  next_poll_at=when))
            return Polled(when)

        stop = asyncio.Event()
        loop = ClaimLoop(store, feeds(1), poll=poll, options=OPTIONS, owner="me",
                         tracker=TaskTracker(), states=states)
        run = asyncio.create_task(loop.run(stop))
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        stop.set()
        await run
        await loop.close()
        assert seen == [7]
    finally:
        store.close()


async def test_the_send_pace_holds_across_daemons(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "m.db")
    store.migrate()
    try:
        rate, sends = 20.0, 12
        daemons = [Pacer(rate, 1, shared=store, key="slack:C0ALERTS1") for _ in range(2)]
        started = time.monotonic()
        await asyncio.gather(*(daemons[i % 2].acquire() for i in range(sends)))
        shared_elapsed = time.monotonic() - started
        # (sends - 1) gaps of 1/rate: two local buckets alone would take half as long.
        assert shared_elapsed >= (sends - 1) / rate * 0.9, shared_elapsed
        local = [Pacer(rate, 1) for _ in range(2)]
        started = time.monotonic()
        await asyncio.gather(*(local[i % 2].acquire() for i in range(sends)))
        assert time.monotonic() - started < shared_elapsed * 0.75
    finally:
        store.close()



async def test_one_daemons_rate_limit_pauses_the_others(tmp_path: Path) -> None:
    """A 429 seen by one daemon holds the channel for every daemon sharing the store:
    Slack limits the channel, so the other daemon's next send waits too, and the first
    sends after the pause do not burst."""
    store = SqliteStore(tmp_path / "m.db")
    store.migrate()
    try:
        refused, other = (Pacer(20.0, 5, shared=store, key="slack:C0ALERTS1")
                          for _ in range(2))
        await refused.hold(0.6)
        started = time.monotonic()
        await other.acquire()
        assert time.monotonic() - started >= 0.5
        started = time.monotonic()
        await other.acquire()
        await other.acquire()
        assert time.monotonic() - started >= 2 / 20.0 * 0.9  # one per interval, no burst
        # without a shared store a hold stays in its own process
        alone, neighbour = Pacer(20.0, 5), Pacer(20.0, 5)
        await alone.hold(0.6)
        started = time.monotonic()
        await neighbour.acquire()
        assert time.monotonic() - started < 0.3
    finally:
        store.close()


WIRE_TITLE = "North Korean cargo ship unloads shells at Russian port of Vostochny, images show"
WIRE_SUMMARY = ("Commercial satellite pictures taken on Monday show a North Korean freighter "
                "moored at Vostochny with containers being moved to a rail yard, the third "
                "such delivery to Russia this month according to analysts.")


def article(article_id: str, source: str, title: str, summary: str, at: datetime) -> Article:
    return Article(id=article_id, feed_name=source, source=source,
                   url=f"https://{source}.example/{article_id}", title=title, summary=summary,
                   published_at=at, first_seen_at=at)


def verdict(article_id: str) -> Verdict:
    return Verdict(article_id, 0.93, True, 0.5, "test", "m1", "arms")


def stage() -> StoryStage:
    return StoryStage(StoryIndex(), rules=alert_rules(), now=lambda: datetime.now(UTC))


async def test_a_second_daemon_puts_a_copy_in_the_first_daemons_story(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "m.db")
    store.migrate()
    try:
        now = datetime.now(UTC).replace(microsecond=0)
        first = article("a1", "wire", WIRE_TITLE, WIRE_SUMMARY, now)
        copy = article("b1", "paper", WIRE_TITLE.replace("images show", "pictures show"),
                       WIRE_SUMMARY, now + timedelta(minutes=2))
        window = timedelta(hours=36)
        daemon_a = SharedStories(stage(), store, window=window)
        daemon_b = SharedStories(stage(), store, window=window)
        await asyncio.to_thread(daemon_a.start)
        await asyncio.to_thread(daemon_b.start)  # both start before either sees anything

        def record(articles: list[Article], verdicts: list[Verdict],
                   links: list[StoryLink]) -> int:
            return sum(store.record_articles(
                [(a, v, None, link) for a, v, link in zip(articles, verdicts, links,
                                                          strict=True)]))

        links_a, _ = await daemon_a.link_and_record([first], [verdict("a1")], record)
        links_b, _ = await daemon_b.link_and_record([copy], [verdict("b1")], record)
        assert links_a[0].is_new
        assert links_b[0].story_id == links_a[0].story_id and not links_b[0].is_new
        # Without the catch-up, daemon B's own index would have started a twin story.
        alone = stage().link([copy], [verdict("b1")])
        assert alone[0].is_new
    finally:
        store.close()


class CountingLock:
    """The store with its story lock counted (SQLite's is a no-op: one daemon per file)."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.turns = 0

    def story_lock(self):  # type: ignore[no-untyped-def]
        self.turns += 1
        return self.store.story_lock()

    def story_members_after(self, position: int, **kwargs):  # type: ignore[no-untyped-def]
        return self.store.story_members_after(position, **kwargs)


async def test_only_story_candidates_take_a_turn_under_the_lock(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "m.db")
    store.migrate()
    try:
        now = datetime.now(UTC).replace(microsecond=0)
        counting = CountingLock(store)
        daemon = SharedStories(stage(), counting, window=timedelta(hours=36))
        await asyncio.to_thread(daemon.start)
        started = counting.turns
        calls: list[list[str]] = []

        def record(articles: list[Article], verdicts: list[Verdict],
                   links: list[StoryLink]) -> int:
            calls.append([a.id for a in articles])
            return sum(store.record_articles(list(zip(articles, verdicts, [None] * len(links),
                                                      links, strict=True))))

        tide = article("t1", "port", "Tide tables for the week", "High water at six.", now)
        quiet = Verdict("t1", 0.01, False, 0.5, "test", "m1")
        links, counts = await daemon.link_and_record([tide], [quiet], record)
        assert counting.turns == started, "a poll without candidates takes no turn"
        assert links[0].is_new and counts == [1]
        wire = article("w1", "wire", WIRE_TITLE, WIRE_SUMMARY, now)
        tide2 = article("t2", "port", "Tide tables, next week", "Low water at noon.", now)
        links, counts = await daemon.link_and_record(
            [tide2, wire], [dataclasses.replace(quiet, article_id="t2"), verdict("w1")], record)
        assert counting.turns == started + 1
        assert calls[-2:] == [["t2"], ["w1"]], "the rest first, outside the lock"
        assert [link.story_id for link in links] == ["s-t2", "s-w1"] and counts == [1, 1]
    finally:
        store.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_story_members_after_reads_each_member_once(tmp_path: Path, backend: str) -> None:
    with contextlib.ExitStack() as stack:
        url = (stack.enter_context(pg_schema("after")) if backend == "postgresql"
               else f"sqlite:///{tmp_path / 'm.db'}")
        store = open_store(url)
        stack.callback(store.close)
        check_story_members_after(store)


def check_story_members_after(store: Store) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    first = article("a1", "wire", WIRE_TITLE, WIRE_SUMMARY, now)
    store.record_articles([(first, verdict("a1"), None, StoryLink("s-a1", True))])
    since = now - timedelta(hours=1)
    members, position = store.story_members_after(0, since=since)
    assert [a.id for a, _ in members] == ["a1"] and position > 0
    assert store.story_members_after(position, since=since) == ([], position)
    second = article("b1", "paper", WIRE_TITLE, WIRE_SUMMARY, now)
    store.record_articles([(second, verdict("b1"), None, StoryLink("s-a1", False))])
    members, later = store.story_members_after(position, since=since)
    assert [(a.id, s) for a, s in members] == [("b1", "s-a1")] and later > position
