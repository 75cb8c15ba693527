"""Analysts' feedback in SQLite: label history and mutes, kept apart from the outbox SQL.

Why two label tables: ``labels`` stays the *latest* label per article (what
``train --with-feedback`` learns from, unchanged), while ``label_events`` keeps
every press with who made it, so a relabel never loses who said what. Both are
written in one transaction, so they cannot disagree.

Mutes are rows with an expiry rather than flags on feeds or stories: a mute runs
out by itself, an operator can lift it (``removed_at``), and the history of who
muted what stays visible in ``mutes list``.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from monitor.errors import StoreError
from monitor.models import FeedbackMark
from monitor.store.base import LabelEvent, Mute
from monitor.store.rows import iso
from monitor.store.shared_feedback import (
    MUTE_KINDS,
    check_label,
    check_mute,
    label_event_from_row,
    mute_from_row,
)
from monitor.store.shared_feedback import (
    feedback_marks as shared_marks,
)

__all__ = [
    "MUTE_KINDS",
    "active_mutes",
    "add_label",
    "add_mute",
    "feedback_marks",
    "label_history",
    "list_mutes",
    "remove_mute",
]


def add_label(conn: sqlite3.Connection, article_id: str, label: int, *, source: str,
              at: datetime, user_id: str | None) -> None:
    """Append to the history and make it the article's current label (same transaction)."""
    check_label(label)
    if conn.execute("SELECT 1 FROM articles WHERE id = ?", (article_id,)).fetchone() is None:
        raise StoreError(f"no stored article with id {article_id!r}")
    conn.execute(
        "INSERT INTO label_events (article_id, label, user_id, source, created_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (article_id, label, user_id, source, iso(at)),
    )
    conn.execute(
        """
        INSERT INTO labels (article_id, label, source, created_at, user_id) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT(article_id) DO UPDATE SET label = excluded.label, source = excluded.source,
            created_at = excluded.created_at, user_id = excluded.user_id
        """,
        (article_id, label, source, iso(at), user_id),
    )


def label_history(conn: sqlite3.Connection, article_id: str) -> list[LabelEvent]:
    """Every label given to the article, oldest first."""
    rows = conn.execute(
        "SELECT * FROM label_events WHERE article_id = ? ORDER BY created_at, id", (article_id,)
    ).fetchall()
    return [label_event_from_row(r) for r in rows]


def add_mute(conn: sqlite3.Connection, kind: str, value: str, *, created_by: str,
             at: datetime, expires_at: datetime) -> Mute:
    check_mute(kind, value, at, expires_at)
    cursor = conn.execute(
        "INSERT INTO mutes (kind, value, created_by, created_at, expires_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (kind, value, created_by, iso(at), iso(expires_at)),
    )
    row = conn.execute("SELECT * FROM mutes WHERE id = ?", (cursor.lastrowid,)).fetchone()
    return mute_from_row(row)


def active_mutes(conn: sqlite3.Connection, now: datetime) -> list[Mute]:
    """Mutes in force at ``now``: not lifted and not yet expired."""
    rows = conn.execute(
        "SELECT * FROM mutes WHERE removed_at IS NULL AND expires_at > ? ORDER BY id",
        (iso(now),),
    ).fetchall()
    return [mute_from_row(r) for r in rows]


def remove_mute(conn: sqlite3.Connection, mute_id: int, *, at: datetime) -> bool:
    """Lift a mute (kept for the record); False if there is no such mute or it was lifted."""
    return conn.execute(
        "UPDATE mutes SET removed_at = ? WHERE id = ? AND removed_at IS NULL",
        (iso(at), mute_id),
    ).rowcount > 0


def list_mutes(conn: sqlite3.Connection) -> list[Mute]:
    """Every mute ever made, newest first (the ``mutes list`` command)."""
    rows = conn.execute("SELECT * FROM mutes ORDER BY id DESC").fetchall()
    return [mute_from_row(r) for r in rows]


def feedback_marks(conn: sqlite3.Connection, article_id: str, *, story_id: str | None,
                   outlet: str | None, now: datetime) -> tuple[FeedbackMark, ...]:
    """The article's latest label and the latest mute in force for its outlet and story."""
    return shared_marks(conn, placeholder="?", article_id=article_id, story_id=story_id,
                        outlet=outlet, now=iso(now))
