"""What the daily digest reads in PostgreSQL, and the record that sends each digest once."""

from __future__ import annotations

from datetime import datetime

from psycopg import Connection

from monitor.store.base import DigestStory, WeekStats
from monitor.store.rows import dt, when

__all__ = ["digest_posted", "digest_stories", "mark_digest_posted", "week_stats"]


def digest_stories(conn: Connection, *, since: datetime, limit: int) -> list[DigestStory]:
    """Stories with a posted parent whose latest report is newer than ``since`` (one row
    per story: the first posted parent when it went to several destinations)."""
    rows = conn.execute(
        """
        SELECT * FROM (
            SELECT DISTINCT ON (s.id) s.id, s.source_count, s.member_count, s.last_seen_at,
                   a.title, a.url, a.source, v.event_type
            FROM stories s
            JOIN alerts p ON p.story_id = s.id AND p.kind = 'parent' AND p.status = 'sent'
            JOIN articles a ON a.id = p.article_id
            LEFT JOIN verdicts v ON v.article_id = p.article_id
            WHERE s.last_seen_at >= %s
            ORDER BY s.id, p.delivered_at, p.id
        ) one
        ORDER BY source_count DESC, last_seen_at DESC
        LIMIT %s
        """,
        (since, limit),
    ).fetchall()
    return [DigestStory(story_id=r["id"], event_type=r["event_type"] or "unspecified",
                        title=r["title"], url=r["url"], source=r["source"],
                        source_count=r["source_count"], member_count=r["member_count"],
                        last_seen_at=when(r["last_seen_at"]))
            for r in rows]


def week_stats(conn: Connection, *, since: datetime) -> WeekStats:
    """Alerts sent, labels given, and the analysts' precision on alerted articles."""
    row = conn.execute(
        """
        SELECT
            (SELECT COUNT(*) FROM alerts WHERE status = 'sent' AND delivered_at >= %(s)s) AS sent,
            (SELECT COUNT(*) FROM label_events WHERE created_at >= %(s)s) AS labels,
            (SELECT COUNT(*) FROM labels l JOIN alerts al ON al.article_id = l.article_id
             WHERE l.created_at >= %(s)s) AS judged,
            (SELECT COALESCE(SUM(l.label), 0) FROM labels l
             JOIN alerts al ON al.article_id = l.article_id
             WHERE l.created_at >= %(s)s) AS relevant
        """, {"s": since}).fetchone()
    return WeekStats(alerts_sent=row["sent"], labels_given=row["labels"],
                     judged_alerts=row["judged"], relevant_alerts=int(row["relevant"]))


def digest_posted(conn: Connection, digest_id: str) -> datetime | None:
    row = conn.execute("SELECT posted_at FROM digests WHERE id = %s", (digest_id,)).fetchone()
    return dt(row["posted_at"]) if row else None


def mark_digest_posted(conn: Connection, digest_id: str, *, destination: str,
                       message_id: str, at: datetime) -> None:
    conn.execute(
        "INSERT INTO digests (id, destination, message_id, posted_at) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (id) DO NOTHING", (digest_id, destination, message_id, at))
