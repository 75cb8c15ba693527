"""Rows to dataclasses and back, for the SQL backends.

Kept apart from the SQL itself so every module that reads or writes the same
tables (articles, the outbox, stories) decodes them one way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from monitor.models import Alert, Article, ThreadRef

Row = Mapping[str, Any]
"""An ``sqlite3.Row`` or a psycopg ``dict_row``: both index by column name."""

__all__ = [
    "FEED_COLUMNS",
    "alert_from_row",
    "alert_payload",
    "article_from_row",
    "dt",
    "iso",
    "save_feed_sql",
    "when",
]

FEED_COLUMNS = (
    "name", "url", "etag", "last_modified", "last_success_at", "last_attempt_at",
    "last_error", "error_count", "consecutive_errors", "polls", "next_poll_at",
    "last_new_item_at", "arrivals", "moved_to", "flagged", "disabled", "body_hash",
    "ttl_seconds",
)
"""A feed's row as ``save_feed_states`` writes it, in the order of its value tuples."""


def save_feed_sql(placeholder: str) -> str:
    """The upsert of one feed's row (``placeholder``: ``?`` or ``%s``): every column but
    the lease, so saving a poll's outcome never touches who holds the feed. SQLite and
    PostgreSQL share the ``ON CONFLICT … DO UPDATE`` syntax."""
    return (
        f"INSERT INTO feeds ({', '.join(FEED_COLUMNS)}) "
        f"VALUES ({', '.join([placeholder] * len(FEED_COLUMNS))}) "
        "ON CONFLICT (name) DO UPDATE SET "
        + ", ".join(f"{c} = EXCLUDED.{c}" for c in FEED_COLUMNS[1:])
    )


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def dt(value: str | datetime | None) -> datetime | None:
    """A stored time: ISO text (SQLite) or an aware datetime (PostgreSQL's timestamptz)."""
    if value is None or value == "":
        return None
    return when(value)


def when(value: str | datetime) -> datetime:
    """A NOT NULL stored time, whichever backend read it; PostgreSQL's are shown in UTC."""
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromisoformat(value)


def alert_payload(alert: Alert) -> dict[str, object]:
    """What an alert shows, frozen when it is queued (the article may change later)."""
    return {
        "title": alert.title,
        "url": alert.url,
        "source": alert.source,
        "published_at": iso(alert.published_at),
        "score": alert.score,
        "reason": alert.reason,
        "snippet": alert.snippet,
        "event_type": alert.event_type,
        "why": alert.why,
        "lang": alert.lang,
    }


def alert_from_row(row: Row, *, attempts: int, needs_lookup: bool,
                   first_attempt_at: datetime | None) -> Alert:
    """An outbox row; a claimed reply's row also carries its parent's channel and ts."""
    payload = json.loads(row["payload"])
    keys = row.keys()
    thread = None
    if "parent_message_id" in keys and row["parent_message_id"]:
        thread = ThreadRef(row["parent_channel"] or "", row["parent_message_id"])
    return Alert(
        id=row["id"],
        article_id=row["article_id"],
        destination=row["destination"],
        title=payload["title"],
        url=payload["url"],
        source=payload["source"],
        published_at=datetime.fromisoformat(payload["published_at"]),
        score=payload["score"],
        reason=payload["reason"],
        snippet=payload["snippet"],
        event_type=payload.get("event_type"),
        why=payload.get("why"),
        lang=payload.get("lang"),
        attempts=attempts,
        needs_lookup=needs_lookup,
        first_attempt_at=first_attempt_at,
        kind=row["kind"] if "kind" in keys else "parent",
        story_id=row["story_id"] if "story_id" in keys else None,
        thread=thread,
    )


def article_from_row(row: Row) -> Article:
    return Article(
        id=row["id"],
        feed_name=row["feed_name"],
        source=row["source"],
        url=row["url"],
        title=row["title"],
        summary=row["summary"],
        published_at=when(row["published_at"]),
        first_seen_at=when(row["first_seen_at"]),
        guid=row["guid"],
    )
