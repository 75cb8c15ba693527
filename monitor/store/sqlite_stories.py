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

from monitor.models import (
    Alert,
    Article,
    MemberEvidence,
    Receipt,
    StoryEvidence,
    StoryFacts,
    StoryLink,
    Verdict,
)
from monitor.store.base import StorySummary
from monitor.store.rows import alert_from_row, alert_payload, dt, iso
from monitor.store.sqlite_feedback import feedback_marks
from monitor.story_evidence import story_evidence

__all__ = [
    "mark_parent_refreshed",
    "note_parent_posted",
    "own_story_id",
    "parents_to_refresh",
    "recent_stories",
    "record_member",
]

MAX_SOURCES_SHOWN = 12


def own_story_id(article_id: str) -> str:
    """The id of the story an article starts: derived from it, so a re-run after a
    crash gives the same id."""
    return f"s-{article_id}"


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
    rows = conn.execute(
        """
        SELECT p.*, p.channel AS parent_channel, p.message_id AS parent_message_id,
               s.member_count AS s_members, s.source_count AS s_sources,
               s.first_seen_at AS s_first, s.last_seen_at AS s_last
        FROM stories s
        JOIN alerts p ON p.story_id = s.id AND p.kind = 'parent' AND p.status = 'sent'
        WHERE s.member_count > s.parent_shows
        ORDER BY s.last_seen_at LIMIT ?
        """,
        (limit,),
    ).fetchall()
    found: list[tuple[Alert, StoryFacts]] = []
    for row in rows:
        # the parent_* aliases give the parent alert its own thread reference
        parent = alert_from_row(row, attempts=row["attempts"], needs_lookup=False,
                                first_attempt_at=dt(row["first_attempt_at"]))
        sources = tuple(r[0] for r in conn.execute(
            "SELECT source FROM articles WHERE story_id = ? GROUP BY source "
            "ORDER BY MIN(first_seen_at) LIMIT ?", (row["story_id"], MAX_SOURCES_SHOWN)))
        # the analysts' marks ride along: the edit rewrites the whole message
        marks = feedback_marks(conn, parent.article_id, story_id=row["story_id"],
                               outlet=parent.source, now=datetime.now(UTC))
        facts = StoryFacts(
            story_id=row["story_id"], source_count=row["s_sources"],
            member_count=row["s_members"], first_seen_at=datetime.fromisoformat(row["s_first"]),
            last_seen_at=datetime.fromisoformat(row["s_last"]), sources=sources, marks=marks,
            evidence=members_evidence(conn, row["story_id"]),
        )
        found.append((parent, facts))
    return found


def members_evidence(conn: sqlite3.Connection, story_id: str) -> StoryEvidence | None:
    """The story's score, event type and quote from every member's verdict (in arrival
    order); a member's quote is in its alert's payload (only alerted members have one)."""
    rows = conn.execute(
        """
        SELECT a.source, v.score, v.match, v.event_type, al.payload
        FROM articles a
        JOIN verdicts v ON v.article_id = a.id
        LEFT JOIN alerts al ON al.article_id = a.id
        WHERE a.story_id = ?
        ORDER BY a.first_seen_at, a.id
        """,
        (story_id,),
    ).fetchall()
    members = []
    for source, score, match, event_type, payload in rows:
        why = json.loads(payload).get("why") if payload else None
        members.append(MemberEvidence(score=float(score), match=bool(match),
                                      event_type=event_type, source=source, why=why))
    return story_evidence(members)


def mark_parent_refreshed(conn: sqlite3.Connection, story_id: str, destination: str,
                          member_count: int) -> None:
    """The parent now shows ``member_count`` reports (never moves backwards)."""
    del destination  # one parent edit state per story while there is one destination
    conn.execute("UPDATE stories SET parent_shows = MAX(parent_shows, ?) WHERE id = ?",
                 (member_count, story_id))


def recent_stories(conn: sqlite3.Connection, *, since: datetime,
                   limit: int) -> list[StorySummary]:
    rows = conn.execute(
        """
        SELECT s.*, a.title, a.url, a.source,
               (SELECT status FROM alerts p WHERE p.story_id = s.id AND p.kind = 'parent'
                LIMIT 1) AS parent_status,
               (SELECT COUNT(*) FROM alerts r WHERE r.story_id = s.id AND r.kind = 'reply')
                   AS replies
        FROM stories s JOIN articles a ON a.id = s.representative_article_id
        WHERE s.last_seen_at >= ?
        ORDER BY s.last_seen_at DESC LIMIT ?
        """,
        (iso(since), limit),
    ).fetchall()
    return [
        StorySummary(
            story_id=row["id"], title=row["title"], url=row["url"], source=row["source"],
            first_seen_at=datetime.fromisoformat(row["first_seen_at"]),
            last_seen_at=datetime.fromisoformat(row["last_seen_at"]),
            member_count=row["member_count"], source_count=row["source_count"],
            parent_status=row["parent_status"], replies=row["replies"],
        )
        for row in rows
    ]
