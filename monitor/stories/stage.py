"""The stories stage of the pipeline: articles in, story links out.

Between classification and the alert decision: each candidate article (a match,
or a near miss that may be an edited copy of one) joins an open story or starts
one (``StoryIndex``); every other article is a story of its own. A non-matching
near-duplicate of a member gets an "also reported by" reply candidate, which the
store keeps only if that member was alerted. The index lives in memory, bounded by the window, and
is rebuilt from the store at start-up, so a restart (or a kill -9) assigns the
next article exactly as an uninterrupted run would have.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from monitor.decide import AlertRules, decide_echo
from monitor.models import Article, StoryLink, Verdict
from monitor.stories.index import StoryIndex
from monitor.stories.items import Assignment, StoryItem, item_time, new_story_id

__all__ = ["StoryStage", "story_item"]

MAX_REMEMBERED = 200_000
"""Assignments remembered by article id, so an article whose poll failed to be stored
and is fetched again gets the same story rather than joining its own ghost."""


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
                links.append(StoryLink(new_story_id(article.id), True))
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
