"""Work sharing between daemons in PostgreSQL: feed leases, the outbox claim, the
shared send pace.

Every claim is ``SELECT … FOR UPDATE SKIP LOCKED`` then ``UPDATE`` in one
transaction: a row another daemon is claiming right now is skipped instead of
waited for (no daemon blocks on another) and can never be handed out twice, and
a crashed daemon's leases simply run out. The send pace is one upsert
(``INSERT … ON CONFLICT DO UPDATE … RETURNING``): the row lock makes the
read-modify-write of the theoretical arrival time atomic across machines.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from psycopg import Connection

from monitor.models import Alert
from monitor.store.base import slot_wait
from monitor.store.rows import alert_from_row, dt

__all__ = [
    "add_missing_feeds",
    "claim_due_alerts",
    "claim_feeds",
    "hold_send_slots",
    "next_feed_due",
    "release_feeds",
    "renew_feed_leases",
    "take_send_slot",
]


def add_missing_feeds(conn: Connection, names: Sequence[str]) -> None:
    """Give never-polled feeds a minimal row, so they can be locked and leased.

    Run in its own short transaction before the claim (and only for names without a
    row, in sorted order): inserting inside the claim would make two daemons' first
    claims wait on each other's uncommitted rows.
    """
    conn.execute(
        """
        INSERT INTO feeds (name, url)
        SELECT n, '' FROM unnest(%s::text[]) AS n
        WHERE NOT EXISTS (SELECT 1 FROM feeds f WHERE f.name = n)
        ORDER BY n
        ON CONFLICT (name) DO NOTHING
        """,
        (sorted(set(names)),),
    )


def claim_feeds(conn: Connection, names: Sequence[str], *, owner: str, now: datetime,
                lease_seconds: float, limit: int) -> list[str]:
    """Lease up to ``limit`` due, unleased feeds among ``names`` to ``owner`` (in the
    caller's transaction), never-polled and longest-overdue first."""
    chosen = [row["name"] for row in conn.execute(
        """
        SELECT name FROM feeds
        WHERE name = ANY(%(names)s)
          AND (next_poll_at IS NULL OR next_poll_at <= %(now)s)
          AND (lease_until IS NULL OR lease_until <= %(now)s OR lease_owner = %(owner)s)
        ORDER BY next_poll_at NULLS FIRST, name
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
        """,
        {"names": list(names), "now": now, "owner": owner, "limit": limit},
    )]
    if chosen:
        conn.execute("UPDATE feeds SET lease_owner = %s, lease_until = %s WHERE name = ANY(%s)",
                     (owner, now + timedelta(seconds=lease_seconds), chosen))
    return chosen


def renew_feed_leases(conn: Connection, names: Sequence[str], *, owner: str, now: datetime,
                      lease_seconds: float) -> list[str]:
    rows = conn.execute(
        "UPDATE feeds SET lease_until = %s WHERE name = ANY(%s) AND lease_owner = %s "
        "RETURNING name",
        (now + timedelta(seconds=lease_seconds), list(names), owner)).fetchall()
    return sorted(row["name"] for row in rows)


def release_feeds(conn: Connection, names: Sequence[str], *, owner: str) -> None:
    conn.execute("UPDATE feeds SET lease_owner = NULL, lease_until = NULL "
                 "WHERE name = ANY(%s) AND lease_owner = %s", (list(names), owner))


def next_feed_due(conn: Connection, names: Sequence[str], now: datetime) -> datetime | None:
    """As ``sqlite_coord.next_feed_due``: the earliest moment one of ``names`` can be
    claimed (a never-polled feed: now; another daemon's lease: its end)."""
    distinct = sorted(set(names))
    row = conn.execute(
        """
        SELECT COUNT(*) AS n,
               MIN(GREATEST(COALESCE(next_poll_at, %(now)s), lease_until)) AS due
        FROM feeds WHERE name = ANY(%(names)s)
        """,
        {"now": now, "names": distinct}).fetchone()
    if row["n"] < len(distinct):
        return now
    return dt(row["due"])


def take_send_slot(conn: Connection, destination: str, *, now: float, interval: float,
                   burst: int) -> float:
    tat = conn.execute(
        """
        INSERT INTO send_pace AS p (destination, tat) VALUES (%(d)s, %(now)s + %(i)s)
        ON CONFLICT (destination) DO UPDATE SET tat = GREATEST(p.tat, %(now)s) + %(i)s
        RETURNING tat
        """,
        {"d": destination, "now": now, "i": interval}).fetchone()["tat"]
    return slot_wait(tat, now=now, interval=interval, burst=burst)


def hold_send_slots(conn: Connection, destination: str, *, until: float, interval: float,
                    burst: int) -> None:
    """Push the destination's theoretical arrival time to ``until + (burst - 1) ×
    interval``: the next slot then waits until ``until`` and sends resume one per
    ``interval`` (see ``slot_wait``)."""
    conn.execute(
        """
        INSERT INTO send_pace AS p (destination, tat) VALUES (%(d)s, %(t)s)
        ON CONFLICT (destination) DO UPDATE SET tat = GREATEST(p.tat, EXCLUDED.tat)
        """,
        {"d": destination, "t": until + (max(burst, 1) - 1) * interval})


def claim_due_alerts(conn: Connection, *, now: datetime, limit: int, lease_seconds: float,
                     exclude_destinations: Sequence[str]) -> list[Alert]:
    """SQLite's claim with ``FOR UPDATE OF a SKIP LOCKED``: two drainers never get the same
    alert; a reply is due only once its parent is sent (the joined parent row is read,
    not locked)."""
    rows = conn.execute(
        """
        SELECT a.*, p.channel AS parent_channel, p.message_id AS parent_message_id
        FROM alerts a
        LEFT JOIN alerts p ON a.kind = 'reply' AND p.kind = 'parent'
            AND p.story_id = a.story_id AND p.destination = a.destination
        WHERE ((a.status = 'pending' AND a.next_attempt_at <= %(now)s)
               OR (a.status = 'in_flight' AND a.lease_until <= %(now)s))
          AND (a.kind = 'parent' OR p.status = 'sent')
          AND a.destination <> ALL(%(skip)s)
        ORDER BY a.published_at, a.created_at, a.id
        LIMIT %(limit)s
        FOR UPDATE OF a SKIP LOCKED
        """,
        {"now": now, "skip": list(exclude_destinations), "limit": limit},
    ).fetchall()
    if not rows:
        return []
    conn.execute(
        """
        UPDATE alerts SET status = 'in_flight', lease_until = %(lease)s,
            attempts = attempts + 1, needs_lookup = needs_lookup OR status = 'in_flight',
            first_attempt_at = COALESCE(first_attempt_at, %(now)s)
        WHERE id = ANY(%(ids)s)
        """,
        {"lease": now + timedelta(seconds=lease_seconds), "now": now,
         "ids": [row["id"] for row in rows]},
    )
    claimed = []
    for row in rows:
        # an expired lease means a worker died mid-send: the post may have happened
        needs_lookup = bool(row["needs_lookup"]) or row["status"] == "in_flight"
        claimed.append(alert_from_row(row, attempts=row["attempts"] + 1,
                                      needs_lookup=needs_lookup,
                                      first_attempt_at=row["first_attempt_at"] or now))
    return claimed
