"""Work sharing in SQLite: feed leases and the shared send pace (migration 10).

Only one daemon runs per SQLite file (the daemon lock enforces it), so nobody
competes for these rows here. They are real anyway, with the same semantics as
on PostgreSQL, so the daemon has one code path for both backends: every call
runs inside the store's ``BEGIN IMMEDIATE`` transaction, which makes the
read-then-write of a claim or a pace slot atomic against any other writer.

Name lists travel as one JSON parameter (``json_each``): one bound value
whatever the number of feeds, so no chunking under SQLite's parameter limit.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime, timedelta

from monitor.store.base import slot_wait
from monitor.store.rows import dt, iso

__all__ = [
    "claim_feeds",
    "hold_send_slots",
    "next_feed_due",
    "release_feeds",
    "renew_feed_leases",
    "take_send_slot",
]

_NAMES = "(SELECT value FROM json_each(?))"


def claim_feeds(conn: sqlite3.Connection, names: Sequence[str], *, owner: str,
                now: datetime, lease_seconds: float, limit: int) -> list[str]:
    """Lease up to ``limit`` due feeds among ``names`` to ``owner``, never-polled first."""
    if not names or limit <= 0:
        return []
    listed = json.dumps(sorted(set(names)))
    conn.execute(f"INSERT OR IGNORE INTO feeds (name, url) SELECT value, '' FROM {_NAMES}",
                 (listed,))
    now_iso = iso(now)
    chosen = [row[0] for row in conn.execute(
        f"""
        SELECT name FROM feeds
        WHERE name IN {_NAMES}
          AND (next_poll_at IS NULL OR next_poll_at <= ?)
          AND (lease_until IS NULL OR lease_until <= ? OR lease_owner = ?)
        ORDER BY next_poll_at IS NOT NULL, next_poll_at, name
        LIMIT ?
        """,
        (listed, now_iso, now_iso, owner, limit),
    )]
    if chosen:
        conn.execute(
            f"UPDATE feeds SET lease_owner = ?, lease_until = ? WHERE name IN {_NAMES}",
            (owner, iso(now + timedelta(seconds=lease_seconds)), json.dumps(chosen)),
        )
    return chosen


def renew_feed_leases(conn: sqlite3.Connection, names: Sequence[str], *, owner: str,
                      now: datetime, lease_seconds: float) -> list[str]:
    """Extend the leases ``owner`` still holds; a name missing from the result was taken
    over by another daemon (its lease had run out)."""
    if not names:
        return []
    rows = conn.execute(
        f"UPDATE feeds SET lease_until = ? WHERE name IN {_NAMES} AND lease_owner = ? "
        "RETURNING name",
        (iso(now + timedelta(seconds=lease_seconds)), json.dumps(list(names)), owner),
    ).fetchall()
    return sorted(row[0] for row in rows)


def release_feeds(conn: sqlite3.Connection, names: Sequence[str], *, owner: str) -> None:
    """Clear the leases ``owner`` holds (after the poll's state is saved)."""
    if names:
        conn.execute(
            f"UPDATE feeds SET lease_owner = NULL, lease_until = NULL "
            f"WHERE name IN {_NAMES} AND lease_owner = ?",
            (json.dumps(list(names)), owner),
        )


def next_feed_due(conn: sqlite3.Connection, names: Sequence[str],
                  now: datetime) -> datetime | None:
    """When the first of ``names`` can next be claimed: its ``next_poll_at`` (``now`` if it
    was never polled), or the end of another daemon's lease on it, whichever is later.
    None when ``names`` is empty."""
    if not names:
        return None
    listed = json.dumps(sorted(set(names)))
    row = conn.execute(
        f"SELECT COUNT(*) AS n, MIN(MAX(COALESCE(next_poll_at, ?), COALESCE(lease_until, ''))) "
        f"AS due FROM feeds WHERE name IN {_NAMES}",
        (iso(now), listed),
    ).fetchone()
    if row["n"] < len(json.loads(listed)):
        return now  # a configured feed without a row has never been polled
    return dt(row["due"])


def take_send_slot(conn: sqlite3.Connection, destination: str, *, now: float,
                   interval: float, burst: int) -> float:
    """GCRA: reserve the destination's next send slot; the seconds to wait before it."""
    tat = conn.execute(
        """
        INSERT INTO send_pace (destination, tat) VALUES (?, ? + ?)
        ON CONFLICT(destination) DO UPDATE SET tat = MAX(tat, ?) + ?
        RETURNING tat
        """,
        (destination, now, interval, now, interval),
    ).fetchone()[0]
    return slot_wait(tat, now=now, interval=interval, burst=burst)


def hold_send_slots(conn: sqlite3.Connection, destination: str, *, until: float,
                    interval: float, burst: int) -> None:
    """Push the destination's theoretical arrival time to ``until + (burst - 1) ×
    interval``: the next slot then waits until ``until`` and sends resume one per
    ``interval`` (see ``slot_wait``)."""
    target = until + (max(burst, 1) - 1) * interval
    conn.execute(
        """
        INSERT INTO send_pace (destination, tat) VALUES (?, ?)
        ON CONFLICT(destination) DO UPDATE SET tat = MAX(tat, excluded.tat)
        """,
        (destination, target),
    )
