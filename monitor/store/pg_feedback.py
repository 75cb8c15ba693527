"""Analysts' feedback in PostgreSQL: label history and mutes (see ``sqlite_feedback`` for
why two label tables and why mutes are rows with an expiry; the rules are the same)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import Connection

from monitor.errors import StoreError
from monitor.models import FeedbackMark
from monitor.store.base import LabelEvent, Mute
from monitor.store.rows import dt, when
from monitor.store.sqlite_feedback import MUTE_KINDS

__all__ = [
    "active_mutes",
    "add_label",
    "add_mute",
    "feedback_marks",
    "label_history",
    "list_mutes",
    "remove_mute",
]

_LABEL_ACTIONS = {1: "relevant", 0: "not_relevant"}


def add_label(conn: Connection, article_id: str, label: int, *, source: str,
              at: datetime, user_id: str | None) -> None:
    """Append to the history and make it the article's current label (same transaction)."""
    if label not in (0, 1):
        raise StoreError(f"label must be 0 or 1, got {label!r}")
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
    return [LabelEvent(r["article_id"], r["label"], r["user_id"], r["source"],
                       when(r["created_at"])) for r in rows]


def _mute(row: dict[str, Any]) -> Mute:
    return Mute(id=row["id"], kind=row["kind"], value=row["value"],
                created_by=row["created_by"], created_at=when(row["created_at"]),
                expires_at=when(row["expires_at"]), removed_at=dt(row["removed_at"]))


def add_mute(conn: Connection, kind: str, value: str, *, created_by: str, at: datetime,
             expires_at: datetime) -> Mute:
    if kind not in MUTE_KINDS:
        raise StoreError(f"mute kind must be one of {', '.join(MUTE_KINDS)}, got {kind!r}")
    if not value:
        raise StoreError("a mute needs the outlet or story it applies to")
    if expires_at <= at:
        raise StoreError("a mute must expire after it is created")
    row = conn.execute(
        "INSERT INTO mutes (kind, value, created_by, created_at, expires_at) "
        "VALUES (%s, %s, %s, %s, %s) RETURNING *",
        (kind, value, created_by, at, expires_at)).fetchone()
    return _mute(row)


def active_mutes(conn: Connection, now: datetime) -> list[Mute]:
    rows = conn.execute(
        "SELECT * FROM mutes WHERE removed_at IS NULL AND expires_at > %s ORDER BY id",
        (now,)).fetchall()
    return [_mute(r) for r in rows]


def remove_mute(conn: Connection, mute_id: int, *, at: datetime) -> bool:
    return conn.execute(
        "UPDATE mutes SET removed_at = %s WHERE id = %s AND removed_at IS NULL",
        (at, mute_id)).rowcount > 0


def list_mutes(conn: Connection) -> list[Mute]:
    return [_mute(r) for r in conn.execute("SELECT * FROM mutes ORDER BY id DESC").fetchall()]


def feedback_marks(conn: Connection, article_id: str, *, story_id: str | None,
                   outlet: str | None, now: datetime) -> tuple[FeedbackMark, ...]:
    """The article's latest label and the latest mute in force for its outlet and story."""
    marks: list[FeedbackMark] = []
    latest = conn.execute(
        "SELECT label, user_id, created_at FROM label_events WHERE article_id = %s "
        "ORDER BY created_at DESC, id DESC LIMIT 1", (article_id,)).fetchone()
    if latest is not None:
        marks.append(FeedbackMark(_LABEL_ACTIONS[latest["label"]], latest["user_id"],
                                  when(latest["created_at"])))
    for kind, value in (("outlet", outlet), ("story", story_id)):
        if not value:
            continue
        row = conn.execute(
            "SELECT * FROM mutes WHERE kind = %s AND value = %s AND removed_at IS NULL "
            "AND expires_at > %s ORDER BY created_at DESC, id DESC LIMIT 1",
            (kind, value, now)).fetchone()
        if row is not None:
            mute = _mute(row)
            marks.append(FeedbackMark(f"mute_{kind}", mute.created_by, mute.created_at,
                                      until=mute.expires_at,
                                      subject=value if kind == "outlet" else ""))
    return tuple(marks)
