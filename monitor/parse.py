"""Bytes → RawEntry[] with feedparser; this module owns the policy for broken feeds.

News feeds are often slightly broken (bad encodings, stray ampersands, HTML
served as XML). Dropping a whole feed for that would lose real stories, so a
"bozo" feed keeps whatever entries feedparser recovered and the problem is
reported alongside. Only input that is not a feed at all (an HTML page, an empty
body, garbage) is an error.
"""

from __future__ import annotations

import calendar
import html
import io
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import feedparser

from monitor.errors import ParseError
from monitor.fastparse import fast_parse, ttl_seconds
from monitor.models import ParsedFeed, RawEntry
from monitor.xmlguard import check_xml

_PROBLEM_MAX = 300


def parse_feed(
    feed_name: str,
    body: bytes,
    *,
    content_type: str | None = None,
    base_url: str | None = None,
    max_items: int = 500,
    max_entity_declarations: int = 0,
    fast_path: bool = True,
) -> ParsedFeed:
    """Parse a fetched body; relative links resolve against ``base_url`` (or the xml:base).

    ``fast_path`` first tries ``monitor.fastparse`` (same result, a tenth of the
    CPU, for the plain feeds it accepts); feedparser reads everything else.

    Raises ``ParseError`` when the body is not a feed, or when feedparser itself
    crashes (it does on some malformed character references instead of flagging them),
    and its subclass ``HostileFeedError`` when the body declares XML entities (see
    ``monitor.xmlguard``): the guard runs here, not only in the parser pool, so that no
    caller can hand feedparser an entity bomb by accident.
    """
    check_xml(body, content_type=content_type, max_entity_declarations=max_entity_declarations)
    if fast_path:
        # Plain well-formed UTF-8 RSS 2.0/Atom 1.0 (most polls) in about a tenth of the
        # time; anything it is not sure of comes back None and goes to feedparser.
        quick = fast_parse(feed_name, body, content_type=content_type, max_items=max_items)
        if quick is not None:
            return quick
    # Without a type feedparser flags every feed bozo ("no Content-type"); the
    # generic XML type means "trust the document's own encoding declaration".
    headers = {"content-type": content_type or "application/xml"}
    if base_url:
        headers["content-location"] = base_url
    try:
        # Always a stream: given a str or bytes that looks like a path or URL,
        # feedparser would open that file or fetch that URL itself.
        parsed = feedparser.parse(io.BytesIO(body), response_headers=headers)
        total = len(parsed.entries)
        entries = [_raw_entry(feed_name, e) for e in parsed.entries[:max_items]]
    except Exception as exc:
        raise ParseError(f"feedparser failed on {feed_name!r}: {_describe(exc)}") from exc

    problems: list[str] = []
    if parsed.get("bozo"):
        problems.append(_describe(parsed.get("bozo_exception")))
    if not entries and not _looks_like_feed(parsed, body):
        reason = problems[0] if problems else "no RSS, Atom or RDF document element"
        raise ParseError(f"not a feed: {reason}")
    if total > max_items:
        problems.append(f"{total} entries, kept the first {max_items}")

    feed_info: Mapping[str, Any] = parsed.get("feed") or {}
    title = feed_info.get("title") or None
    return ParsedFeed(
        feed_name=feed_name,
        title=title,
        entries=tuple(entries),
        problem="; ".join(problems) or None,
        ttl_seconds=ttl_seconds(feed_info.get("ttl")),
    )


def _looks_like_feed(parsed: Mapping[str, Any], body: bytes) -> bool:
    """An empty but valid feed is fine; an HTML page or junk with no entries is not."""
    if parsed.get("version"):
        return True
    head = body[:4096].lower()
    return any(tag in head for tag in (b"<rss", b"<feed", b"<rdf:rdf", b"<channel"))


def _raw_entry(feed_name: str, entry: Mapping[str, Any]) -> RawEntry:
    return RawEntry(
        feed_name=feed_name,
        guid=_text(entry.get("id")),
        link=_text(entry.get("link")),
        title=_as_html(entry.get("title"), entry.get("title_detail")),
        summary_html=_summary(entry),
        published=_when(entry.get("published_parsed") or entry.get("updated_parsed")),
        author=_text(entry.get("author")),
    )


def _summary(entry: Mapping[str, Any]) -> str:
    summary = entry.get("summary")
    if summary:
        return _as_html(summary, entry.get("summary_detail"))
    for content in entry.get("content") or ():
        value = content.get("value")
        if value:
            return _as_html(value, content)
    return ""


def _as_html(value: object, detail: Mapping[str, Any] | None) -> str:
    """Escape text that the feed marked as plain, so every RawEntry field is HTML.

    feedparser hands back plain-text titles already decoded ("a < b & c");
    stripping tags from that later would eat "< b". Escaping here lets the
    normaliser treat every field the same way.
    """
    if not value:
        return ""
    text = str(value)
    if detail is not None and detail.get("type") == "text/plain":
        return html.escape(text, quote=False)
    return text


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _when(parsed: time.struct_time | None) -> datetime | None:
    """feedparser normalises dates to UTC struct_time; make them aware datetimes."""
    if parsed is None:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(parsed), UTC)
    except (OverflowError, ValueError, OSError, TypeError):
        return None


def _describe(exc: object) -> str:
    """One short line, whatever the exception's message looks like."""
    if exc is None:
        return "malformed feed"
    text = " ".join(str(exc).split())
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return line if len(line) <= _PROBLEM_MAX else line[: _PROBLEM_MAX - 1] + "…"
