"""The web view's queries in PostgreSQL: the story board and full-text search.

Search uses PostgreSQL's own full-text search, not ILIKE: ``articles.search`` is a
generated ``tsvector`` (migration 9: title weight A, outlet B, summary C, the
'simple' configuration, i.e. lower-cased words without stemming, like SQLite's
unicode61) with a GIN index; ranking is ``ts_rank`` (weights 1.0/0.4/0.2, the same
5:2:1 as SQLite's bm25 weights) and snippets come from ``ts_headline``.

What a person types is never handed to PostgreSQL as query syntax (neither
``to_tsquery``'s ``& | ! <->`` nor ``websearch_to_tsquery``'s ``or``/``-``/quotes):
``ts_query`` keeps only runs of letters and digits from each word, quotes them,
and ANDs them; a trailing ``*`` keeps its meaning (prefix search: ``missil*``).
"""

from __future__ import annotations

import re
from datetime import datetime

from psycopg import Connection

from monitor.store.base import HIT_END, HIT_START, ArticleHit, StoryAlert, StoryBoardEntry
from monitor.store.shared_web import (
    BOARD_ALERTS_SQL,
    BOARD_STORIES_SQL,
    article_hit_from_row,
    board_entry_from_row,
    story_alert_from_row,
)

__all__ = ["search_articles", "story_board", "ts_query"]

MAX_TERMS = 12
"""Words kept from one query, as in SQLite's search."""

SNIPPET_WORDS = 28
_PART = re.compile(r"[^\W_]+")

_BOARD_STORIES = BOARD_STORIES_SQL.format(p="%s")
_BOARD_ALERTS = BOARD_ALERTS_SQL.format(in_ids="= ANY(%s)")

_HEADLINE = (f"StartSel={HIT_START}, StopSel={HIT_END}, MaxWords={SNIPPET_WORDS}, "
             "MinWords=12, ShortWord=0, MaxFragments=1, FragmentDelimiter=\" … \"")


def ts_query(words: str) -> str | None:
    """Plain words → ``to_tsquery`` text that ANDs them; None when nothing searchable is
    left (no letter or digit), which means "no text condition".

    Each kept part is quoted (``'part'``) and holds only letters and digits, so no input
    can form an operator; a word joined by punctuation ("jong-un") becomes its parts in a
    row (``'jong' <-> 'un'``), as PostgreSQL's parser splits the stored text.
    """
    terms: list[str] = []
    for raw in words.split():
        prefix = raw.endswith("*")
        parts = _PART.findall(raw.rstrip("*"))
        if not parts:
            continue
        quoted = [f"'{part}'" for part in parts]
        if prefix:
            quoted[-1] += ":*"
        terms.append(quoted[0] if len(quoted) == 1 else "(" + " <-> ".join(quoted) + ")")
        if len(terms) == MAX_TERMS:
            break
    return " & ".join(terms) or None


def search_articles(conn: Connection, *, query: str, since: datetime | None,
                    until: datetime | None, outlet: str | None, matches_only: bool,
                    limit: int, offset: int) -> list[ArticleHit]:
    match = ts_query(query)
    where: list[str] = []
    params: dict[str, object] = {"limit": limit, "offset": offset, "match": match,
                                 "headline": _HEADLINE}
    if match is not None:
        where.append("a.search @@ q.query")
    if since is not None:
        where.append("a.published_at >= %(since)s")
        params["since"] = since
    if until is not None:
        where.append("a.published_at < %(until)s")
        params["until"] = until
    if outlet:
        where.append("a.source = %(outlet)s")
        params["outlet"] = outlet
    if matches_only:
        where.append("v.match")
    condition = ("WHERE " + " AND ".join(where)) if where else ""
    if match is not None:
        sql = f"""
            SELECT a.id, a.source, a.title, a.url, a.published_at, v.score, v.match,
                   v.event_type, ts_headline('simple', a.summary, q.query, %(headline)s) AS snip
            FROM articles a CROSS JOIN (SELECT to_tsquery('simple', %(match)s) AS query) q
            LEFT JOIN verdicts v ON v.article_id = a.id
            {condition}
            ORDER BY ts_rank(a.search, q.query) DESC, a.published_at DESC, a.seq DESC
            LIMIT %(limit)s OFFSET %(offset)s"""
    else:
        sql = f"""
            SELECT a.id, a.source, a.title, a.url, a.published_at, v.score, v.match,
                   v.event_type, left(a.summary, 240) AS snip
            FROM articles a LEFT JOIN verdicts v ON v.article_id = a.id
            {condition}
            ORDER BY a.published_at DESC, a.seq DESC
            LIMIT %(limit)s OFFSET %(offset)s"""
    rows = conn.execute(sql, params).fetchall()
    return [article_hit_from_row(row) for row in rows]


def story_board(conn: Connection, *, since: datetime, limit: int) -> list[StoryBoardEntry]:
    stories = conn.execute(_BOARD_STORIES, (since, limit)).fetchall()
    if not stories:
        return []
    ids = [row["id"] for row in stories]
    alerts: dict[str, list[StoryAlert]] = {story_id: [] for story_id in ids}
    for row in conn.execute(_BOARD_ALERTS, (ids,)):
        alerts[row["story_id"]].append(story_alert_from_row(row))
    return [board_entry_from_row(row, alerts[row["id"]]) for row in stories]
