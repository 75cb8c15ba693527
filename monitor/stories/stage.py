"""The stories stage of the pipeline: articles in, story links out.

Between classification and the alert decision: each candidate article (a match,
or a near miss that may be an edited copy of one) joins an open story or starts
one (``StoryIndex``); every other article is a story of its own. A non-matching
near-duplicate of a member gets an "also reported by" reply candidate, which the
store keeps only if that member was alerted. The index lives in memory, bounded by the window, and
is rebuilt from the store at start-up, so a restart (or a kill -9) assigns the
next article exactly as an uninterrupted run would have.

Several daemons on one database (``SharedStories``) each hold such an index, and two
of them may see two reports of one story at the same moment. Each one therefore
assigns and records under the store's story lock (a PostgreSQL advisory lock), after
first indexing what the others recorded since its last turn: the second report
then joins the first one's story instead of starting a twin with its own Slack parent.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

from monitor.decide import AlertRules, decide_echo
from monitor.models import Article, StoryLink, Verdict
from monitor.stories.index import StoryIndex
from monitor.stories.items import Assignment, StoryItem, item_time, new_story_id

__all__ = ["SharedStories", "StoryStage", "story_item"]

log = logging.getLogger("monitor.stories")

T = TypeVar("T")

MAX_REMEMBERED = 200_000
"""Assignments remembered by article id, so an article whose poll failed to be stored
and is fetched again gets the same story rather than joining its own ghost."""


def own_story(article: Article) -> StoryLink:
    """The link of an article that is not a candidate: a story of its own."""
    return StoryLink(new_story_id(article.id), True)


def story_item(article: Article) -> StoryItem:
    return StoryItem(article_id=article.id, title=article.title, summary=article.summary,
                     published_at=article.published_at, source=article.source,
                     seen_at=article.first_seen_at)


class StoryStage:
    """Story links for a poll's new articles; one instance per daemon."""

    def __init__(self, index: StoryIndex, *, rules: AlertRules,
                 now: Callable[[], datetime], min_score_fraction: float = 0.5) -> None:
        self.index = index
        self.rules = rules
        self.now = now
        self.min_score_fraction = min_score_fraction
        self._assigned: OrderedDict[str, Assignment] = OrderedDict()
        self._newest: float | None = None

    def restore(self, members: Sequence[tuple[Article, str]]) -> int:
        """Rebuild the index from stored articles (oldest first) with their story ids."""
        items = [story_item(article) for article, _ in members]
        self.index.restore_many(zip(items, (story_id for _, story_id in members), strict=True))
        self._note_newest(items)
        self._expire(self.now())
        return len(members)

    def absorb(self, members: Sequence[tuple[Article, str]]) -> int:
        """Index members recorded by other daemons (oldest first) that this stage does not
        know yet; returns how many were new to it. Remembered as assigned, so that a
        copy of one fetched here later gets its recorded story."""
        todo = [(article, story_id) for article, story_id in members
                if article.id not in self._assigned]
        if not todo:
            return 0
        items = [story_item(article) for article, _ in todo]
        self.index.restore_many(zip(items, (story_id for _, story_id in todo), strict=True))
        for article, story_id in todo:
            self._assigned[article.id] = Assignment(story_id, False, None, None, 0.0, "similar")
        while len(self._assigned) > MAX_REMEMBERED:
            self._assigned.popitem(last=False)
        self._note_newest(items)
        self._expire(self.now())
        return len(todo)

    def is_candidate(self, verdict: Verdict) -> bool:
        """Worth a place in the story index: a match, or close enough to one that it may
        be a lightly edited copy of a match ("also reported by"). Everything else (most
        of a feed: news that names neither country, or names one in passing) is a story
        of its own, which keeps the stage's cost to a small share of a poll's."""
        return verdict.match or verdict.score >= verdict.threshold * self.min_score_fraction

    def link(self, articles: Sequence[Article], verdicts: Sequence[Verdict]) -> list[StoryLink]:
        """Story links in order (later articles of the batch may join earlier ones)."""
        now = self.now()
        todo = [(a, v) for a, v in zip(articles, verdicts, strict=True)
                if self.is_candidate(v) and a.id not in self._assigned]
        items = [story_item(a) for a, _ in todo]
        if items:
            fresh = self.index.assign_many(items)
            for (article, _), assignment in zip(todo, fresh, strict=True):
                self._assigned[article.id] = assignment
            while len(self._assigned) > MAX_REMEMBERED:
                self._assigned.popitem(last=False)
        links = []
        for article, verdict in zip(articles, verdicts, strict=True):
            assignment = self._assigned.get(article.id)
            if assignment is None:  # not a candidate: a story of its own
                links.append(own_story(article))
                continue
            echo = None
            if assignment.near_duplicate_of is not None:
                echo = decide_echo(article, verdict, self.rules, now=now)
            links.append(StoryLink(assignment.story_id, assignment.is_new,
                                   assignment.near_duplicate_of, echo))
        self._note_newest(items)
        self._expire(now)
        return links

    def _note_newest(self, items: Sequence[StoryItem]) -> None:
        for item in items:
            when = item_time(item)
            self._newest = when if self._newest is None else max(self._newest, when)

    def _expire(self, now: datetime) -> None:
        """Forget what left the window behind the newest item seen (capped at now).

        The newest item, not the clock: a replay of last year's news must cluster
        like live news, and live, the newest item is about now anyway.
        """
        if self._newest is None:
            return
        newest = min(self._newest, now.timestamp())
        self.index.expire(datetime.fromtimestamp(newest, UTC))


class StoryStore(Protocol):
    """What ``SharedStories`` needs of the store (``monitor.store.base.Store``)."""

    def story_lock(self) -> AbstractContextManager[object]: ...

    def story_members_after(self, position: int, *, since: datetime,
                            min_score_fraction: float = 0.0,
                            ) -> tuple[list[tuple[Article, str]], int]: ...


class SharedStories:
    """A ``StoryStage`` for a daemon that shares its database with other daemons.

    One turn = take the store's story lock, index what the others recorded since
    this daemon's last turn, assign this poll's articles, record them, release.
    Why a lock rather than only unique constraints: assignment is a similarity
    search in each daemon's memory, not a key the database could check; without
    the lock, two daemons that see two reports of one story at once would both start
    it. The unique index on one parent per (story, destination) stays underneath as
    a second line (it stops a duplicate parent if the lock were ever bypassed), but
    by itself it would only reject the second parent, not put the second report in
    the first one's thread.

    Turns are serialised in the process too (an ``asyncio.Lock``), so a daemon holds
    at most one database connection waiting for the advisory lock; the turn itself
    runs in a worker thread (the store is synchronous).
    """

    def __init__(self, stage: StoryStage, store: StoryStore, *, window: timedelta) -> None:
        self.stage = stage
        self.store = store
        self.window = window
        self._position = 0
        """The last member read, by insertion order. Candidates are recorded only in
        turns, so everything after it is what the others recorded since: no time
        margin to guess (an article's first_seen_at is its parse time, which may lie
        well before the turn that records it)."""
        self._turn = asyncio.Lock()
        self._thread_guard = threading.Lock()

    def catch_up(self) -> int:
        """Index the members recorded since the last turn (the whole window the first
        time: this is also the start-up restore). Call with the story lock held."""
        members, self._position = self.store.story_members_after(
            self._position, since=self.stage.now() - self.window,
            min_score_fraction=self.stage.min_score_fraction)
        return self.stage.absorb(members)

    def start(self) -> int:
        """The start-up restore, under the lock (blocking: call in a thread)."""
        with self._thread_guard, self.store.story_lock():
            return self.catch_up()

    async def link_and_record(
        self, articles: list[Article], verdicts: list[Verdict],
        record: Callable[[list[Article], list[Verdict], list[StoryLink]], T],
    ) -> tuple[list[StoryLink], list[T]]:
        """Assign and record one poll's articles; returns the links (in order) and what
        each ``record`` call returned.

        Only candidates (``StoryStage.is_candidate``) can join or start a shared story:
        they are assigned and recorded in a turn under the lock. The rest (most of a
        feed) are stories of their own and are recorded first, outside it, so the lock
        is held for a handful of articles rather than a whole feed, and a poll without
        candidates takes no turn at all. Store calls run in worker threads.
        """
        alone = [i for i, v in enumerate(verdicts) if not self.stage.is_candidate(v)]
        shared = [i for i, v in enumerate(verdicts) if self.stage.is_candidate(v)]
        links: list[StoryLink | None] = [None] * len(articles)
        results: list[T] = []
        if alone:
            own = [own_story(articles[i]) for i in alone]
            results.append(await asyncio.to_thread(
                record, [articles[i] for i in alone], [verdicts[i] for i in alone], own))
            for i, link in zip(alone, own, strict=True):
                links[i] = link
        if shared:
            async with self._turn:
                turn_links, result = await asyncio.to_thread(
                    self._locked_turn, [articles[i] for i in shared],
                    [verdicts[i] for i in shared], record)
            results.append(result)
            for i, link in zip(shared, turn_links, strict=True):
                links[i] = link
        return [link for link in links if link is not None], results

    def _locked_turn(self, articles: list[Article], verdicts: list[Verdict],
                     record: Callable[[list[Article], list[Verdict], list[StoryLink]], T],
                     ) -> tuple[list[StoryLink], T]:
        with self._thread_guard:
            asked = time.perf_counter()
            with self.store.story_lock():
                locked = time.perf_counter()
                absorbed = self.catch_up()
                caught_up = time.perf_counter()
                links = self.stage.link(articles, verdicts)
                linked = time.perf_counter()
                result = record(articles, verdicts, links)
            done = time.perf_counter()
        # The lock's hold time is what caps the daemons' combined rate of new candidates.
        log.debug("story turn: waited %.0f ms for the lock, held it %.0f ms (catch-up of %d "
                  "article(s) %.0f ms, assignment %.0f ms, recording %d article(s) %.0f ms)",
                  (locked - asked) * 1e3, (done - locked) * 1e3, absorbed,
                  (caught_up - locked) * 1e3, (linked - caught_up) * 1e3, len(articles),
                  (done - linked) * 1e3)
        return links, result
