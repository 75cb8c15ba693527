"""Stories and their threaded alerts in PostgreSQL, in the article's transaction.

The same rules as ``sqlite_stories`` (one parent per story and destination, later
matches reply in its thread, a matched member's copy echoes as a reply), written
so that two daemons recording two reports of one story at the same moment stay
correct even without ``Store.story_lock``: the story row is an upsert (its row
lock orders the two), and the parent is inserted ``ON CONFLICT`` on the partial
unique index, so the loser of a race becomes a reply instead of failing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from psycopg import Connection

import monitor.store.shared_stories as shared
from monitor.models import (
    Alert,
    Article,
    Receipt,
    StoryEvidence,
    StoryFacts,
    StoryLink,
)
from monitor.store.base import StorySummary
from monitor.store.pg_feedback import feedback_marks
from monitor.store.rows import alert_from_row, alert_payload, dt
from monitor.store.shared_stories import own_story_id

__all__ = [
    "count_members",
    "mark_parent_refreshed",
    "members_evidence",
    "note_parent_posted",
    "own_story_id",
    "parents_to_refresh",
    "queue_alerts",
    "recent_stories",
    "story_of",
]

_PARENTS_TO_REFRESH = shared.PARENTS_TO_REFRESH_SQL.format(p="%s")
_MEMBERS_EVIDENCE = shared.MEMBERS_EVIDENCE_SQL.format(p="%s")
_RECENT_STORIES = shared.RECENT_STORIES_SQL.format(p="%s")


_COUNT_MEMBER = """
    INSERT INTO stories AS s (id, first_seen_at, last_seen_at, first_published_at,
                              last_published_at, representative_article_id)
    VALUES (%(id)s, %(seen)s, %(seen)s, %(pub)s, %(pub)s, %(article)s)
    ON CONFLICT (id) DO UPDATE SET
        last_seen_at = GREATEST(s.last_seen_at, EXCLUDED.last_seen_at),
        first_published_at = LEAST(COALESCE(s.first_published_at, EXCLUDED.first_published_at),
                                   EXCLUDED.first_published_at),
        last_published_at = GREATEST(COALESCE(s.last_published_at, EXCLUDED.last_published_at),
                                     EXCLUDED.last_published_at),
        member_count = s.member_count + 1,
        source_count = (SELECT COUNT(DISTINCT source) FROM articles WHERE story_id = s.id)
"""


def story_of(article: Article, story: StoryLink | None) -> str:
    return story.story_id if story is not None else own_story_id(article.id)


def count_members(conn: Connection, members: Sequence[tuple[Article, StoryLink | None]]) -> None:
    """Count (already inserted) articles in their stories, in order: one pipelined batch.

    A story started in this batch gets its row from its first member; each later one
    bumps the counters (the source count is recomputed from the stored articles, which
    are all inserted before this runs, so it ends the same as counting one by one).
    """
    if not members:
        return
    rows = [{"id": story_of(a, story), "seen": a.first_seen_at, "pub": a.published_at,
             "article": a.id} for a, story in members]
    # by story id (stable: a story's members keep their order), so two daemons lock
    # the story rows they share in the same order and cannot deadlock on them
    rows.sort(key=lambda row: row["id"])
    with conn.cursor() as cur:
        cur.executemany(_COUNT_MEMBER, rows)


def queue_alerts(conn: Connection, article: Article, alert: Alert | Sequence[Alert] | None,
                 story: StoryLink | None) -> None:
    """Queue the (counted) article's alerts, one per destination it is routed to; a
    non-matching copy of a matched member is queued as a reply ("also reported by")."""
    story_id = story_of(article, story)
    queued = [] if alert is None else [alert] if isinstance(alert, Alert) else list(alert)
    echo = not queued
    if echo and story is not None and story.echo is not None \
            and story.near_duplicate_of is not None:
        copied = conn.execute("SELECT match FROM verdicts WHERE article_id = %s",
                              (story.near_duplicate_of,)).fetchone()
        if copied is not None and copied["match"]:
            queued = [story.echo]
    for one in queued:
        _queue(conn, article, one, story_id, echo=echo, seen=article.first_seen_at)


_ALERT_COLUMNS = """
    INSERT INTO alerts (id, article_id, destination, payload, status, attempts,
                        next_attempt_at, created_at, published_at, kind, story_id)
"""
_INSERT_ALERT = _ALERT_COLUMNS + """
    VALUES (%(id)s, %(article)s, %(dest)s, %(payload)s, 'pending', 0, %(seen)s, %(seen)s,
            %(pub)s, %(kind)s, %(story)s)
"""
_INSERT_ECHO = _ALERT_COLUMNS + """
    SELECT %(id)s, %(article)s, %(dest)s, %(payload)s, 'pending', 0, %(seen)s, %(seen)s,
           %(pub)s, 'reply', %(story)s
    WHERE EXISTS (SELECT 1 FROM alerts WHERE story_id = %(story)s AND destination = %(dest)s
                  AND kind = 'parent')
"""
"""A reply only where the story was alerted: an echo of a member that never alerted (too
old) has no thread to add "also reported by" to."""


def _queue(conn: Connection, article: Article, alert: Alert, story_id: str, *,
           echo: bool, seen: datetime) -> None:
    """One destination's alert: the story's parent there, or a reply in its thread."""
    params = {"id": alert.id, "article": alert.article_id, "dest": alert.destination,
              "payload": json.dumps(alert_payload(alert)), "seen": seen,
              "pub": alert.published_at, "story": story_id}
    if echo:
        conn.execute(_INSERT_ECHO, params)
        return
    became_parent = conn.execute(
        _INSERT_ALERT + " ON CONFLICT (story_id, destination) WHERE kind = 'parent' "
        "DO NOTHING", {**params, "kind": "parent"}).rowcount
    if became_parent:
        conn.execute("UPDATE stories SET representative_article_id = %s WHERE id = %s",
                     (article.id, story_id))
    else:  # the story has its parent there (maybe another daemon's, a moment ago)
        conn.execute(_INSERT_ALERT, {**params, "kind": "reply"})


def note_parent_posted(conn: Connection, receipt: Receipt) -> None:
    """Remember where a story's parent went; it shows one report until refreshed."""
    conn.execute(
        """
        UPDATE stories SET parent_channel = %s, parent_message_id = %s, parent_shows = 1
        WHERE id = (SELECT story_id FROM alerts WHERE id = %s AND kind = 'parent')
        """,
        (receipt.details.get("channel"), receipt.message_id, receipt.alert_id),
    )


def parents_to_refresh(conn: Connection, *, limit: int) -> list[tuple[Alert, StoryFacts]]:
    """Posted parents whose story has grown since the parent was last edited."""
    rows = conn.execute(_PARENTS_TO_REFRESH, (limit,)).fetchall()
    found: list[tuple[Alert, StoryFacts]] = []
    for row in rows:
        parent = alert_from_row(row, attempts=row["attempts"], needs_lookup=False,
                                first_attempt_at=dt(row["first_attempt_at"]))
        sources = tuple(r["source"] for r in conn.execute(
            "SELECT source FROM articles WHERE story_id = %s GROUP BY source "
            "ORDER BY MIN(first_seen_at), MIN(seq) LIMIT %s",
            (row["story_id"], shared.MAX_SOURCES_SHOWN)))
        marks = feedback_marks(conn, parent.article_id, story_id=row["story_id"],
                               outlet=parent.source, now=datetime.now(UTC))
        evidence = members_evidence(conn, row["story_id"])
        found.append((parent, shared.refresh_facts(row, sources=sources, marks=marks,
                                                   evidence=evidence)))
    return found


def members_evidence(conn: Connection, story_id: str) -> StoryEvidence | None:
    """As ``sqlite_stories.members_evidence``: every member's verdict in arrival order, a
    member's quote from its alert's payload (only alerted members have one)."""
    return shared.evidence_from_rows(conn.execute(_MEMBERS_EVIDENCE, (story_id,)).fetchall())


def mark_parent_refreshed(conn: Connection, story_id: str, destination: str,
                          member_count: int) -> None:
    """The parent now shows ``member_count`` reports (never moves backwards)."""
    del destination  # one parent edit state per story while there is one destination
    conn.execute("UPDATE stories SET parent_shows = GREATEST(parent_shows, %s) WHERE id = %s",
                 (member_count, story_id))


def recent_stories(conn: Connection, *, since: datetime, limit: int) -> list[StorySummary]:
    rows = conn.execute(_RECENT_STORIES, (since, limit)).fetchall()
    return [shared.story_summary_from_row(row) for row in rows]
