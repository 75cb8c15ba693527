"""A fast path for the plain, well-formed feeds that make up most polls.

feedparser costs milliseconds of CPU per news feed because it handles every
dialect, encoding and breakage there is. Most
feeds need none of that: they are well-formed UTF-8 RSS 2.0 or Atom 1.0 with
absolute links, RFC 822 or ISO 8601 dates and ordinary HTML in the summary.
``fast_parse`` reads those with the standard library's expat parser (about a
tenth of the cost) and returns ``None`` - "not sure, ask feedparser" - the
moment anything is outside what it can read exactly as feedparser would:
another encoding, a DOCTYPE, a relative link or xml:base, an unusual date,
markup in a title, inline XHTML, tags the HTML sanitiser would treat specially.
``tests/test_fastparse.py`` checks that on every fixture feed it either declines
or produces the same Articles as feedparser.

The XML guard (``monitor.xmlguard``) has already refused entity declarations
before this runs, so expat never expands a user-defined entity here.
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from monitor.models import ParsedFeed, RawEntry

_ATOM = "{http://www.w3.org/2005/Atom}"
_XML_BASE = "{http://www.w3.org/XML/1998/namespace}base"
_CHARSET = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_HTTP_CHARSET = re.compile(r"charset\s*=\s*\"?([A-Za-z0-9._-]+)", re.IGNORECASE)
_TAG = re.compile(r"<\s*/?\s*([A-Za-z][A-Za-z0-9:-]*)")
# Tags whose text both the sanitiser and our HTML-to-text step keep as plain text.
_PLAIN_TAGS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "cite", "code", "del", "div", "em", "figcaption",
    "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "li", "ol", "p",
    "pre", "q", "s", "small", "span", "strong", "sub", "sup", "table", "tbody", "td", "th",
    "thead", "tr", "u", "ul",
})
_ENTITY_LIKE = re.compile(r"&(?:#\d+|#x[0-9a-fA-F]+|[A-Za-z]\w*);")
# Elements feedparser reads as entry dates; an item with any of these but no pubDate
# gets its date from a rule we do not reproduce.
_OTHER_DATES = frozenset({"date", "updated", "published", "issued", "modified", "created"})


class _Unsure(Exception):
    """Something feedparser might read differently: hand the whole feed to it."""


def fast_parse(
    feed_name: str, body: bytes, *, content_type: str | None = None, max_items: int = 500
) -> ParsedFeed | None:
    """Entries of a plain RSS 2.0 / Atom 1.0 feed, or ``None`` when feedparser must decide."""
    try:
        _check_encoding(body, content_type)
        root = ET.fromstring(body)
        if root.tag == "rss" and root.get("version") == "2.0":
            return _rss(feed_name, root, max_items)
        if root.tag == f"{_ATOM}feed":
            return _atom(feed_name, root, max_items)
    except (_Unsure, ET.ParseError, ValueError, TypeError, OverflowError):
        return None
    return None


def _check_encoding(body: bytes, content_type: str | None) -> None:
    head = body[:512]
    if b"<!DOCTYPE" in head.upper() or b"<!ENTITY" in head.upper():
        raise _Unsure("doctype")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _Unsure("utf-16")
    declared = _CHARSET.match(head.removeprefix(b"\xef\xbb\xbf"))
    if declared and declared.group(1).lower() not in (b"utf-8", b"utf8"):
        raise _Unsure("declared encoding")
    if content_type:
        sent = _HTTP_CHARSET.search(content_type)
        if sent and sent.group(1).lower() not in ("utf-8", "utf8"):
            raise _Unsure("HTTP charset")
    body.decode("utf-8")  # strict: a stray Latin-1 byte means feedparser's recovery rules apply


# -- RSS 2.0 -------------------------------------------------------------------------------------


def _rss(feed_name: str, root: ET.Element, max_items: int) -> ParsedFeed:
    channels = root.findall("channel")
    if len(channels) != 1:
        raise _Unsure("channels")
    channel = channels[0]
    _no_xml_base(root)
    items = channel.findall("item")
    entries = tuple(_rss_item(feed_name, item) for item in items[:max_items])
    return ParsedFeed(
        feed_name=feed_name,
        title=_plain_title(channel.findtext("title")) or None,
        entries=entries,
        problem=f"{len(items)} entries, kept the first {max_items}" if len(items) > max_items
        else None,
        ttl_seconds=ttl_seconds(channel.findtext("ttl")),
    )


def _rss_item(feed_name: str, item: ET.Element) -> RawEntry:
    link = _absolute(item.findtext("link"))
    if link is None:
        raise _Unsure("no link")  # feedparser may take the link from a permalink guid
    guid = item.find("guid")
    pub = item.findtext("pubDate")
    if pub is None and any(_local(child.tag) in _OTHER_DATES for child in item):
        raise _Unsure("other date element")
    description = item.find("description")
    if description is not None and len(description):
        raise _Unsure("inline markup in description")
    summary = _html(description.text if description is not None else None)
    if not summary and any(_local(child.tag) == "encoded" for child in item):
        raise _Unsure("content:encoded only")
    return RawEntry(
        feed_name=feed_name,
        guid=_stripped(guid.text) if guid is not None else None,
        link=link,
        title=html.escape(_plain_title(item.findtext("title")), quote=False),
        summary_html=summary,
        published=_rfc822(pub),
        author=_rss_author(item),
    )


def _rss_author(item: ET.Element) -> str | None:
    """A lone dc:creator is the author as written; RSS's own <author> holds an e-mail
    address that feedparser reformats, so that is left to feedparser."""
    names = [child for child in item if _local(child.tag) in ("author", "creator")]
    if not names:
        return None
    if len(names) > 1 or names[0].tag == "author" or len(names[0]):
        raise _Unsure("author")
    return _stripped(names[0].text)


def _rfc822(value: str | None) -> datetime | None:
    if value is None or not value.strip():
        return None
    when = parsedate_to_datetime(value.strip())  # ValueError/TypeError → feedparser decides
    if when.tzinfo is None:
        raise _Unsure("date without a zone")
    return _utc_seconds(when)


# -- Atom 1.0 ------------------------------------------------------------------------------------


def _atom(feed_name: str, root: ET.Element, max_items: int) -> ParsedFeed:
    _no_xml_base(root)
    entries_xml = root.findall(f"{_ATOM}entry")
    entries = tuple(_atom_entry(feed_name, e) for e in entries_xml[:max_items])
    title = root.find(f"{_ATOM}title")
    return ParsedFeed(
        feed_name=feed_name,
        title=_plain_title(_atom_text(title)) or None,
        entries=entries,
        problem=f"{len(entries_xml)} entries, kept the first {max_items}"
        if len(entries_xml) > max_items else None,
    )


def _atom_entry(feed_name: str, entry: ET.Element) -> RawEntry:
    alternates = [
        link for link in entry.findall(f"{_ATOM}link")
        if link.get("rel", "alternate") == "alternate"
    ]
    if len(alternates) != 1:
        raise _Unsure("alternate links")
    link = _absolute(alternates[0].get("href"))
    if link is None:
        raise _Unsure("relative or missing href")
    summary_el = entry.find(f"{_ATOM}summary")
    if summary_el is None:
        contents = entry.findall(f"{_ATOM}content")
        if len(contents) != 1 or contents[0].get("src") is not None:
            raise _Unsure("no summary and not exactly one inline content")
        summary_el = contents[0]
    published = entry.findtext(f"{_ATOM}published") or entry.findtext(f"{_ATOM}updated")
    return RawEntry(
        feed_name=feed_name,
        guid=_stripped(entry.findtext(f"{_ATOM}id")),
        link=link,
        title=html.escape(_plain_title(_atom_text(entry.find(f"{_ATOM}title"))), quote=False),
        summary_html=_atom_summary(summary_el),
        published=_iso8601(published),
        author=_atom_author(entry),
    )


def _atom_author(entry: ET.Element) -> str | None:
    authors = entry.findall(f"{_ATOM}author")
    if not authors:
        return None
    if len(authors) > 1 or authors[0].find(f"{_ATOM}email") is not None:
        raise _Unsure("author")
    return _stripped(authors[0].findtext(f"{_ATOM}name"))


def _atom_text(element: ET.Element | None) -> str | None:
    """A text construct that is plain text; other types are feedparser's to interpret."""
    if element is None:
        return None
    if element.get("type", "text") != "text" or len(element):
        raise _Unsure("non-text title")
    return element.text


def _atom_summary(element: ET.Element) -> str:
    kind = element.get("type", "text")
    if len(element):
        raise _Unsure("inline xhtml")
    if kind == "html":
        return _html(element.text)
    if kind == "text":
        text = element.text or ""
        if "<" in text or _ENTITY_LIKE.search(text):
            raise _Unsure("markup-like plain text")
        return html.escape(text.strip(), quote=False)
    raise _Unsure(f"summary type {kind}")


def _iso8601(value: str | None) -> datetime | None:
    if value is None or not value.strip():
        return None
    text = value.strip()
    if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", text):
        raise _Unsure("unusual ISO date")
    return _utc_seconds(datetime.fromisoformat(text.replace("Z", "+00:00")))


# -- shared checks -------------------------------------------------------------------------------


def _no_xml_base(root: ET.Element) -> None:
    if any(_XML_BASE in element.attrib for element in root.iter()):
        raise _Unsure("xml:base")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _stripped(value: str | None) -> str | None:
    if value is None:
        return None
    return value.strip() or None


def _absolute(value: str | None) -> str | None:
    """An absolute http(s) link as given; anything else would need feedparser's resolution."""
    link = _stripped(value)
    if link is None:
        return None
    if not link.startswith(("http://", "https://")) or any(c.isspace() for c in link):
        raise _Unsure("link")
    return link


def _plain_title(value: str | None) -> str:
    text = (value or "").strip()
    if "<" in text or _ENTITY_LIKE.search(text):
        raise _Unsure("markup in a title")  # feedparser may decide it is HTML
    return text


def _html(value: str | None) -> str:
    """An HTML summary whose tags the sanitiser and our text extraction treat alike."""
    text = (value or "").strip()
    if "<!" in text or "<?" in text:
        raise _Unsure("comment or processing instruction in HTML")
    for match in _TAG.finditer(text):
        if match.group(1).lower() not in _PLAIN_TAGS:
            raise _Unsure(f"tag {match.group(1)}")
    return text


def ttl_seconds(value: object) -> float | None:
    """RSS ``<ttl>`` (minutes) as seconds; junk and absurd values are ignored, not trusted.

    Shared with the feedparser path, so both parsers read the hint alike."""
    try:
        minutes = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return minutes * 60.0 if 0 < minutes <= _MAX_TTL_MINUTES else None


_MAX_TTL_MINUTES = 7 * 24 * 60


def _utc_seconds(when: datetime) -> datetime:
    """feedparser keeps whole seconds in UTC; so must we, or the same entry gets two ids."""
    return when.astimezone(UTC).replace(microsecond=0)
