"""Stories and their threaded alerts in SQLite: one concern, in the article's transaction.

Everything here runs inside the transaction that records the article, so an
article, its story membership, the story's counters and its alert (parent or
reply) are stored together or not at all, and a kill -9 at any point leaves
them consistent. "Exactly one parent per (story, destination)" is enforced by a
partial unique index, not only by the check below, so no code path can add a
second one.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime

import monitor.store.shared_stories as shared
from monitor.models import (
    Alert,
    Article,
    Receipt,
    StoryEvidence,
    StoryFacts,
    StoryLink,
    Verdict,
)
from monitor.store.base import StorySummary
from monitor.store.rows import alert_from_row, alert_payload, dt, iso
from monitor.store.shared_stories import own_story_id
from monitor.store.sqlite_feedback import feedback_marks

__all__ = [
    "mark_parent_refreshed",
    "note_parent_posted",
    "own_story_id",
    "parents_to_refresh",
    "recent_stories",
    "record_member",
]

_PARENTS_TO_REFRESH = shared.PARENTS_TO_REFRESH_SQL.format(p="?")
_MEMBERS_EVIDENCE = shared.MEMBERS_EVIDENCE_SQL.format(p="?")
_RECENT_STORIES = shared.RECENT_STORIES_SQL.format(p="?")


def record_member(conn: sqlite3.Connection, article: Article, verdict: Verdict,
                  alert: Alert | Sequence[Alert] | None, story: StoryLink | None) -> None:
    """Count the (already inserted) article in its story and queue its alerts, if any
    (one per destination it is routed to).

    An alert becomes the story's parent when the story has none yet for that
    destination (also when earlier members did not match), else a reply in the
    parent's thread, so each channel has one thread per story. A non-matching
    near-duplicate of a matched member is queued as a reply too ("also reported by").
    """
    story_id = story.story_id if story is not None else own_story_id(article.id)
    published, seen = iso(article.published_at), iso(article.first_seen_at)
    added = conn.execute(
        """
        INSERT OR IGNORE INTO stories (id, first_seen_at, last_seen_at, first_published_at,
                                       last_published_at, representative_article_id)
        VALUES (?, ?, ?, ?, ?, ?)
        """,
        (story_id, seen, seen, published, published, article.id),
    ).rowcount
    if not added:
        conn.execute(
            """
            UPDATE stories SET
                last_seen_at = MAX(last_seen_at, ?),
                first_published_at = MIN(COALESCE(first_published_at, ?), ?),
                last_published_at = MAX(COALESCE(last_published_at, ?), ?),
                member_count = member_count + 1,
                source_count = (SELECT COUNT(DISTINCT source) FROM articles WHERE story_id = ?)
            WHERE id = ?
            """,
            (seen, published, published, published, published, story_id, story_id),
        )
    queued = [] if alert is None else [alert] if isinstance(alert, Alert) else list(alert)
    echo = not queued
    if echo and story is not None and story.echo is not None \
            and story.near_duplicate_of is not None:
        copied = conn.execute("SELECT match FROM verdicts WHERE article_id = ?",
                              (story.near_duplicate_of,)).fetchone()
        if copied is not None and copied[0]:
            queued = [story.echo]
    for one in queued:
        _queue(conn, article, one, story_id, echo=echo, seen=seen)


def _queue(conn: sqlite3.Connection, article: Article, alert: Alert, story_id: str, *,
           echo: bool, seen: str | None) -> None:
    """One destination's alert: the story's parent there, or a reply in its thread."""
    has_parent = conn.execute(
        "SELECT 1 FROM alerts WHERE story_id = ? AND destination = ? AND kind = 'parent'",
        (story_id, alert.destination),
    ).fetchone() is not None
    if not has_parent and echo:
        return  # an echo of a member that was never alerted (too old): nothing to thread
    kind = "reply" if has_parent else "parent"
    if kind == "parent":
        conn.execute("UPDATE stories SET representative_article_id = ? WHERE id = ?",
                     (article.id, story_id))
    conn.execute(
        """
        INSERT INTO alerts (id, article_id, destination, payload, status, attempts,
                            next_attempt_at, created_at, published_at, kind, story_id)
        VALUES (?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?, ?)
        """,
        (alert.id, alert.article_id, alert.destination, json.dumps(alert_payload(alert)),
         seen, seen, iso(alert.published_at), kind, story_id),
    )


def note_parent_posted(conn: sqlite3.Connection, receipt: Receipt) -> None:
    """Remember where a story's parent went; it shows one report until refreshed."""
    conn.execute(
        """
        UPDATE stories SET parent_channel = ?, parent_message_id = ?, parent_shows = 1
        WHERE id = (SELECT story_id FROM alerts WHERE id = ? AND kind = 'parent')
        """,
        (receipt.details.get("channel"), receipt.message_id, receipt.alert_id),
    )


def parents_to_refresh(conn: sqlite3.Connection, *, limit: int) -> list[tuple[Alert, StoryFacts]]:
    """Posted parents whose story has grown since the parent was last edited."""
    rows = conn.execute(_PARENTS_TO_REFRESH, (limit,)).fetchall()
    found: list[tuple[Alert, StoryFacts]] = []
    for row in rows:
        # the parent_* aliases give the parent alert its own thread reference
        parent = alert_from_row(row, attempts=row["attempts"], needs_lookup=False,
                                first_attempt_at=dt(row["first_attempt_at"]))
        sources = tuple(r[0] for r in conn.execute(
            "SELECT source FROM articles WHERE story_id = ? GROUP BY source "
            "ORDER BY MIN(first_seen_at) LIMIT ?", (row["story_id"], shared.MAX_SOURCES_SHOWN)))
        # the analysts' marks ride along: the edit rewrites the whole message
        marks = feedback_marks(conn, parent.article_id, story_id=row["story_id"],
                               outlet=parent.source, now=datetime.now(UTC))
        evidence = members_evidence(conn, row["story_id"])
        found.append((parent, shared.refresh_facts(row, sources=sources, marks=marks,
                                                   evidence=evidence)))
    return found


def members_evidence(conn: sqlite3.Connection, story_id: str) -> StoryEvidence | None:
    """The story's score, event type and quote from every member's verdict (in arrival
    order); a member's quote is in its alert's payload (only alerted members have one)."""
    return shared.evidence_from_rows(conn.execute(_MEMBERS_EVIDENCE, (story_id,)).fetchall())


def mark_parent_refreshed(conn: sqlite3.Connection, story_id: str, destination: str,
                          member_count: int) -> None:
    """The parent now shows ``member_count`` reports (never moves backwards)."""
    del destination  # one parent edit state per story while there is one destination
    conn.execute("UPDATE stories SET parent_shows = MAX(parent_shows, ?) WHERE id = ?",
                 (member_count, story_id))


def recent_stories(conn: sqlite3.Connection, *, since: datetime,
                   limit: int) -> list[StorySummary]:
    rows = conn.execute(_RECENT_STORIES, (iso(since), limit)).fetchall()
    return [shared.story_summary_from_row(row) for row in rows]
