"""SQLite backend: the default store, one file, WAL mode.

One concern: the ``Store`` protocol on SQLite (connection, transactions, migrations,
and one thin method per protocol call; the SQL of stories, feedback and the digest lives
in ``sqlite_stories.py``, ``sqlite_feedback.py``, ``sqlite_digest.py``, ``sqlite_web.py``).

One connection guarded by a lock: the daemon's writes are small and few per
second, so a single serialised connection is simpler and faster than a pool,
and WAL lets CLI readers (``feeds``, ``label``) run while the daemon writes.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import monitor.store.rows as rows
import monitor.store.sqlite_coord as coord_sql
import monitor.store.sqlite_digest as digest_sql
import monitor.store.sqlite_feedback as feedback_sql
import monitor.store.sqlite_stories as stories_sql
import monitor.store.sqlite_web as web_sql
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

MIGRATIONS: tuple[str, ...] = (
    # 1: initial schema
    """
    CREATE TABLE feeds (
        name TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        etag TEXT,
        last_modified TEXT,
        last_success_at TEXT,
        last_attempt_at TEXT,
        last_error TEXT,
        error_count INTEGER NOT NULL DEFAULT 0,
        consecutive_errors INTEGER NOT NULL DEFAULT 0,
        polls INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE articles (
        id TEXT PRIMARY KEY,
        feed_name TEXT NOT NULL,
        source TEXT NOT NULL,
        url TEXT NOT NULL,
        title TEXT NOT NULL,
        summary TEXT NOT NULL,
        published_at TEXT NOT NULL,
        first_seen_at TEXT NOT NULL,
        guid TEXT
    );
    CREATE UNIQUE INDEX articles_url ON articles(url) WHERE url <> '';
    CREATE INDEX articles_seen ON articles(first_seen_at);
    CREATE TABLE verdicts (
        article_id TEXT PRIMARY KEY REFERENCES articles(id),
        score REAL NOT NULL,
        match INTEGER NOT NULL,
        threshold REAL NOT NULL,
        reason TEXT NOT NULL,
        model_version TEXT NOT NULL,
        event_type TEXT,
        keywords TEXT NOT NULL DEFAULT '[]'
    );
    CREATE TABLE alerts (
        id TEXT PRIMARY KEY,
        article_id TEXT NOT NULL UNIQUE REFERENCES articles(id),
        destination TEXT NOT NULL,
        payload TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'in_flight', 'sent', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        lease_until TEXT,
        needs_lookup INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        message_id TEXT,
        delivered_at TEXT,
        created_at TEXT NOT NULL
    );
    CREATE INDEX alerts_due ON alerts(status, next_attempt_at);
    CREATE TABLE labels (
        article_id TEXT PRIMARY KEY REFERENCES articles(id),
        label INTEGER NOT NULL CHECK (label IN (0, 1)),
        source TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    """,
    # 2: feed life cycle (adaptive schedule, redirects, broken/stale flags)
    """
    ALTER TABLE feeds ADD COLUMN next_poll_at TEXT;
    ALTER TABLE feeds ADD COLUMN last_new_item_at TEXT;
    ALTER TABLE feeds ADD COLUMN arrivals TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE feeds ADD COLUMN moved_to TEXT;
    ALTER TABLE feeds ADD COLUMN flagged TEXT;
    ALTER TABLE feeds ADD COLUMN disabled TEXT
    """,
    # 3: skip re-parsing a 200 whose body is identical to the last recorded one
    """
    ALTER TABLE feeds ADD COLUMN body_hash TEXT;
    ALTER TABLE feeds ADD COLUMN ttl_seconds REAL
    """,
    # 4: start-up write check; when an alert's first attempt began (the duplicate
    # look-up searches the channel back to it); publication time for delivery order
    """
    CREATE TABLE store_heartbeat (id INTEGER PRIMARY KEY CHECK (id = 1), written_at TEXT);
    ALTER TABLE alerts ADD COLUMN first_attempt_at TEXT;
    ALTER TABLE alerts ADD COLUMN published_at TEXT;
    UPDATE alerts SET published_at = (
        SELECT articles.published_at FROM articles WHERE articles.id = alerts.article_id);
    CREATE INDEX alerts_order ON alerts(status, published_at, created_at)
    """,
    # 5: stories (reports of one development from many outlets) and threaded alerts;
    # every stored article becomes a story of its own
    """
    CREATE TABLE stories (
        id TEXT PRIMARY KEY,
        first_seen_at TEXT NOT NULL,
        last_seen_at TEXT NOT NULL,
        first_published_at TEXT,
        last_published_at TEXT,
        representative_article_id TEXT NOT NULL,
        member_count INTEGER NOT NULL DEFAULT 1,
        source_count INTEGER NOT NULL DEFAULT 1,
        parent_shows INTEGER NOT NULL DEFAULT 0,
        parent_channel TEXT,
        parent_message_id TEXT
    );
    CREATE INDEX stories_seen ON stories(last_seen_at);
    ALTER TABLE articles ADD COLUMN story_id TEXT;
    UPDATE articles SET story_id = 's-' || id;
    CREATE INDEX articles_story ON articles(story_id);
    INSERT INTO stories (id, first_seen_at, last_seen_at, first_published_at, last_published_at,
                         representative_article_id)
        SELECT 's-' || id, first_seen_at, first_seen_at, published_at, published_at, id
        FROM articles;
    ALTER TABLE alerts ADD COLUMN kind TEXT NOT NULL DEFAULT 'parent';
    ALTER TABLE alerts ADD COLUMN story_id TEXT;
    ALTER TABLE alerts ADD COLUMN channel TEXT;
    UPDATE alerts SET story_id = 's-' || article_id;
    CREATE UNIQUE INDEX alerts_story_parent ON alerts(story_id, destination) WHERE kind = 'parent'
    """,
    # 6: analysts' Slack buttons: every label with who gave it (``labels`` stays the latest
    # per article, for training), and mutes of an outlet or a story with an expiry
    """
    CREATE TABLE label_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        article_id TEXT NOT NULL REFERENCES articles(id),
        label INTEGER NOT NULL CHECK (label IN (0, 1)),
        user_id TEXT,
        source TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX label_events_article ON label_events(article_id, created_at);
    INSERT INTO label_events (article_id, label, user_id, source, created_at)
        SELECT article_id, label, NULL, source, created_at FROM labels;
    ALTER TABLE labels ADD COLUMN user_id TEXT;
    CREATE TABLE mutes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL CHECK (kind IN ('outlet', 'story')),
        value TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        removed_at TEXT
    );
    CREATE INDEX mutes_live ON mutes(kind, value, expires_at) WHERE removed_at IS NULL
    """,
    # 7: the daily digest goes out once per day, also across restarts
    """
    CREATE TABLE digests (
        id TEXT PRIMARY KEY,
        destination TEXT NOT NULL,
        message_id TEXT NOT NULL,
        posted_at TEXT NOT NULL
    )
    """,
    # 8: routing: one article may alert several destinations (one alert each)
    """
    CREATE TABLE alerts_routed (
        id TEXT PRIMARY KEY,
        article_id TEXT NOT NULL REFERENCES articles(id),
        destination TEXT NOT NULL,
        payload TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'in_flight', 'sent', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        lease_until TEXT,
        needs_lookup INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        message_id TEXT,
        delivered_at TEXT,
        created_at TEXT NOT NULL,
        first_attempt_at TEXT,
        published_at TEXT,
        kind TEXT NOT NULL DEFAULT 'parent',
        story_id TEXT,
        channel TEXT,
        UNIQUE (article_id, destination)
    );
    INSERT INTO alerts_routed (id, article_id, destination, payload, status, attempts,
        next_attempt_at, lease_until, needs_lookup, last_error, message_id, delivered_at,
        created_at, first_attempt_at, published_at, kind, story_id, channel)
        SELECT id, article_id, destination, payload, status, attempts, next_attempt_at,
            lease_until, needs_lookup, last_error, message_id, delivered_at, created_at,
            first_attempt_at, published_at, kind, story_id, channel FROM alerts;
    DROP TABLE alerts;
    ALTER TABLE alerts_routed RENAME TO alerts;
    CREATE INDEX alerts_due ON alerts(status, next_attempt_at);
    CREATE INDEX alerts_order ON alerts(status, published_at, created_at);
    CREATE UNIQUE INDEX alerts_story_parent ON alerts(story_id, destination) WHERE kind = 'parent'
    """,
    # 9: full-text search over stored articles (the web view): an external-content FTS5
    # index (the text lives once, in articles) kept in sync by triggers, backfilled
    """
    CREATE VIRTUAL TABLE articles_fts USING fts5(
        title, summary, source, content = 'articles', content_rowid = 'rowid',
        tokenize = 'unicode61 remove_diacritics 2');
    CREATE TRIGGER articles_fts_insert AFTER INSERT ON articles BEGIN
        INSERT INTO articles_fts (rowid, title, summary, source)
            VALUES (new.rowid, new.title, new.summary, new.source);
    END;
    CREATE TRIGGER articles_fts_delete AFTER DELETE ON articles BEGIN
        INSERT INTO articles_fts (articles_fts, rowid, title, summary, source)
            VALUES ('delete', old.rowid, old.title, old.summary, old.source);
    END;
    CREATE TRIGGER articles_fts_update AFTER UPDATE OF title, summary, source ON articles BEGIN
        INSERT INTO articles_fts (articles_fts, rowid, title, summary, source)
            VALUES ('delete', old.rowid, old.title, old.summary, old.source);
        INSERT INTO articles_fts (rowid, title, summary, source)
            VALUES (new.rowid, new.title, new.summary, new.source);
    END;
    INSERT INTO articles_fts (articles_fts) VALUES ('rebuild')
    """,
    # 10: several daemons share the work: a feed's lease (who polls it, until when) and
    # the per-destination send pace (GCRA's theoretical arrival time, epoch seconds)
    """
    ALTER TABLE feeds ADD COLUMN lease_owner TEXT;
    ALTER TABLE feeds ADD COLUMN lease_until TEXT;
    CREATE INDEX feeds_due ON feeds(next_poll_at);
    CREATE TABLE send_pace (destination TEXT PRIMARY KEY, tat REAL NOT NULL)
    """,
)


def _statements(script: str) -> Iterator[str]:
    """A migration's statements one by one: split on ";" but keep a trigger's body (whose
    statements end in ";" too) whole. ``executescript`` would do this, but it commits the
    migration's transaction first."""
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                yield pending
            pending = ""
    if pending.strip(" \n;"):
        yield pending



_HINTS = {
    "readonly": "the database file or its folder is read-only for this user; fix the "
                "permissions (the daemon needs to write the file and its -wal/-shm files)",
    "disk is full": "the disk is full; free space",
    "disk i/o error": "the disk reported an I/O error; check the disk and the file system",
    "not a database": "the file is not an SQLite database; point storage.database_url elsewhere",
    "unable to open": "the file cannot be opened; check the path and the folder's permissions",
    "permission denied": "the monitor's user may not write there; fix the permissions",
    "locked": "another process holds a write lock longer than storage.busy_timeout_seconds",
}


def _cause(exc: BaseException) -> str:
    """The error with what to do about it, when we know (one line, no traceback)."""
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.strerror}" + (f": {exc.filename}" if exc.filename else "")
    lowered = text.lower()
    for needle, hint in _HINTS.items():
        if needle in lowered:
            return f"{text} ({hint})"
    return text


_iso = rows.iso
_dt = rows.dt
_article = rows.article_from_row


_SEEN_IDS = "SELECT id FROM articles WHERE id IN"
_SEEN_URLS = "SELECT url FROM articles WHERE url <> '' AND url IN"


class SqliteStore:
    """Store protocol on a local SQLite file (or ``:memory:`` for tests)."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0) -> None:
        self.path = str(path)
        self.busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._arrivals_text: dict[str, tuple[tuple[datetime, ...], str]] = {}
        """Per feed: the arrivals tuple last read or written and its JSON. Most polls
        (every 304) keep the same tuple object, and re-serialising ~100 timestamps
        per poll was the largest cost left in saving a 304's state."""
        self._conn = self._connect()

    def _connect(self) -> sqlite3.Connection:
        """Open the file and set it up; every failure becomes one StoreError line.

        Opening is where a wrong path, a full disk, a file that is not a database or
        missing permissions first show; they must read as one sentence, not a traceback.
        """
        conn: sqlite3.Connection | None = None
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None,
                timeout=self.busy_timeout,
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
        except (sqlite3.Error, OSError) as exc:
            if conn is not None:
                conn.close()
            cause = _cause(exc)
            folder = Path(self.path).parent
            if self.path != ":memory:" and folder.is_dir() and not os.access(folder, os.W_OK):
                cause = (f"{exc} (the folder {folder} is read-only for this user or on a "
                         "read-only file system; WAL mode needs to create files next to the "
                         "database)")
            raise StoreError(f"cannot open SQLite database {self.path}: {cause}") from exc
        return conn

    def reopen(self) -> None:
        """Close and reconnect: SQLite opens a file it may not write read-only, and the
        connection stays read-only after the permissions are fixed."""
        with self._lock:
            fresh = self._connect()
            old, self._conn = self._conn, fresh
            old.close()

    # --- plumbing -----------------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: writers queue here instead of failing mid-way."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    self._rollback()
                    raise
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise StoreError(f"SQLite {self.path}: {_cause(exc)}") from exc

    def _rollback(self) -> None:
        """Roll back if a transaction is still open. After SQLITE_FULL or an I/O error
        SQLite has already rolled back itself, and a second ROLLBACK would raise
        "cannot rollback" and hide the real cause."""
        if self._conn.in_transaction:
            with suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")

    def _query(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite {self.path}: {_cause(exc)}") from exc

    def check_writable(self) -> None:
        """Prove a real write commits (a read-only or full database fails here, at start-up,
        instead of silently at the first poll)."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO store_heartbeat (id, written_at) VALUES (1, ?) "
                "ON CONFLICT(id) DO UPDATE SET written_at = excluded.written_at",
                (_iso(datetime.now(UTC)),),
            )

    def migrate(self) -> None:
        with self._tx() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT MAX(version) AS v FROM schema_version").fetchone()
            current = row["v"] or 0
            if current > len(MIGRATIONS):
                raise StoreError(
                    f"database {self.path} has schema version {current}, newer than this "
                    f"program knows ({len(MIGRATIONS)}); upgrade the monitor"
                )
            for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
                for statement in _statements(script):
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))

    def schema_version(self) -> int:
        rows = self._query("SELECT MAX(version) AS v FROM schema_version")
        return rows[0]["v"] or 0

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # --- work sharing (one daemon per SQLite file, same semantics as PostgreSQL) ---------
    def claim_feeds(self, names: Sequence[str], *, owner: str, now: datetime,
                    lease_seconds: float, limit: int) -> list[str]:
        with self._tx() as conn:
            return coord_sql.claim_feeds(conn, names, owner=owner, now=now,
                                         lease_seconds=lease_seconds, limit=limit)

    def renew_feed_leases(self, names: Sequence[str], *, owner: str, now: datetime,
                          lease_seconds: float) -> list[str]:
        with self._tx() as conn:
            return coord_sql.renew_feed_leases(conn, names, owner=owner, now=now,
                                               lease_seconds=lease_seconds)

    def release_feeds(self, names: Sequence[str], *, owner: str) -> None:
        with self._tx() as conn:
            coord_sql.release_feeds(conn, names, owner=owner)

    def next_feed_due(self, names: Sequence[str]) -> datetime | None:
        return self._read(coord_sql.next_feed_due, names=names, now=datetime.now(UTC))

    def take_send_slot(self, destination: str, *, now: float, interval: float,
                       burst: int) -> float:
        with self._tx() as conn:
            return coord_sql.take_send_slot(conn, destination, now=now, interval=interval,
                                            burst=burst)

    def hold_send_slots(self, destination: str, *, until: float, interval: float,
                        burst: int) -> None:
        with self._tx() as conn:
            coord_sql.hold_send_slots(conn, destination, until=until, interval=interval,
                                      burst=burst)

    def story_lock(self) -> AbstractContextManager[None]:
        """Nothing to serialise: the daemon lock allows one daemon per SQLite file."""
        return nullcontext()

    # --- feeds --------------------------------------------------------------------
    def _feed_state(self, row: sqlite3.Row) -> FeedState:
        arrivals = tuple(datetime.fromisoformat(t) for t in json.loads(row["arrivals"]))
        self._arrivals_text[row["name"]] = (arrivals, row["arrivals"])
        return FeedState(
            name=row["name"],
            url=row["url"],
            etag=row["etag"],
            last_modified=row["last_modified"],
            last_success_at=_dt(row["last_success_at"]),
            last_attempt_at=_dt(row["last_attempt_at"]),
            last_error=row["last_error"],
            error_count=row["error_count"],
            consecutive_errors=row["consecutive_errors"],
            polls=row["polls"],
            next_poll_at=_dt(row["next_poll_at"]),
            last_new_item_at=_dt(row["last_new_item_at"]),
            arrivals=arrivals,
            moved_to=row["moved_to"],
            flagged=row["flagged"],
            disabled=row["disabled"],
            body_hash=row["body_hash"],
            ttl_seconds=row["ttl_seconds"],
        )

    def get_feed_state(self, name: str) -> FeedState | None:
        rows = self._query("SELECT * FROM feeds WHERE name = ?", (name,))
        return self._feed_state(rows[0]) if rows else None

    def all_feed_states(self) -> list[FeedState]:
        return [self._feed_state(r) for r in self._query("SELECT * FROM feeds ORDER BY name")]

    _SAVE_FEED_SQL = rows.save_feed_sql("?")

    def save_feed_state(self, state: FeedState) -> None:
        """Write the feed's whole row in one statement (one transaction).

        The pipeline computes a poll's outcome in memory (``monitor.feeds.transitions``)
        and persists it here, instead of three read-modify-write transactions.
        """
        self.save_feed_states([state])

    def save_feed_states(self, states: list[FeedState]) -> None:
        """Write several feeds' rows in ONE transaction: all of them or none."""
        rows = [
            (
                s.name, s.url, s.etag, s.last_modified,
                _iso(s.last_success_at), _iso(s.last_attempt_at),
                s.last_error, s.error_count, s.consecutive_errors,
                s.polls, _iso(s.next_poll_at), _iso(s.last_new_item_at),
                self._arrivals_json(s),
                s.moved_to, s.flagged, s.disabled, s.body_hash, s.ttl_seconds,
            )
            for s in states
        ]
        with self._tx() as conn:
            conn.executemany(self._SAVE_FEED_SQL, rows)

    def _arrivals_json(self, state: FeedState) -> str:
        known = self._arrivals_text.get(state.name)
        if known is not None and known[0] is state.arrivals:
            return known[1]
        text = json.dumps([_iso(t) for t in state.arrivals[-MAX_ARRIVALS:]])
        self._arrivals_text[state.name] = (state.arrivals, text)
        return text

    def filter_unseen(self, articles: list[Article]) -> list[Article]:
        if not articles:
            return []
        seen_ids = self._present(_SEEN_IDS, [a.id for a in articles])
        # "url <> ''" in _SEEN_URLS lets SQLite use the (partial) URL index; without
        # it, every poll scanned the whole table.
        seen_urls = self._present(_SEEN_URLS, [a.url for a in articles if a.url])
        return [
            a for a in articles
            if a.id not in seen_ids and (not a.url or a.url not in seen_urls)
        ]

    def _present(self, query: str, values: list[str]) -> set[str]:
        """Which of ``values`` the one-column ``query ... IN`` finds, in chunks that stay
        under SQLite's bound-parameter limit on very large feeds."""
        found: set[str] = set()
        for start in range(0, len(values), 500):
            chunk = values[start : start + 500]
            rows = self._query(f"{query} ({','.join('?' * len(chunk))})", tuple(chunk))
            found.update(row[0] for row in rows)
        return found

    def record_article(self, article: Article, verdict: Verdict, alert: Alert | None,
                       story: StoryLink | None = None) -> bool:
        return self.record_articles([(article, verdict, alert, story)])[0]

    def record_articles(self, records: Sequence[ArticleRecord]) -> list[bool]:
        if not records:
            return []
        with self._tx() as conn:
            return [_insert_article(conn, *record) for record in records]

    def get_article(self, article_id: str) -> tuple[Article, Verdict | None] | None:
        rows = self._query(
            """
            SELECT a.*, v.score, v.match, v.threshold, v.reason, v.model_version,
                   v.event_type, v.keywords, v.article_id AS v_id
            FROM articles a LEFT JOIN verdicts v ON v.article_id = a.id
            WHERE a.id = ?
            """,
            (article_id,),
        )
        if not rows:
            return None
        row = rows[0]
        verdict = None
        if row["v_id"] is not None:
            verdict = Verdict(
                article_id=row["id"],
                score=row["score"],
                match=bool(row["match"]),
                threshold=row["threshold"],
                reason=row["reason"],
                model_version=row["model_version"],
                event_type=row["event_type"],
                keywords=tuple(json.loads(row["keywords"])),
            )
        return _article(row), verdict

    # --- outbox -------------------------------------------------------------------
    def claim_due_alerts(self, *, now: datetime, limit: int, lease_seconds: float,
                         exclude_destinations: Sequence[str] = ()) -> list[Alert]:
        lease_until = _iso(now + timedelta(seconds=lease_seconds))
        now_iso = _iso(now)
        skip = ""
        if exclude_destinations:
            skip = f"AND a.destination NOT IN ({', '.join('?' * len(exclude_destinations))})"
        with self._tx() as conn:
            # Oldest news first: after an outage the backlog goes out in publication order.
            # A reply is due only once its story's parent is posted: it needs the parent's ts.
            rows = conn.execute(
                f"""
                SELECT a.*, p.channel AS parent_channel, p.message_id AS parent_message_id
                FROM alerts a
                LEFT JOIN alerts p ON a.kind = 'reply' AND p.kind = 'parent'
                    AND p.story_id = a.story_id AND p.destination = a.destination
                WHERE ((a.status = 'pending' AND a.next_attempt_at <= ?)
                       OR (a.status = 'in_flight' AND a.lease_until <= ?))
                  AND (a.kind = 'parent' OR p.status = 'sent') {skip}
                ORDER BY a.published_at, a.created_at, a.id
                LIMIT ?
                """,
                (now_iso, now_iso, *exclude_destinations, limit),
            ).fetchall()
            claimed: list[Alert] = []
            for row in rows:
                # An expired lease means a worker died mid-send: the post may have happened.
                needs_lookup = bool(row["needs_lookup"]) or row["status"] == "in_flight"
                first_attempt = row["first_attempt_at"] or now_iso
                conn.execute(
                    """
                    UPDATE alerts SET status = 'in_flight', lease_until = ?,
                        attempts = attempts + 1, needs_lookup = ?, first_attempt_at = ?
                    WHERE id = ?
                    """,
                    (lease_until, int(needs_lookup), first_attempt, row["id"]),
                )
                claimed.append(_alert(row, attempts=row["attempts"] + 1, needs_lookup=needs_lookup,
                                      first_attempt_at=_dt(first_attempt)))
        return claimed

    def mark_alert_sent(self, receipt: Receipt) -> None:
        with self._tx() as conn:
            conn.execute(
                """
                UPDATE alerts SET status = 'sent', message_id = ?, delivered_at = ?,
                    lease_until = NULL, last_error = NULL, channel = ?
                WHERE id = ?
                """,
                (receipt.message_id, _iso(receipt.delivered_at),
                 receipt.details.get("channel"), receipt.alert_id),
            )
            stories_sql.note_parent_posted(conn, receipt)

    # --- stories --------------------------------------------------------------------
    def parents_to_refresh(self, *, limit: int) -> list[tuple[Alert, StoryFacts]]:
        with self._lock:
            try:
                return stories_sql.parents_to_refresh(self._conn, limit=limit)
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite {self.path}: {_cause(exc)}") from exc

    def mark_parent_refreshed(self, story_id: str, destination: str, member_count: int) -> None:
        with self._tx() as conn:
            stories_sql.mark_parent_refreshed(conn, story_id, destination, member_count)

    def story_members_since(self, since: datetime, *,
                            min_score_fraction: float = 0.0) -> list[tuple[Article, str]]:
        """Articles first seen since ``since`` that scored at least ``min_score_fraction``
        of their threshold (or matched), with their story ids, oldest first: the story
        index is rebuilt from these at start-up."""
        rows = self._query(
            """
            SELECT a.* FROM articles a JOIN verdicts v ON v.article_id = a.id
            WHERE a.first_seen_at >= ? AND a.story_id IS NOT NULL
              AND (v.match = 1 OR v.score >= v.threshold * ?)
            ORDER BY a.first_seen_at, a.rowid
            """, (_iso(since), min_score_fraction))
        return [(_article(row), row["story_id"]) for row in rows]

    def story_members_after(self, position: int, *, since: datetime,
                            min_score_fraction: float = 0.0,
                            ) -> tuple[list[tuple[Article, str]], int]:
        rows = self._query(
            """
            SELECT a.*, a.rowid AS member_seq FROM articles a
            JOIN verdicts v ON v.article_id = a.id
            WHERE a.first_seen_at >= ? AND a.rowid > ? AND a.story_id IS NOT NULL
              AND (v.match = 1 OR v.score >= v.threshold * ?)
            ORDER BY a.first_seen_at, a.rowid
            """, (_iso(since), position, min_score_fraction))
        return ([(_article(row), row["story_id"]) for row in rows],
                max((row["member_seq"] for row in rows), default=position))

    def recent_stories(self, *, since: datetime, limit: int = 50) -> list[StorySummary]:
        with self._lock:
            try:
                return stories_sql.recent_stories(self._conn, since=since, limit=limit)
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite {self.path}: {_cause(exc)}") from exc

    def mark_alert_retry(
        self, alert_id: str, *, error: str, next_attempt_at: datetime, ambiguous: bool
    ) -> None:
        with self._tx() as conn:
            conn.execute(
                """
                UPDATE alerts SET status = 'pending', next_attempt_at = ?, lease_until = NULL,
                    last_error = ?, needs_lookup = CASE WHEN ? THEN 1 ELSE needs_lookup END
                WHERE id = ? AND status <> 'sent'
                """,
                (_iso(next_attempt_at), error[:1000], int(ambiguous), alert_id),
            )

    def mark_alert_failed(self, alert_id: str, *, error: str) -> None:
        with self._tx() as conn:
            conn.execute(
                """
                UPDATE alerts SET status = 'failed', lease_until = NULL, last_error = ?
                WHERE id = ? AND status <> 'sent'
                """,
                (error[:1000], alert_id),
            )

    def outbox_counts(self) -> dict[str, int]:
        counts = {"pending": 0, "in_flight": 0, "sent": 0, "failed": 0}
        for row in self._query("SELECT status, COUNT(*) AS n FROM alerts GROUP BY status"):
            counts[row["status"]] = row["n"]
        return counts

    # --- the daily digest ------------------------------------------------------------
    def _read(self, func, /, **kwargs):  # type: ignore[no-untyped-def]
        with self._lock:
            try:
                return func(self._conn, **kwargs)
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite {self.path}: {_cause(exc)}") from exc

    def digest_stories(self, *, since: datetime, limit: int = 60) -> list[DigestStory]:
        return self._read(digest_sql.digest_stories, since=since, limit=limit)

    def week_stats(self, *, since: datetime) -> WeekStats:
        return self._read(digest_sql.week_stats, since=since)

    def digest_posted(self, digest_id: str) -> datetime | None:
        return self._read(digest_sql.digest_posted, digest_id=digest_id)

    def mark_digest_posted(self, digest_id: str, *, destination: str, message_id: str,
                           at: datetime) -> None:
        with self._tx() as conn:
            digest_sql.mark_digest_posted(conn, digest_id, destination=destination,
                                          message_id=message_id, at=at)

    def outbox_causes(self) -> list[OutboxCause]:
        rows = self._query(
            """
            SELECT status, COALESCE(last_error, 'not tried yet') AS cause, COUNT(*) AS n,
                   MAX(attempts) AS attempts, MIN(next_attempt_at) AS next_at
            FROM alerts WHERE status <> 'sent'
            GROUP BY status, cause ORDER BY n DESC, status LIMIT 50
            """)
        return [OutboxCause(row["status"], row["cause"], row["n"], row["attempts"],
                            _dt(row["next_at"])) for row in rows]

    def requeue_failed_alerts(self, *, now: datetime) -> int:
        """Give parked alerts another chance once the operator fixed the cause."""
        with self._tx() as conn:
            return conn.execute(
                "UPDATE alerts SET status = 'pending', next_attempt_at = ? WHERE status = 'failed'",
                (_iso(now),),
            ).rowcount

    # --- analyst feedback -----------------------------------------------------------
    def add_label(self, article_id: str, label: int, *, source: str, at: datetime,
                  user_id: str | None = None) -> None:
        with self._tx() as conn:
            feedback_sql.add_label(conn, article_id, label, source=source, at=at,
                                   user_id=user_id)

    def label_history(self, article_id: str) -> list[LabelEvent]:
        return self._read(feedback_sql.label_history, article_id=article_id)

    def add_mute(self, kind: str, value: str, *, created_by: str, at: datetime,
                 expires_at: datetime) -> Mute:
        with self._tx() as conn:
            return feedback_sql.add_mute(conn, kind, value, created_by=created_by, at=at,
                                         expires_at=expires_at)

    def active_mutes(self, now: datetime) -> list[Mute]:
        return self._read(feedback_sql.active_mutes, now=now)

    def remove_mute(self, mute_id: int, *, at: datetime) -> bool:
        with self._tx() as conn:
            return feedback_sql.remove_mute(conn, mute_id, at=at)

    def list_mutes(self) -> list[Mute]:
        return self._read(feedback_sql.list_mutes)

    def feedback_marks(self, article_id: str, *, story_id: str | None, outlet: str | None,
                       now: datetime) -> tuple[FeedbackMark, ...]:
        return self._read(feedback_sql.feedback_marks, article_id=article_id,
                          story_id=story_id, outlet=outlet, now=now)

    def labelled_articles(self) -> list[tuple[Article, int]]:
        rows = self._query(
            "SELECT a.*, l.label FROM labels l JOIN articles a ON a.id = l.article_id ORDER BY a.id"
        )
        return [(_article(r), r["label"]) for r in rows]

    def recent_articles(self, *, limit: int = 20,
                        matches_only: bool = False) -> list[ArticleSummary]:
        """Newest stored articles with their scores, for the CLI's ``articles`` view."""
        where = "WHERE v.match = 1" if matches_only else ""
        rows = self._query(
            f"""
            SELECT a.id, a.source, a.title, a.published_at, a.story_id, v.score, v.match
            FROM articles a LEFT JOIN verdicts v ON v.article_id = a.id
            {where}
            ORDER BY a.first_seen_at DESC, a.published_at DESC LIMIT ?
            """,
            (limit,),
        )
        return [ArticleSummary(row["id"], row["source"], row["title"],
                               datetime.fromisoformat(row["published_at"]), row["story_id"],
                               row["score"], bool(row["match"])) for row in rows]

    # --- the web view (read-only) ---------------------------------------------------
    def story_board(self, *, since: datetime, limit: int = 30) -> list[StoryBoardEntry]:
        return self._read(web_sql.story_board, since=since, limit=limit)

    def search_articles(self, query: str, *, since: datetime | None = None,
                        until: datetime | None = None, outlet: str | None = None,
                        matches_only: bool = False, limit: int = 25,
                        offset: int = 0) -> list[ArticleHit]:
        return self._read(web_sql.search_articles, query=query, since=since, until=until,
                          outlet=outlet, matches_only=matches_only, limit=limit,
                          offset=offset)


def _alert(row: sqlite3.Row, *, attempts: int, needs_lookup: bool,
           first_attempt_at: datetime | None) -> Alert:
    return rows.alert_from_row(row, attempts=attempts, needs_lookup=needs_lookup,
                               first_attempt_at=first_attempt_at)


def _insert_article(
    conn: sqlite3.Connection, article: Article, verdict: Verdict,
    alert: Alert | Sequence[Alert] | None, story: StoryLink | None = None,
) -> bool:
    """Article, verdict and alert rows; False (nothing written) if the article is stored."""
    inserted = conn.execute(
        """
        INSERT OR IGNORE INTO articles
            (id, feed_name, source, url, title, summary, published_at, first_seen_at, guid,
             story_id)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """,
        (
            article.id,
            article.feed_name,
            article.source,
            article.url,
            article.title,
            article.summary,
            _iso(article.published_at),
            _iso(article.first_seen_at),
            article.guid,
            story.story_id if story is not None else stories_sql.own_story_id(article.id),
        ),
    ).rowcount
    if not inserted:
        return False
    conn.execute(
        """
        INSERT INTO verdicts (article_id, score, match, threshold, reason, model_version,
                              event_type, keywords)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?)
        """,
        (
            verdict.article_id,
            verdict.score,
            int(verdict.match),
            verdict.threshold,
            verdict.reason,
            verdict.model_version,
            verdict.event_type,
            json.dumps(list(verdict.keywords)),
        ),
    )
    stories_sql.record_member(conn, article, verdict, alert, story)
    return True
