"""Feedback rules and row decoding shared by the SQLite and PostgreSQL feedback SQL.

The two backends differ only in their SQL (placeholders, how times are stored);
what a valid label or mute is, and how a stored label or mute row becomes a
``LabelEvent``, ``Mute`` or ``FeedbackMark``, is one rule, kept here so the two
cannot drift apart.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from monitor.errors import StoreError
from monitor.models import FeedbackMark
from monitor.store.base import LabelEvent, Mute
from monitor.store.rows import Row, dt, when

__all__ = [
    "LABEL_ACTIONS",
    "MUTE_KINDS",
    "check_label",
    "check_mute",
    "feedback_marks",
    "label_event_from_row",
    "label_mark",
    "mute_from_row",
    "mute_mark",
]

MUTE_KINDS = ("outlet", "story")

LABEL_ACTIONS = {1: "relevant", 0: "not_relevant"}
"""The ``FeedbackMark`` action a stored label is shown as."""


class Executes(Protocol):
    """A DB-API connection that runs a statement itself (``sqlite3`` and psycopg 3 both do)."""

    def execute(self, query: Any, params: Any = ..., /) -> Any: ...


def check_label(label: int) -> None:
    """Refuse a label the ``labels`` table's CHECK would refuse, with a readable message."""
    if label not in (0, 1):
        raise StoreError(f"label must be 0 or 1, got {label!r}")


def check_mute(kind: str, value: str, at: datetime, expires_at: datetime) -> None:
    """Refuse a mute that could never apply: unknown kind, no subject, or already expired."""
    if kind not in MUTE_KINDS:
        raise StoreError(f"mute kind must be one of {', '.join(MUTE_KINDS)}, got {kind!r}")
    if not value:
        raise StoreError("a mute needs the outlet or story it applies to")
    if expires_at <= at:
        raise StoreError("a mute must expire after it is created")


def label_event_from_row(row: Row) -> LabelEvent:
    return LabelEvent(row["article_id"], row["label"], row["user_id"], row["source"],
                      when(row["created_at"]))


def mute_from_row(row: Row) -> Mute:
    return Mute(id=row["id"], kind=row["kind"], value=row["value"],
                created_by=row["created_by"], created_at=when(row["created_at"]),
                expires_at=when(row["expires_at"]), removed_at=dt(row["removed_at"]))


def label_mark(row: Row) -> FeedbackMark:
    """The mark of an article's latest label (a row of ``label, user_id, created_at``)."""
    return FeedbackMark(LABEL_ACTIONS[row["label"]], row["user_id"], when(row["created_at"]))


def mute_mark(row: Row, kind: str, value: str) -> FeedbackMark:
    """The mark of a mute in force; only an outlet mute names its subject (a story's is
    the message itself)."""
    mute = mute_from_row(row)
    return FeedbackMark(f"mute_{kind}", mute.created_by, mute.created_at,
                        until=mute.expires_at, subject=value if kind == "outlet" else "")


def feedback_marks(conn: Executes, *, placeholder: str, article_id: str,
                   story_id: str | None, outlet: str | None,
                   now: object) -> tuple[FeedbackMark, ...]:
    """What a parent message shows: its article's latest label and the mutes in force
    for its story and its outlet (latest of each kind).

    ``placeholder`` is the backend's (``?`` or ``%s``) and ``now`` the time as that
    backend stores it (ISO text on SQLite, a datetime on PostgreSQL).
    """
    p = placeholder
    marks: list[FeedbackMark] = []
    latest = conn.execute(
        f"SELECT label, user_id, created_at FROM label_events WHERE article_id = {p} "
        "ORDER BY created_at DESC, id DESC LIMIT 1", (article_id,)).fetchone()
    if latest is not None:
        marks.append(label_mark(latest))
    for kind, value in (("outlet", outlet), ("story", story_id)):
        if not value:
            continue
        row = conn.execute(
            f"SELECT * FROM mutes WHERE kind = {p} AND value = {p} AND removed_at IS NULL "
            f"AND expires_at > {p} ORDER BY created_at DESC, id DESC LIMIT 1",
            (kind, value, now)).fetchone()
        if row is not None:
            marks.append(mute_mark(row, kind, value))
    return tuple(marks)
