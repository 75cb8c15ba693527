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
from monitor.store.rows import iso
from monitor.store.shared_web import (
    BOARD_ALERTS_SQL,
    BOARD_STORIES_SQL,
    article_hit_from_row,
    board_entry_from_row,
    story_alert_from_row,
)

__all__ = ["fts_query", "search_articles", "story_board"]

MAX_TERMS = 12
"""Words kept from one query: enough for any real search, and a bound on its cost."""

SNIPPET_TOKENS = 28
_WORD = re.compile(r"\w")
_BOARD_STORIES = BOARD_STORIES_SQL.format(p="?")


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
    return [article_hit_from_row(row) for row in rows]


def story_board(conn: sqlite3.Connection, *, since: datetime,
                limit: int) -> list[StoryBoardEntry]:
    stories = conn.execute(_BOARD_STORIES, (iso(since), limit)).fetchall()
    if not stories:
        return []
    ids = [row["id"] for row in stories]
    in_ids = f"IN ({','.join('?' * len(ids))})"
    alerts: dict[str, list[StoryAlert]] = {story_id: [] for story_id in ids}
    for row in conn.execute(BOARD_ALERTS_SQL.format(in_ids=in_ids), ids):
        alerts[row["story_id"]].append(story_alert_from_row(row))
    return [board_entry_from_row(row, alerts[row["id"]]) for row in stories]
