"""PostgreSQL backend: one database shared by several daemons on several machines.

One concern: the ``Store`` protocol on PostgreSQL (pooled connections, transactions
with retry, migrations, one thin method per protocol call). The SQL of stories,
feedback, the digest, the web view and work sharing lives in ``pg_stories``,
``pg_feedback``, ``pg_digest``, ``pg_web`` and ``pg_coord``; connecting and error
wording in ``pg_connect``; the schema in ``pg_migrations``.

Why psycopg 3's sync API with a pool, not its async one: the protocol stays one
synchronous interface for both backends, and the daemon already runs every store
call in a worker thread, so threads share the pool.

A dropped connection is not fatal: the pool checks a connection before handing it
out (a server restart or ``pg_terminate_backend`` leaves dead ones behind), and a
transaction that fails because its connection broke mid-way was rolled back by
the server, so it is run again on a fresh one. The writes retried that way are
idempotent (inserts ``ON CONFLICT``, leases re-taken by the same owner) or, in
the rare case of a commit whose answer was lost, harmless (a label logged twice).
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from psycopg import Connection
from psycopg_pool import ConnectionPool, PoolTimeout

import monitor.store.pg_coord as coord_sql
import monitor.store.pg_digest as digest_sql
import monitor.store.pg_feedback as feedback_sql
import monitor.store.pg_stories as stories_sql
import monitor.store.pg_web as web_sql
from monitor.errors import StoreError
from monitor.models import (
    MAX_ARRIVALS,
    Alert,
    Article,
    FeedbackMark,
    FeedState,
    Receipt,
    StoryFacts,
    StoryLink,
    Verdict,
)
from monitor.store.base import (
    ArticleHit,
    ArticleRecord,
    ArticleSummary,
    DigestStory,
    LabelEvent,
    Mute,
    OutboxCause,
    StoryBoardEntry,
    StorySummary,
    WeekStats,
)
from monitor.store.pg_connect import (
    PgTarget,
    cause,
    make_pool,
    parse_url,
    prepare_schema,
    retryable,
)
from monitor.store.pg_migrations import MIGRATIONS
from monitor.store.rows import article_from_row, dt, iso, save_feed_sql, when

__all__ = ["ARTICLE_COLUMNS", "PostgresStore"]

T = TypeVar("T")

ATTEMPTS = 3
"""Tries of one transaction whose connection broke (a restart, a terminated session) or
that lost a deadlock to another daemon."""

ARTICLE_COLUMNS = ("id, feed_name, source, url, title, summary, published_at, first_seen_at, "
                   "guid, story_id")
_ARTICLE = ", ".join(f"a.{c.strip()}" for c in ARTICLE_COLUMNS.split(","))

_SAVE_FEED_SQL = save_feed_sql("%s")


class PostgresStore:
    """Store protocol on PostgreSQL, chosen by a ``postgresql://`` URL (``?schema=NAME``
    keeps the tables in their own schema, created if missing)."""

    def __init__(self, url: str, *, busy_timeout: float = 30.0, max_connections: int = 6) -> None:
        self.target: PgTarget = parse_url(url)
        self.busy_timeout = busy_timeout
        self.max_connections = max(2, max_connections)
        """At least two: ``story_lock`` holds one while the block it guards uses another."""
        self._arrivals_text: dict[str, tuple[tuple[datetime, ...], str]] = {}
        self._feeds_with_rows: set[str] = set()
        """Feeds known to have a row: claiming them needs no insert first."""
        self._story_gate = threading.Lock()
        """One thread per process waits for the advisory lock, so waiting threads cannot
        take every pooled connection from the thread that holds it."""
        self._lock_key = zlib.crc32(f"monitor:stories:{self.target.schema}".encode())
        prepare_schema(self.target, timeout=busy_timeout)
        self._pool: ConnectionPool = make_pool(self.target, timeout=busy_timeout,
                                               max_size=self.max_connections)

    @property
    def display(self) -> str:
        """Where the data lives, without credentials."""
        return self.target.display

    # --- plumbing -----------------------------------------------------------------
    def _run(self, work: Callable[[Connection], T], *, write: bool = True) -> T:
        """``work`` in one transaction (a read: one statement at a time), again on a new
        connection when the old one broke; any other failure is one StoreError line."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with self._pool.connection() as conn:
                    if not write:
                        return work(conn)
                    with conn.transaction():
                        return work(conn)
            except StoreError:
                raise
            except PoolTimeout as exc:
                raise StoreError(self._unreachable(exc)) from exc
            except psycopg.Error as exc:
                if retryable(exc) and attempt < ATTEMPTS:
                    time.sleep(0.05 * attempt)
                    continue
                raise StoreError(f"PostgreSQL {self.display}: {cause(exc)}") from exc
        raise AssertionError("unreachable")  # the loop returns or raises

    def _unreachable(self, exc: PoolTimeout) -> str:
        """Why no connection came within the timeout: ask the server directly once."""
        try:
            with psycopg.connect(self.target.conninfo, connect_timeout=3):
                pass
        except psycopg.Error as direct:
            return f"PostgreSQL {self.display}: {cause(direct)}"
        return (f"PostgreSQL {self.display}: no free connection within "
                f"{self.busy_timeout:g}s (storage.busy_timeout_seconds); {exc}")

    def execute_transaction(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one transaction of this store's (for tools beyond the protocol,
        such as ``db migrate-from``), with the same retry and error wording."""
        return self._run(work)

    def _read(self, func: Callable[..., T], /, **kwargs: Any) -> T:
        return self._run(lambda conn: func(conn, **kwargs), write=False)

    def _write(self, func: Callable[..., T], /, **kwargs: Any) -> T:
        return self._run(lambda conn: func(conn, **kwargs))

    def _rows(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict]:
        return self._run(lambda conn: conn.execute(sql, params).fetchall(), write=False)

    # --- life cycle ------------------------------------------------------------------
    def migrate(self) -> None:
        """Apply the missing migrations in one transaction; daemons starting together
        queue on an advisory lock instead of racing to create the same tables."""
        def upgrade(conn: Connection) -> None:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key + 1,))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            current = conn.execute(
                "SELECT COALESCE(MAX(version), 0) AS v FROM schema_version").fetchone()["v"]
            if current > len(MIGRATIONS):
                raise StoreError(
                    f"database {self.display} has schema version {current}, newer than this "
                    f"program knows ({len(MIGRATIONS)}); upgrade the monitor")
            for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
                conn.execute(script)
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
        self._run(upgrade)

    def schema_version(self) -> int:
        return self._rows("SELECT COALESCE(MAX(version), 0) AS v FROM schema_version")[0]["v"]

    def check_writable(self) -> None:
        """Prove a real write commits (a read-only standby or a full disk fails here)."""
        self._run(lambda conn: conn.execute(
            "INSERT INTO store_heartbeat (id, written_at) VALUES (1, %s) "
            "ON CONFLICT (id) DO UPDATE SET written_at = EXCLUDED.written_at",
            (datetime.now(UTC),)))

    def reopen(self) -> None:
        """Start over with a new pool (after the server or its settings were fixed)."""
        fresh = make_pool(self.target, timeout=self.busy_timeout, max_size=self.max_connections)
        old, self._pool = self._pool, fresh
        old.close()

    def close(self) -> None:
        self._pool.close()

    # --- work sharing ------------------------------------------------------------------
    def claim_feeds(self, names: Sequence[str], *, owner: str, now: datetime,
                    lease_seconds: float, limit: int) -> list[str]:
        if not names or limit <= 0:
            return []
        missing = [name for name in names if name not in self._feeds_with_rows]
        if missing:
            self._write(coord_sql.add_missing_feeds, names=missing)
            self._feeds_with_rows.update(missing)  # feed rows are never deleted
        return self._write(coord_sql.claim_feeds, names=names, owner=owner, now=now,
                           lease_seconds=lease_seconds, limit=limit)

    def renew_feed_leases(self, names: Sequence[str], *, owner: str, now: datetime,
                          lease_seconds: float) -> list[str]:
        if not names:
            return []
        return self._write(coord_sql.renew_feed_leases, names=names, owner=owner, now=now,
                           lease_seconds=lease_seconds)

    def release_feeds(self, names: Sequence[str], *, owner: str) -> None:
        if names:
            self._write(coord_sql.release_feeds, names=names, owner=owner)

    def next_feed_due(self, names: Sequence[str]) -> datetime | None:
        if not names:
            return None
        return self._read(coord_sql.next_feed_due, names=names, now=datetime.now(UTC))

    def take_send_slot(self, destination: str, *, now: float, interval: float,
                       burst: int) -> float:
        return self._write(coord_sql.take_send_slot, destination=destination, now=now,
                           interval=interval, burst=burst)

    def hold_send_slots(self, destination: str, *, until: float, interval: float,
                        burst: int) -> None:
        self._write(coord_sql.hold_send_slots, destination=destination, until=until,
                    interval=interval, burst=burst)

    @contextmanager
    def story_lock(self) -> Iterator[None]:
        """A session advisory lock on a pooled connection held for the block: one daemon
        at a time syncs its story index, assigns and records. If that connection dies the
        server drops the lock; the unique parent index is the second line of defence."""
        with self._story_gate:
            try:
                with self._pool.connection() as conn:
                    conn.execute("SELECT pg_advisory_lock(%s)", (self._lock_key,))
                    try:
                        yield
                    finally:
                        try:
                            conn.execute("SELECT pg_advisory_unlock(%s)", (self._lock_key,))
                        except psycopg.Error:
                            with suppress(psycopg.Error):
                                conn.close()  # a closed session holds no lock
            except PoolTimeout as exc:
                raise StoreError(self._unreachable(exc)) from exc
            except psycopg.Error as exc:
                raise StoreError(f"PostgreSQL {self.display}: {cause(exc)}") from exc

    # --- feeds -----------------------------------------------------------------------
    def _feed_state(self, row: dict[str, Any]) -> FeedState:
        arrivals = tuple(datetime.fromisoformat(t) for t in json.loads(row["arrivals"]))
        self._arrivals_text[row["name"]] = (arrivals, row["arrivals"])
        return FeedState(
            name=row["name"], url=row["url"], etag=row["etag"],
            last_modified=row["last_modified"], last_success_at=dt(row["last_success_at"]),
            last_attempt_at=dt(row["last_attempt_at"]), last_error=row["last_error"],
            error_count=row["error_count"], consecutive_errors=row["consecutive_errors"],
            polls=row["polls"], next_poll_at=dt(row["next_poll_at"]),
            last_new_item_at=dt(row["last_new_item_at"]), arrivals=arrivals,
            moved_to=row["moved_to"], flagged=row["flagged"], disabled=row["disabled"],
            body_hash=row["body_hash"], ttl_seconds=row["ttl_seconds"],
        )

    def get_feed_state(self, name: str) -> FeedState | None:
        rows = self._rows("SELECT * FROM feeds WHERE name = %s", (name,))
        return self._feed_state(rows[0]) if rows else None

    def all_feed_states(self) -> list[FeedState]:
        return [self._feed_state(r) for r in self._rows("SELECT * FROM feeds ORDER BY name")]

    def save_feed_state(self, state: FeedState) -> None:
        self.save_feed_states([state])

    def save_feed_states(self, states: list[FeedState]) -> None:
        rows = [
            (s.name, s.url, s.etag, s.last_modified, s.last_success_at, s.last_attempt_at,
             s.last_error, s.error_count, s.consecutive_errors, s.polls, s.next_poll_at,
             s.last_new_item_at, self._arrivals_json(s), s.moved_to, s.flagged, s.disabled,
             s.body_hash, s.ttl_seconds)
            for s in states
        ]
        if rows:
            self._run(lambda conn: conn.cursor().executemany(_SAVE_FEED_SQL, rows))

    def _arrivals_json(self, state: FeedState) -> str:
        known = self._arrivals_text.get(state.name)
        if known is not None and known[0] is state.arrivals:
            return known[1]
        text = json.dumps([iso(t) for t in state.arrivals[-MAX_ARRIVALS:]])
        self._arrivals_text[state.name] = (state.arrivals, text)
        return text

    # --- articles ----------------------------------------------------------------------
    def filter_unseen(self, articles: list[Article]) -> list[Article]:
        if not articles:
            return []
        ids = [a.id for a in articles]
        urls = [a.url for a in articles if a.url]
        rows = self._rows(
            "SELECT id AS v FROM articles WHERE id = ANY(%s) "
            "UNION ALL SELECT url FROM articles WHERE url <> '' AND url = ANY(%s)",
            (ids, urls))
        seen = {row["v"] for row in rows}
        return [a for a in articles if a.id not in seen and (not a.url or a.url not in seen)]

    def record_article(self, article: Article, verdict: Verdict, alert: Alert | None,
                       story: StoryLink | None = None) -> bool:
        return self.record_articles([(article, verdict, alert, story)])[0]

    def record_articles(self, records: Sequence[ArticleRecord]) -> list[bool]:
        if not records:
            return []
        return self._run(lambda conn: _insert_articles(conn, records))

    def get_article(self, article_id: str) -> tuple[Article, Verdict | None] | None:
        rows = self._rows(
            f"""
            SELECT {_ARTICLE}, v.score, v.match, v.threshold, v.reason, v.model_version,
                   v.event_type, v.keywords, v.article_id AS v_id
            FROM articles a LEFT JOIN verdicts v ON v.article_id = a.id
            WHERE a.id = %s
            """, (article_id,))
        if not rows:
            return None
        row = rows[0]
        verdict = None
        if row["v_id"] is not None:
            verdict = Verdict(article_id=row["id"], score=row["score"], match=bool(row["match"]),
                              threshold=row["threshold"], reason=row["reason"],
                              model_version=row["model_version"], event_type=row["event_type"],
                              keywords=tuple(json.loads(row["keywords"])))
        return article_from_row(row), verdict

    def recent_articles(self, *, limit: int = 20,
                        matches_only: bool = False) -> list[ArticleSummary]:
        where = "WHERE v.match" if matches_only else ""
        rows = self._rows(
            f"""
            SELECT a.id, a.source, a.title, a.published_at, a.story_id, v.score, v.match
            FROM articles a LEFT JOIN verdicts v ON v.article_id = a.id
            {where}
            ORDER BY a.first_seen_at DESC, a.published_at DESC, a.seq DESC LIMIT %s
            """, (limit,))
        return [ArticleSummary(row["id"], row["source"], row["title"],
                               when(row["published_at"]), row["story_id"], row["score"],
                               bool(row["match"])) for row in rows]

    def labelled_articles(self) -> list[tuple[Article, int]]:
        rows = self._rows(f"SELECT {_ARTICLE}, l.label FROM labels l "
                          "JOIN articles a ON a.id = l.article_id ORDER BY a.id")
        return [(article_from_row(r), r["label"]) for r in rows]

    # --- outbox ------------------------------------------------------------------------
    def claim_due_alerts(self, *, now: datetime, limit: int, lease_seconds: float,
                         exclude_destinations: Sequence[str] = ()) -> list[Alert]:
        return self._write(coord_sql.claim_due_alerts, now=now, limit=limit,
                           lease_seconds=lease_seconds,
                           exclude_destinations=exclude_destinations)

    def mark_alert_sent(self, receipt: Receipt) -> None:
        def sent(conn: Connection) -> None:
            conn.execute(
                """
                UPDATE alerts SET status = 'sent', message_id = %s, delivered_at = %s,
                    lease_until = NULL, last_error = NULL, channel = %s
                WHERE id = %s
                """,
                (receipt.message_id, receipt.delivered_at, receipt.details.get("channel"),
                 receipt.alert_id))
            stories_sql.note_parent_posted(conn, receipt)
        self._run(sent)

    def mark_alert_retry(self, alert_id: str, *, error: str, next_attempt_at: datetime,
                         ambiguous: bool) -> None:
        self._run(lambda conn: conn.execute(
            """
            UPDATE alerts SET status = 'pending', next_attempt_at = %s, lease_until = NULL,
                last_error = %s, needs_lookup = needs_lookup OR %s
            WHERE id = %s AND status <> 'sent'
            """,
            (next_attempt_at, error[:1000], ambiguous, alert_id)))

    def mark_alert_failed(self, alert_id: str, *, error: str) -> None:
        self._run(lambda conn: conn.execute(
            "UPDATE alerts SET status = 'failed', lease_until = NULL, last_error = %s "
            "WHERE id = %s AND status <> 'sent'", (error[:1000], alert_id)))

    def outbox_counts(self) -> dict[str, int]:
        counts = {"pending": 0, "in_flight": 0, "sent": 0, "failed": 0}
        for row in self._rows("SELECT status, COUNT(*) AS n FROM alerts GROUP BY status"):
            counts[row["status"]] = row["n"]
        return counts

    def outbox_causes(self) -> list[OutboxCause]:
        rows = self._rows(
            """
            SELECT status, COALESCE(last_error, 'not tried yet') AS cause, COUNT(*) AS n,
                   MAX(attempts) AS attempts, MIN(next_attempt_at) AS next_at
            FROM alerts WHERE status <> 'sent'
            GROUP BY status, 2 ORDER BY n DESC, status LIMIT 50
            """)
        return [OutboxCause(row["status"], row["cause"], row["n"], row["attempts"],
                            dt(row["next_at"])) for row in rows]

    def requeue_failed_alerts(self, *, now: datetime) -> int:
        return self._run(lambda conn: conn.execute(
            "UPDATE alerts SET status = 'pending', next_attempt_at = %s WHERE status = 'failed'",
            (now,)).rowcount)

    # --- stories -----------------------------------------------------------------------
    def parents_to_refresh(self, *, limit: int) -> list[tuple[Alert, StoryFacts]]:
        return self._read(stories_sql.parents_to_refresh, limit=limit)

    def mark_parent_refreshed(self, story_id: str, destination: str, member_count: int) -> None:
        self._write(stories_sql.mark_parent_refreshed, story_id=story_id,
                    destination=destination, member_count=member_count)

    def story_members_since(self, since: datetime, *,
                            min_score_fraction: float = 0.0) -> list[tuple[Article, str]]:
        rows = self._rows(
            f"""
            SELECT {_ARTICLE} FROM articles a JOIN verdicts v ON v.article_id = a.id
            WHERE a.first_seen_at >= %s AND a.story_id IS NOT NULL
              AND (v.match OR v.score >= v.threshold * %s)
            ORDER BY a.first_seen_at, a.seq
            """, (since, min_score_fraction))
        return [(article_from_row(row), row["story_id"]) for row in rows]

    def story_members_after(self, position: int, *, since: datetime,
                            min_score_fraction: float = 0.0,
                            ) -> tuple[list[tuple[Article, str]], int]:
        # Candidates are recorded only under the story lock, so their seq grows with
        # each turn: "after the last one read" misses none.
        rows = self._rows(
            f"""
            SELECT {_ARTICLE}, a.seq AS member_seq
            FROM articles a JOIN verdicts v ON v.article_id = a.id
            WHERE a.first_seen_at >= %s AND a.seq > %s AND a.story_id IS NOT NULL
              AND (v.match OR v.score >= v.threshold * %s)
            ORDER BY a.first_seen_at, a.seq
            """, (since, position, min_score_fraction))
        return ([(article_from_row(row), row["story_id"]) for row in rows],
                max((row["member_seq"] for row in rows), default=position))

    def recent_stories(self, *, since: datetime, limit: int = 50) -> list[StorySummary]:
        return self._read(stories_sql.recent_stories, since=since, limit=limit)

    # --- the daily digest ----------------------------------------------------------------
    def digest_stories(self, *, since: datetime, limit: int = 60) -> list[DigestStory]:
        return self._read(digest_sql.digest_stories, since=since, limit=limit)

    def week_stats(self, *, since: datetime) -> WeekStats:
        return self._read(digest_sql.week_stats, since=since)

    def digest_posted(self, digest_id: str) -> datetime | None:
        return self._read(digest_sql.digest_posted, digest_id=digest_id)

    def mark_digest_posted(self, digest_id: str, *, destination: str, message_id: str,
                           at: datetime) -> None:
        self._write(digest_sql.mark_digest_posted, digest_id=digest_id,
                    destination=destination, message_id=message_id, at=at)

    # --- the web view ----------------------------------------------------------------------
    def story_board(self, *, since: datetime, limit: int = 30) -> list[StoryBoardEntry]:
        return self._read(web_sql.story_board, since=since, limit=limit)

    def search_articles(self, query: str, *, since: datetime | None = None,
                        until: datetime | None = None, outlet: str | None = None,
                        matches_only: bool = False, limit: int = 25,
                        offset: int = 0) -> list[ArticleHit]:
        return self._read(web_sql.search_articles, query=query, since=since, until=until,
                          outlet=outlet, matches_only=matches_only, limit=limit, offset=offset)

    # --- analyst feedback ------------------------------------------------------------------
    def add_label(self, article_id: str, label: int, *, source: str, at: datetime,
                  user_id: str | None = None) -> None:
        self._write(feedback_sql.add_label, article_id=article_id, label=label, source=source,
                    at=at, user_id=user_id)

    def label_history(self, article_id: str) -> list[LabelEvent]:
        return self._read(feedback_sql.label_history, article_id=article_id)

    def add_mute(self, kind: str, value: str, *, created_by: str, at: datetime,
                 expires_at: datetime) -> Mute:
        return self._write(feedback_sql.add_mute, kind=kind, value=value,
                           created_by=created_by, at=at, expires_at=expires_at)

    def active_mutes(self, now: datetime) -> list[Mute]:
        return self._read(feedback_sql.active_mutes, now=now)

    def remove_mute(self, mute_id: int, *, at: datetime) -> bool:
        return self._write(feedback_sql.remove_mute, mute_id=mute_id, at=at)

    def list_mutes(self) -> list[Mute]:
        return self._read(feedback_sql.list_mutes)

    def feedback_marks(self, article_id: str, *, story_id: str | None, outlet: str | None,
                       now: datetime) -> tuple[FeedbackMark, ...]:
        return self._read(feedback_sql.feedback_marks, article_id=article_id,
                          story_id=story_id, outlet=outlet, now=now)


_INSERT_ARTICLE = """
    INSERT INTO articles (id, feed_name, source, url, title, summary, published_at,
                          first_seen_at, guid, story_id)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT DO NOTHING
    RETURNING id
"""
_INSERT_VERDICT = """
    INSERT INTO verdicts (article_id, score, match, threshold, reason, model_version,
                          event_type, keywords)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
"""


def _insert_articles(conn: Connection, records: Sequence[ArticleRecord]) -> list[bool]:
    """Article, verdict, story and alert rows of a poll, in the caller's transaction;
    False (nothing written) for an article whose id or URL is already stored
    (``ON CONFLICT DO NOTHING`` covers both unique indexes, also within the batch).

    Batched, because a round trip per statement made PostgreSQL ten times slower than
    SQLite here: articles, verdicts and story counts each go as one pipelined
    ``executemany``; only alerts (a few per poll) are written one by one, in order.
    """
    unpacked = [(r[0], r[1], r[2], r[3] if len(r) > 3 else None) for r in records]
    with conn.cursor() as cur:
        cur.executemany(_INSERT_ARTICLE, [
            (a.id, a.feed_name, a.source, a.url, a.title, a.summary, a.published_at,
             a.first_seen_at, a.guid, stories_sql.story_of(a, story))
            for a, _, _, story in unpacked], returning=True)
        inserted: list[bool] = []
        while True:
            inserted.append(cur.fetchone() is not None)
            if not cur.nextset():
                break
    new = [record for record, fresh in zip(unpacked, inserted, strict=True) if fresh]
    if new:
        with conn.cursor() as cur:
            cur.executemany(_INSERT_VERDICT, [
                (v.article_id, v.score, v.match, v.threshold, v.reason, v.model_version,
                 v.event_type, json.dumps(list(v.keywords)))
                for _, v, _, _ in new])
        stories_sql.count_members(conn, [(a, story) for a, _, _, story in new])
        for article, _, alert, story in new:
            stories_sql.queue_alerts(conn, article, alert, story)
    return inserted
