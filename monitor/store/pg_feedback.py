"""Analysts' feedback in PostgreSQL: label history and mutes (see ``sqlite_feedback`` for
why two label tables and why mutes are rows with an expiry; the rules are the same)."""

from __future__ import annotations

from datetime import datetime

from psycopg import Connection

from monitor.errors import StoreError
from monitor.models import FeedbackMark
from monitor.store.base import LabelEvent, Mute
from monitor.store.shared_feedback import (
    check_label,
    check_mute,
    label_event_from_row,
    mute_from_row,
)
from monitor.store.shared_feedback import (
    feedback_marks as shared_marks,
)

__all__ = [
    "active_mutes",
    "add_label",
    "add_mute",
    "feedback_marks",
    "label_history",
    "list_mutes",
    "remove_mute",
]


def add_label(conn: Connection, article_id: str, label: int, *, source: str,
              at: datetime, user_id: str | None) -> None:
    """Append to the history and make it the article's current label (same transaction)."""
    check_label(label)
    if conn.execute("SELECT 1 FROM articles WHERE id = %s", (article_id,)).fetchone() is None:
        raise StoreError(f"no stored article with id {article_id!r}")
    conn.execute(
        "INSERT INTO label_events (article_id, label, user_id, source, created_at) "
        "VALUES (%s, %s, %s, %s, %s)",
        (article_id, label, user_id, source, at),
    )
    conn.execute(
        """
        INSERT INTO labels (article_id, label, source, created_at, user_id)
        VALUES (%s, %s, %s, %s, %s)
        ON CONFLICT (article_id) DO UPDATE SET label = EXCLUDED.label,
            source = EXCLUDED.source, created_at = EXCLUDED.created_at,
            user_id = EXCLUDED.user_id
        """,
        (article_id, label, source, at, user_id),
    )


def label_history(conn: Connection, article_id: str) -> list[LabelEvent]:
    rows = conn.execute(
        "SELECT * FROM label_events WHERE article_id = %s ORDER BY created_at, id",
        (article_id,)).fetchall()
    return [label_event_from_row(r) for r in rows]


def add_mute(conn: Connection, kind: str, value: str, *, created_by: str, at: datetime,
             expires_at: datetime) -> Mute:
    check_mute(kind, value, at, expires_at)
    row = conn.execute(
        "INSERT INTO mutes (kind, value, created_by, created_at, expires_at) "
        "VALUES (%s, %s, %s, %s, %s) RETURNING *",
        (kind, value, created_by, at, expires_at)).fetchone()
    return mute_from_row(row)


def active_mutes(conn: Connection, now: datetime) -> list[Mute]:
    rows = conn.execute(
        "SELECT * FROM mutes WHERE removed_at IS NULL AND expires_at > %s ORDER BY id",
        (now,)).fetchall()
    return [mute_from_row(r) for r in rows]


def remove_mute(conn: Connection, mute_id: int, *, at: datetime) -> bool:
    return conn.execute(
        "UPDATE mutes SET removed_at = %s WHERE id = %s AND removed_at IS NULL",
        (at, mute_id)).rowcount > 0


def list_mutes(conn: Connection) -> list[Mute]:
    rows = conn.execute("SELECT * FROM mutes ORDER BY id DESC").fetchall()
    return [mute_from_row(r) for r in rows]


def feedback_marks(conn: Connection, article_id: str, *, story_id: str | None,
                   outlet: str | None, now: datetime) -> tuple[FeedbackMark, ...]:
    """The article's latest label and the latest mute in force for its outlet and story."""
    return shared_marks(conn, placeholder="%s", article_id=article_id, story_id=story_id,
                        outlet=outlet, now=now)
