"""RawEntry → Article: plain text, UTC dates, canonical URL and a stable id.

Everything here is pure (no I/O, no clock, no logging): the caller passes
``now``, so the same entry always normalises to the same Article in tests and
across restarts, which is what makes the id usable for "seen before?".
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from monitor.models import Article, RawEntry

SUMMARY_MAX_CHARS = 2000
TITLE_FALLBACK_CHARS = 160
FUTURE_TOLERANCE = timedelta(days=1)

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Query parameters that say how a reader arrived, not which page it is. Dropping
# them makes the same story from a newsletter, a social post and the RSS feed
# one URL, which the store's cross-outlet dedupe relies on.
_TRACKING_PARAMS = frozenset({
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "igshid", "twclid",
    "mc_cid", "mc_eid", "ref", "ref_src", "ref_url", "referrer", "cmpid", "cmp", "smid",
    "ocid", "at_medium", "at_campaign", "at_custom1", "at_custom2", "at_custom3", "at_custom4",
    "mkt_tok", "_ga", "_gl", "_hsenc", "_hsmi", "ito", "s_cid", "sr_share", "rss", "feedtype",
    "feedname", "spm", "share", "tpcc", "wt.mc_id", "icid",
})
_TRACKING_PREFIXES = ("utm_", "ns_", "pk_", "mtm_", "hmb_", "oly_")

_BLOCK_TAGS = frozenset({
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption",
    "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main",
    "nav", "ol", "p", "pre", "section", "table", "td", "th", "tr", "ul",
})
_SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "iframe", "object"})
# C0/C1 control characters other than whitespace: they come from broken encodings
# or character references like &#0; and only confuse Slack and the classifier.
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def canonical_url(url: str) -> str:
    """One spelling per page, so the same story reached by different links compares equal.

    Non-web URLs and anything unparseable come back stripped but otherwise unchanged.
    """
    url = url.strip()
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parts.hostname:
            return url
        host = parts.hostname  # already lower-cased
        port = parts.port
    except ValueError:
        return url
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    if parts.username is not None:
        userinfo = parts.username + (f":{parts.password}" if parts.password is not None else "")
        netloc = f"{userinfo}@{netloc}"
    path = parts.path or "/"
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    # Filter and sort the raw "k=v" pieces rather than decoding and re-encoding
    # them, so the link still works exactly as the publisher wrote it.
    query = sorted(
        piece for piece in parts.query.split("&")
        if piece and not _is_tracking(unquote_plus(piece.split("=", 1)[0]))
    )
    return urlunsplit((scheme, netloc, path, "&".join(query), ""))


def _is_tracking(key: str) -> bool:
    key = key.lower()
    return key in _TRACKING_PARAMS or key.startswith(_TRACKING_PREFIXES)


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip_depth += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            self.parts.append(data)


def html_to_text(html_text: str) -> str:
    """Visible text of an HTML fragment on one line: tags gone, entities decoded."""
    if not html_text:
        return ""
    if "<" in html_text or "&" in html_text:
        parser = _TextExtractor()
        parser.feed(html_text)
        parser.close()
        text = "".join(parser.parts)
    else:  # no markup, no references: what the parser would hand back unchanged
        text = html_text
    if "&" in text:
        # Many feeds escape twice ("&amp;#8217;"), so one decoding pass leaves
        # visible entity text. The second pass only touches complete ";"-terminated
        # references: html.unescape alone would turn "AT&T&notice" into "AT&T¬ice".
        text = _ENTITY.sub(lambda m: html.unescape(m.group(0)), text)
    text = _CONTROL.sub("", text)
    return " ".join(text.split())


def truncate_words(text: str, limit: int) -> str:
    """Cut at a word boundary at most ``limit`` characters in, marking the cut with "…"."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    if space >= limit * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,;:-–—") + "…"


def article_id(entry: RawEntry) -> str:
    """A stable id from what the feed says about the entry, never from when or where we saw it.

    The feed's name is part of the key because guids are only unique within a
    feed (plenty of sites number their items 1, 2, 3 …); the same story in two
    feeds is matched by canonical URL in the store instead.

    A guid alone is not trusted to tell stories apart: some feeds reuse one
    guid for every item (a CMS default, the feed's own URL), and with a guid-only
    key every story after the first was dropped as "seen". So when the entry
    has a link and the guid is not that same link, the canonical link is part of
    the key: same guid, different page → different item. Consequences, chosen
    on purpose:

    * an updated story (same guid, same link, new title or text) keeps its id;
      links differing only in tracking parameters are one canonical URL;
    * a permalink guid that *is* the link, or an entry without a link, keeps
      exactly the guid-only id of earlier versions, so those stored ids do not
      change;
    * where the id does change on upgrade (a guid such as ``tag:…`` or
      ``?p=123`` beside a different link), the store still drops the item as
      seen, by its canonical URL (``filter_unseen`` checks id *or* URL), so an
      upgrade re-alerts nothing;
    * a story whose link changes for good under the same guid (a rewritten
      slug) counts as a new item: that is the price of not losing reused-guid
      stories, and the feed's guid alone cannot tell the two cases apart.
    """
    if entry.guid:
        guid = entry.guid.strip()
        key = f"guid:{guid}"
        link = canonical_url(entry.link) if entry.link else ""
        if link and link != _guid_as_url(guid):
            key += f"\nurl:{link}"
    elif entry.link:
        key = f"url:{canonical_url(entry.link)}"
    else:
        key = f"hash:{html_to_text(entry.title)}\n{html_to_text(entry.summary_html)}"
    material = f"feed:{entry.feed_name}\n{key}".encode()
    return hashlib.sha256(material).hexdigest()[:32]


def _guid_as_url(guid: str) -> str | None:
    """The guid's canonical URL when it is a permalink (RSS ``isPermaLink``), else None."""
    if guid.lower().startswith(("http://", "https://")):
        return canonical_url(guid)
    return None


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _article_url(entry: RawEntry) -> str:
    if entry.link:
        return canonical_url(entry.link)
    # RSS guids are often the permalink even when <link> is missing.
    if entry.guid and entry.guid.lower().startswith(("http://", "https://")):
        return canonical_url(entry.guid)
    return ""


def normalise_entry(entry: RawEntry, *, source: str, now: datetime) -> Article:
    """Plain-text, UTC, canonical version of one entry; ``now`` stands in for missing dates.

    A date more than a day in the future is a feed bug (or a timezone mistake)
    and would keep the story at the top of every "latest" list, so it is
    replaced by ``now`` too.
    """
    now = _as_utc(now)
    summary = truncate_words(html_to_text(entry.summary_html), SUMMARY_MAX_CHARS)
    url = _article_url(entry)
    title = html_to_text(entry.title) or truncate_words(summary, TITLE_FALLBACK_CHARS) or url
    published = _as_utc(entry.published) if entry.published is not None else now
    if published > now + FUTURE_TOLERANCE:
        published = now
    return Article(
        id=article_id(entry),
        feed_name=entry.feed_name,
        source=source,
        url=url,
        title=title,
        summary=summary,
        published_at=published,
        first_seen_at=now,
        guid=entry.guid,
    )


def normalise_entries(entries: Iterable[RawEntry], *, source: str, now: datetime) -> list[Article]:
    """Normalise a feed's entries, skipping those with neither a title nor a link."""
    return [
        normalise_entry(entry, source=source, now=now)
        for entry in entries
        if entry.link or html_to_text(entry.title)
    ]
