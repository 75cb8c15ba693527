"""The web view's queries: the story board and full-text search (read-only).

Search runs on ``articles_fts`` (migration 9), an external-content FTS5 index kept
in sync with ``articles`` by triggers. What a person types is never passed to FTS5
as query syntax: every word is quoted (``fts_query``), so ``"``, ``NEAR(`` or
``title:`` are searched as words and cannot raise a syntax error.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime

from monitor.store.base import HIT_END, HIT_START, ArticleHit, StoryAlert, StoryBoardEntry
from monitor.store.rows import dt, iso

__all__ = ["fts_query", "search_articles", "story_board"]

MAX_TERMS = 12
"""Words kept from one query: enough for any real search, and a bound on its cost."""

SNIPPET_TOKENS = 28
_WORD = re.compile(r"\w")


def fts_query(words: str) -> str | None:
    """Plain words → an FTS5 query that ANDs them, each quoted as a string.

    A trailing ``*`` keeps its meaning (prefix search: ``missil*``). Terms without a
    letter or digit are dropped (FTS5 would find nothing for them); None when
    nothing is left, which means "no text condition".
    """
    terms = []
    for raw in words.split():
        prefix = raw.endswith("*")
        term = raw.rstrip("*")
        if not _WORD.search(term):
            continue
        quoted = '"' + term.replace('"', '""') + '"'
        terms.append(quoted + ("*" if prefix else ""))
        if len(terms) == MAX_TERMS:
            break
    return " ".join(terms) or None


def search_articles(conn: sqlite3.Connection, *, query: str, since: datetime | None,
                    until: datetime | None, outlet: str | None, matches_only: bool,
                    limit: int, offset: int) -> list[ArticleHit]:
    match = fts_query(query)
    where: list[str] = []
    params: list[object] = []
    if match is not None:
        where.append("articles_fts MATCH ?")
        params.append(match)
    if since is not None:
        where.append("a.published_at >= ?")
        params.append(iso(since))
    if until is not None:
        where.append("a.published_at < ?")
        params.append(iso(until))
    if outlet:
        where.append("a.source = ?")
        params.append(outlet)
    if matches_only:
        where.append("v.match = 1")
    condition = ("WHERE " + " AND ".join(where)) if where else ""
    if match is not None:
        # Title hits weigh most, then the outlet's name, then the summary.
        sql = f"""
            SELECT a.id, a.source, a.title, a.url, a.published_at, v.score, v.match,
                   v.event_type,
                   snippet(articles_fts, 1, '{HIT_START}', '{HIT_END}', '…',
                           {SNIPPET_TOKENS}) AS snip
            FROM articles_fts JOIN articles a ON a.rowid = articles_fts.rowid
            LEFT JOIN verdicts v ON v.article_id = a.id
            {condition}
            ORDER BY bm25(articles_fts, 5.0, 1.0, 2.0), a.published_at DESC
            LIMIT ? OFFSET ?"""
    else:
        sql = f"""
            SELECT a.id, a.source, a.title, a.url, a.published_at, v.score, v.match,
                   v.event_type, substr(a.summary, 1, 240) AS snip
            FROM articles a LEFT JOIN verdicts v ON v.article_id = a.id
            {condition}
            ORDER BY a.published_at DESC, a.rowid DESC
            LIMIT ? OFFSET ?"""
    rows = conn.execute(sql, (*params, limit, offset)).fetchall()
    return [
        ArticleHit(article_id=row["id"], source=row["source"], title=row["title"],
                   url=row["url"], published_at=datetime.fromisoformat(row["published_at"]),
                   score=row["score"], match=bool(row["match"]), event_type=row["event_type"],
                   snippet=row["snip"] or "")
        for row in rows
    ]


def story_board(conn: sqlite3.Connection, *, since: datetime,
                limit: int) -> list[StoryBoardEntry]:
    stories = conn.execute(
        """
        SELECT s.*, a.title, a.url, a.source FROM stories s
        JOIN articles a ON a.id = s.representative_article_id
        WHERE s.last_seen_at >= ? AND EXISTS (SELECT 1 FROM alerts x WHERE x.story_id = s.id)
        ORDER BY s.last_seen_at DESC LIMIT ?
        """,
        (iso(since), limit),
    ).fetchall()
    if not stories:
        return []
    ids = [row["id"] for row in stories]
    marks = ",".join("?" * len(ids))
    alerts: dict[str, list[StoryAlert]] = {story_id: [] for story_id in ids}
    for row in conn.execute(
        f"""
        SELECT al.id, al.story_id, al.kind, al.destination, al.status, al.delivered_at,
               al.last_error, a.title, a.url, a.source, a.published_at, v.score, v.reason,
               v.event_type, l.label, COALESCE(l.user_id, l.source) AS labelled_by
        FROM alerts al JOIN articles a ON a.id = al.article_id
        JOIN verdicts v ON v.article_id = al.article_id
        LEFT JOIN labels l ON l.article_id = al.article_id
        WHERE al.story_id IN ({marks})
        ORDER BY al.kind <> 'parent', a.published_at, al.created_at
        """,
        ids,
    ):
        alerts[row["story_id"]].append(StoryAlert(
            alert_id=row["id"], kind=row["kind"], destination=row["destination"],
            status=row["status"], title=row["title"], url=row["url"], source=row["source"],
            published_at=datetime.fromisoformat(row["published_at"]), score=row["score"],
            reason=row["reason"], event_type=row["event_type"],
            delivered_at=dt(row["delivered_at"]), last_error=row["last_error"],
            label=row["label"], labelled_by=row["labelled_by"]))
    return [
        StoryBoardEntry(
            story_id=row["id"], title=row["title"], url=row["url"], source=row["source"],
            first_seen_at=datetime.fromisoformat(row["first_seen_at"]),
            last_seen_at=datetime.fromisoformat(row["last_seen_at"]),
            member_count=row["member_count"], source_count=row["source_count"],
            alerts=tuple(alerts[row["id"]]))
        for row in stories
    ]
