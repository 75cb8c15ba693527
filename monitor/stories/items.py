"""What goes into story assignment and what comes out: plain frozen data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

How = Literal["new", "near_duplicate", "similar"]

#: A published time this far after we first saw the item is a feed's clock or time
#: zone gone wrong (a day covers every time-zone mistake); we use ``seen_at`` instead.
MAX_FUTURE = timedelta(days=1)
#: A published time this far before we saw it is junk (epoch 0, year 1900).
MAX_PAST = timedelta(days=3650)


@dataclass(frozen=True, slots=True)
class StoryItem:
    """One article as story assignment sees it.

    ``published_at`` is aware UTC or None; ``seen_at`` (when we first saw the
    item) stands in for it when it is missing or absurd, see :func:`item_time`.
    """

    article_id: str
    title: str
    summary: str
    published_at: datetime | None
    source: str
    seen_at: datetime


@dataclass(frozen=True, slots=True)
class Assignment:
    """Which story an item joined, and why.

    ``how`` is "new" (it starts ``story_id``), "near_duplicate" (MinHash Jaccard
    with ``near_duplicate_of`` at least ``duplicate_threshold``) or "similar"
    (TF-IDF cosine, with shared names, against ``similar_to``). ``score`` is the
    Jaccard estimate or the story score; 0.0 for a new story.
    """

    story_id: str
    is_new: bool
    near_duplicate_of: str | None
    similar_to: str | None
    score: float
    how: How


def new_story_id(article_id: str) -> str:
    """Deterministic from the first item, so a replay after a crash gives the same ids."""
    return "s-" + article_id[:40]


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def item_time(item: StoryItem) -> float:
    """The item's time in POSIX seconds: published, unless missing or absurd, else seen.

    Naive datetimes are read as UTC (the pipeline's are always aware; this only
    keeps a careless caller from crashing the stage).
    """
    seen = _utc(item.seen_at)
    if item.published_at is not None:
        published = _utc(item.published_at)
        if seen - MAX_PAST <= published <= seen + MAX_FUTURE:
            return published.timestamp()
    return seen.timestamp()
