"""Story rules, queries and row decoding that SQLite and PostgreSQL share.

A story's id, how many outlets a parent names, and the queries for a story's
members and its refreshable parent are the same on both backends except for the
placeholder style; the SQL texts below take it as ``{p}`` (``?`` for SQLite,
``%s`` for psycopg), and each backend formats them once at import. Queries whose
text really differs between dialects stay in ``sqlite_stories`` and
``pg_stories``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from monitor.models import FeedbackMark, MemberEvidence, StoryEvidence, StoryFacts
from monitor.store.base import StorySummary
from monitor.store.rows import Row, when
from monitor.story_evidence import story_evidence

__all__ = [
    "MAX_SOURCES_SHOWN",
    "MEMBERS_EVIDENCE_SQL",
    "PARENTS_TO_REFRESH_SQL",
    "RECENT_STORIES_SQL",
    "evidence_from_rows",
    "own_story_id",
    "refresh_facts",
    "story_summary_from_row",
]

MAX_SOURCES_SHOWN = 12
"""Outlets a parent message names; more would wrap the message for no new information."""


def own_story_id(article_id: str) -> str:
    """The id of the story an article starts: derived from it, so a re-run after a
    crash gives the same id, on either backend (``db migrate-from`` copies ids as they are)."""
    return f"s-{article_id}"


PARENTS_TO_REFRESH_SQL = """
    SELECT p.*, p.channel AS parent_channel, p.message_id AS parent_message_id,
           s.member_count AS s_members, s.source_count AS s_sources,
           s.first_seen_at AS s_first, s.last_seen_at AS s_last
    FROM stories s
    JOIN alerts p ON p.story_id = s.id AND p.kind = 'parent' AND p.status = 'sent'
    WHERE s.member_count > s.parent_shows
    ORDER BY s.last_seen_at LIMIT {p}
"""
"""Posted parents whose story has grown since the parent was last edited (the
``parent_*`` aliases give the parent alert its own thread reference)."""

MEMBERS_EVIDENCE_SQL = """
    SELECT a.source, v.score, v.match, v.event_type, al.payload
    FROM articles a
    JOIN verdicts v ON v.article_id = a.id
    LEFT JOIN alerts al ON al.article_id = a.id
    WHERE a.story_id = {p}
    ORDER BY a.first_seen_at, a.id
"""
"""Every member's verdict in arrival order, with its alert's payload (only alerted
members have one: it holds the member's quote)."""

RECENT_STORIES_SQL = """
    SELECT s.*, a.title, a.url, a.source,
           (SELECT status FROM alerts p WHERE p.story_id = s.id AND p.kind = 'parent'
            LIMIT 1) AS parent_status,
           (SELECT COUNT(*) FROM alerts r WHERE r.story_id = s.id AND r.kind = 'reply')
               AS replies
    FROM stories s JOIN articles a ON a.id = s.representative_article_id
    WHERE s.last_seen_at >= {p}
    ORDER BY s.last_seen_at DESC LIMIT {p}
"""


def refresh_facts(row: Row, *, sources: tuple[str, ...], marks: tuple[FeedbackMark, ...],
                  evidence: StoryEvidence | None) -> StoryFacts:
    """What an edited parent shows, from a ``PARENTS_TO_REFRESH_SQL`` row."""
    return StoryFacts(
        story_id=row["story_id"], source_count=row["s_sources"],
        member_count=row["s_members"], first_seen_at=when(row["s_first"]),
        last_seen_at=when(row["s_last"]), sources=sources, marks=marks,
        evidence=evidence,
    )


def evidence_from_rows(rows: Sequence[Row]) -> StoryEvidence | None:
    """The story's evidence from ``MEMBERS_EVIDENCE_SQL`` rows."""
    members = [
        MemberEvidence(score=float(r["score"]), match=bool(r["match"]),
                       event_type=r["event_type"], source=r["source"],
                       why=json.loads(r["payload"]).get("why") if r["payload"] else None)
        for r in rows
    ]
    return story_evidence(members)


def story_summary_from_row(row: Row) -> StorySummary:
    """One line of ``stories`` from a ``RECENT_STORIES_SQL`` row."""
    return StorySummary(
        story_id=row["id"], title=row["title"], url=row["url"], source=row["source"],
        first_seen_at=when(row["first_seen_at"]), last_seen_at=when(row["last_seen_at"]),
        member_count=row["member_count"], source_count=row["source_count"],
        parent_status=row["parent_status"], replies=row["replies"],
    )
