"""What the daily digest reads, and the record that makes each digest go out once."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from monitor.store.base import DigestStory, WeekStats
from monitor.store.rows import dt, iso

__all__ = ["digest_posted", "digest_stories", "mark_digest_posted", "week_stats"]


def digest_stories(conn: sqlite3.Connection, *, since: datetime,
                   limit: int) -> list[DigestStory]:
    """Stories with a posted parent whose latest report is newer than ``since``."""
    rows = conn.execute(
        """
        SELECT s.id, s.source_count, s.member_count, s.last_seen_at,
               a.title, a.url, a.source, v.event_type, v.score
        FROM stories s
        JOIN alerts p ON p.story_id = s.id AND p.kind = 'parent' AND p.status = 'sent'
        JOIN articles a ON a.id = p.article_id
        LEFT JOIN verdicts v ON v.article_id = p.article_id
        WHERE s.last_seen_at >= ?
        GROUP BY s.id
        ORDER BY s.source_count DESC, s.last_seen_at DESC
        LIMIT ?
        """,
        (iso(since), limit),
    ).fetchall()
    return [DigestStory(story_id=r["id"], event_type=r["event_type"] or "unspecified",
                        title=r["title"], url=r["url"], source=r["source"],
                        source_count=r["source_count"], member_count=r["member_count"],
                        last_seen_at=datetime.fromisoformat(r["last_seen_at"]))
            for r in rows]


def week_stats(conn: sqlite3.Connection, *, since: datetime) -> WeekStats:
    """Alerts sent, labels given, and the analysts' precision on alerted articles."""
    sent = conn.execute(
        "SELECT COUNT(*) FROM alerts WHERE status = 'sent' AND delivered_at >= ?",
        (iso(since),)).fetchone()[0]
    labels = conn.execute("SELECT COUNT(*) FROM label_events WHERE created_at >= ?",
                          (iso(since),)).fetchone()[0]
    judged = conn.execute(
        """
        SELECT COUNT(*) AS n, COALESCE(SUM(l.label), 0) AS relevant
        FROM labels l JOIN alerts al ON al.article_id = l.article_id
        WHERE l.created_at >= ?
        """, (iso(since),)).fetchone()
    return WeekStats(alerts_sent=sent, labels_given=labels, judged_alerts=judged["n"],
                     relevant_alerts=judged["relevant"])


def digest_posted(conn: sqlite3.Connection, digest_id: str) -> datetime | None:
    row = conn.execute("SELECT posted_at FROM digests WHERE id = ?", (digest_id,)).fetchone()
    return dt(row["posted_at"]) if row else None


def mark_digest_posted(conn: sqlite3.Connection, digest_id: str, *, destination: str,
                       message_id: str, at: datetime) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO digests (id, destination, message_id, posted_at) "
        "VALUES (?, ?, ?, ?)", (digest_id, destination, message_id, iso(at)))
