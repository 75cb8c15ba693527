"""The web view's row decoding and story-board queries, shared by SQLite and PostgreSQL.

Search differs per backend (FTS5 against ``tsvector``) and stays in ``sqlite_web``
and ``pg_web``; what a found row or a board row turns into, and the board's two
queries, are one text whose only difference is how a value is bound: ``{p}`` is
the placeholder (``?`` or ``%s``), ``{in_ids}`` the test against a list of story
ids (``IN (?, ?, …)`` on SQLite, ``= ANY(%s)`` on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Sequence

from monitor.store.base import ArticleHit, StoryAlert, StoryBoardEntry
from monitor.store.rows import Row, dt, when

__all__ = [
    "BOARD_ALERTS_SQL",
    "BOARD_STORIES_SQL",
    "article_hit_from_row",
    "board_entry_from_row",
    "story_alert_from_row",
]

BOARD_STORIES_SQL = """
    SELECT s.*, a.title, a.url, a.source FROM stories s
    JOIN articles a ON a.id = s.representative_article_id
    WHERE s.last_seen_at >= {p} AND EXISTS (SELECT 1 FROM alerts x WHERE x.story_id = s.id)
    ORDER BY s.last_seen_at DESC LIMIT {p}
"""
"""Recent stories that alerted at least once, newest first."""

BOARD_ALERTS_SQL = """
    SELECT al.id, al.story_id, al.kind, al.destination, al.status, al.delivered_at,
           al.last_error, a.title, a.url, a.source, a.published_at, v.score, v.reason,
           v.event_type, l.label, COALESCE(l.user_id, l.source) AS labelled_by
    FROM alerts al JOIN articles a ON a.id = al.article_id
    JOIN verdicts v ON v.article_id = al.article_id
    LEFT JOIN labels l ON l.article_id = al.article_id
    WHERE al.story_id {in_ids}
    ORDER BY al.kind <> 'parent', a.published_at, al.created_at
"""
"""The alerts of the board's stories, each story's parent first."""


def article_hit_from_row(row: Row) -> ArticleHit:
    """One search result (columns ``id, source, title, url, published_at, score, match,
    event_type, snip``)."""
    return ArticleHit(article_id=row["id"], source=row["source"], title=row["title"],
                      url=row["url"], published_at=when(row["published_at"]),
                      score=row["score"], match=bool(row["match"]),
                      event_type=row["event_type"], snippet=row["snip"] or "")


def story_alert_from_row(row: Row) -> StoryAlert:
    """One alert of a board story, from a ``BOARD_ALERTS_SQL`` row."""
    return StoryAlert(
        alert_id=row["id"], kind=row["kind"], destination=row["destination"],
        status=row["status"], title=row["title"], url=row["url"], source=row["source"],
        published_at=when(row["published_at"]), score=row["score"],
        reason=row["reason"], event_type=row["event_type"],
        delivered_at=dt(row["delivered_at"]), last_error=row["last_error"],
        label=row["label"], labelled_by=row["labelled_by"])


def board_entry_from_row(row: Row, alerts: Sequence[StoryAlert]) -> StoryBoardEntry:
    """One board story, from a ``BOARD_STORIES_SQL`` row and its alerts."""
    return StoryBoardEntry(
        story_id=row["id"], title=row["title"], url=row["url"], source=row["source"],
        first_seen_at=when(row["first_seen_at"]), last_seen_at=when(row["last_seen_at"]),
        member_count=row["member_count"], source_count=row["source_count"],
        alerts=tuple(alerts))
