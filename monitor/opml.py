"""OPML import and export, so analysts can bring the subscriptions of their feed reader.

Why expat with our own handlers rather than ``ElementTree.fromstring``: an OPML file is
XML written by someone else's program and handed to us by a user, so it gets the same
distrust as a feed. We refuse any DOCTYPE (and, belt and braces, any entity declaration)
from inside the parser, at the moment expat reports it and before it reads the internal
subset. Doing this inside the parser rather than by scanning bytes means the check sees
exactly what the parser sees, whatever the encoding (UTF-16, a BOM, a declared legacy
charset). Nothing is ever expanded, nothing external is fetched, and the input is bounded
in size, outline count and nesting depth. No extra dependency (defusedxml) is needed.

Why merging appends text instead of re-serialising TOML: the config file is hand-written
and commented; a round trip through a TOML writer would drop every comment and reorder
keys. We append ``[[feeds]]`` tables with strings quoted by our own escaper, then parse
the result again with ``tomllib`` and check that exactly the intended feeds were added.
"""

from __future__ import annotations

import html
import logging
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET
from xml.parsers import expat

from monitor.errors import MonitorError, SettingsError

log = logging.getLogger("monitor.opml")

MAX_OPML_BYTES = 5_000_000
MAX_OUTLINES = 100_000
MAX_DEPTH = 64
NAME_MAX_CHARS = 200  # FeedSettings.name max_length
_WEB_SCHEMES = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}

# Characters XML 1.0 cannot carry at all; ElementTree would write them and produce a
# file no reader (including ours) can parse.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_WHITESPACE = re.compile(r"\s+")
_FEEDS_TABLE_HEADER = re.compile(r"^[ \t]*\[\[[ \t]*feeds[ \t]*\]\]", re.MULTILINE)


class OpmlError(MonitorError):
    """An OPML file was refused: unreadable, not OPML, malformed, too large or hostile.

    The message names the source and, where there is one, the line of the problem.
    """


@dataclass(frozen=True, slots=True)
class OpmlFeed:
    """One subscription: ``tags`` come from enclosing folders, then ``category`` paths."""

    name: str
    url: str
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OpmlDocument:
    """Everything worth telling the analyst about an import, not only the feeds."""

    title: str | None
    feeds: tuple[OpmlFeed, ...]
    warnings: tuple[str, ...]


# --- reading -------------------------------------------------------------------------


def read_opml_file(path: str | Path, *, max_bytes: int = MAX_OPML_BYTES) -> OpmlDocument:
    """Read and parse an OPML file, never holding more than ``max_bytes + 1`` bytes of it."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise OpmlError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    return parse_opml(data, source=str(path), max_bytes=max_bytes)


def read_opml(data: bytes, *, source: str, max_bytes: int = MAX_OPML_BYTES) -> list[OpmlFeed]:
    """The feeds of an OPML document; skipped outlines are logged as warnings.

    Use ``parse_opml`` instead when the warnings should be shown to a person.
    """
    document = parse_opml(data, source=source, max_bytes=max_bytes)
    for warning in document.warnings:
        log.warning("%s", warning)
    return list(document.feeds)


def parse_opml(data: bytes, *, source: str, max_bytes: int = MAX_OPML_BYTES) -> OpmlDocument:
    """Parse untrusted OPML into unique, named, http(s) feeds plus human-readable warnings."""
    if len(data) > max_bytes:
        raise OpmlError(
            f"{source}: larger than {max_bytes:,} bytes; an OPML subscription list is never "
            "this big, so the file is refused"
        )
    reader = _OutlineReader(source)
    reader.run(data)
    return reader.document()


class _OutlineReader:
    """Streams expat events; folders are a stack so no tree is ever built."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.parser = expat.ParserCreate()
        self.parser.StartElementHandler = self._start
        self.parser.EndElementHandler = self._end
        self.parser.CharacterDataHandler = self._text
        self.parser.StartDoctypeDeclHandler = self._doctype
        self.parser.EntityDeclHandler = self._entity
        self.parser.ExternalEntityRefHandler = self._external
        self.path: list[str] = []
        self.folders: list[str | None] = []  # one entry per open <outline>
        self.outlines = 0
        self.saw_body = False
        self.title_parts: list[str] | None = None
        self.title: str | None = None
        self.feeds: list[OpmlFeed] = []
        self.warnings: list[str] = []
        self.seen_urls: dict[str, int] = {}
        self.names: set[str] = set()

    def run(self, data: bytes) -> None:
        try:
            self.parser.Parse(data, True)
        except expat.ExpatError as exc:
            reason = expat.ErrorString(exc.code)
            raise OpmlError(
                f"{self.source}: not well-formed XML at line {exc.lineno}, column "
                f"{exc.offset + 1}: {reason}"
            ) from None
        if not self.saw_body:
            raise OpmlError(f"{self.source}: no <body> element; not an OPML subscription list")

    def document(self) -> OpmlDocument:
        return OpmlDocument(self.title, tuple(self.feeds), tuple(self.warnings))

    def _where(self) -> str:
        return f"{self.source} line {self.parser.CurrentLineNumber}"

    # Hostile-input refusals: raising inside a handler stops expat immediately.
    def _doctype(self, name: str, *_: Any) -> None:
        raise OpmlError(
            f"{self._where()}: <!DOCTYPE {name}> refused; OPML needs no document type, and "
            "declarations are how entity-expansion and external-entity attacks start"
        )

    def _entity(self, name: str, *_: Any) -> None:
        raise OpmlError(f"{self._where()}: entity declaration {name!r} refused")

    def _external(self, *_: Any) -> int:
        raise OpmlError(f"{self._where()}: external entity reference refused")

    def _start(self, tag: str, attrs: dict[str, str]) -> None:
        local = tag.rsplit(":", 1)[-1].lower()
        if not self.path and local != "opml":
            raise OpmlError(
                f"{self._where()}: root element is <{tag}>, not <opml>; is this a feed "
                "rather than an OPML export?"
            )
        self.path.append(local)
        if local == "body" and self.path == ["opml", "body"]:
            self.saw_body = True
        elif local == "title" and self.path == ["opml", "head", "title"]:
            self.title_parts = []
        elif local == "outline" and "body" in self.path:
            self._outline({key.lower(): value for key, value in attrs.items()})

    def _end(self, tag: str) -> None:
        local = self.path.pop()
        if local == "title" and self.title_parts is not None:
            self.title = _clean_text("".join(self.title_parts)) or None
            self.title_parts = None
        elif local == "outline" and "body" in self.path:
            self.folders.pop()

    def _text(self, text: str) -> None:
        if self.title_parts is not None:
            self.title_parts.append(text)

    def _outline(self, attrs: dict[str, str]) -> None:
        self.outlines += 1
        if self.outlines > MAX_OUTLINES:
            raise OpmlError(f"{self._where()}: more than {MAX_OUTLINES:,} outlines; refused")
        if len(self.folders) >= MAX_DEPTH:
            raise OpmlError(f"{self._where()}: outlines nested deeper than {MAX_DEPTH}; refused")
        label = _clean_text(attrs.get("title", "")) or _clean_text(attrs.get("text", ""))
        raw_url = attrs.get("xmlurl", "").strip()
        if not raw_url:
            # A folder (or a plain link/note outline): its label tags what it contains.
            self.folders.append(label or None)
            if "url" in attrs and attrs["url"].strip():
                self.warnings.append(
                    f"{self._where()}: outline {label or attrs['url']!r} has a url but no "
                    "xmlUrl, so it is a web link rather than a feed; skipped"
                )
            return
        self.folders.append(None)  # children of a feed outline inherit only real folders
        url = _feed_url(raw_url)
        if url is None:
            self.warnings.append(
                f"{self._where()}: {label or raw_url!r}: {raw_url!r} is not an http(s) feed "
                "URL; skipped"
            )
            return
        key = url_key(url)
        if key in self.seen_urls:
            self.warnings.append(
                f"{self._where()}: {label or url!r}: same URL as the feed on line "
                f"{self.seen_urls[key]}; skipped"
            )
            return
        self.seen_urls[key] = self.parser.CurrentLineNumber
        base = label or urlsplit(url).hostname or url
        name = unique_name(base, self.names)
        if name != base[:NAME_MAX_CHARS]:
            self.warnings.append(f"{self._where()}: name {base!r} already used; renamed {name!r}")
        self.names.add(name)
        tags = [folder for folder in self.folders if folder]
        tags.extend(_category_tags(attrs.get("category", "")))
        self.feeds.append(OpmlFeed(name=name, url=url, tags=_dedupe_tags(tags)))


def _clean_text(value: str) -> str:
    """One line of readable text: HTML entities that readers double-escape are decoded."""
    if "&" in value:
        value = html.unescape(value)
    value = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in value)
    return _WHITESPACE.sub(" ", value).strip()


def _feed_url(raw: str) -> str | None:
    """The URL if it is a usable http(s) feed URL, else None; ``feed:`` forms are unwrapped."""
    url = raw.strip()
    lowered = url.lower()
    if lowered.startswith("feed://"):
        url = "http://" + url[len("feed://") :]
    elif lowered.startswith("feed:"):
        url = url[len("feed:") :]
    if any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in url):
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError:
        return None
    if parts.scheme.lower() not in _WEB_SCHEMES or not host:
        return None
    return url


def url_key(url: str) -> str:
    """Comparison key for "the same feed": case-blind scheme and host, default port dropped.

    Deliberately conservative (path, query, trailing slash and http/https stay distinct):
    skipping a feed the analyst wanted is worse than importing one near-duplicate.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return url.strip()
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    if parts.username is not None:
        netloc = f"{parts.username}@{netloc}"
    return f"{scheme}://{netloc}{parts.path or '/'}" + (f"?{parts.query}" if parts.query else "")


def unique_name(base: str, taken: set[str]) -> str:
    """``base``, or ``base (2)``, ``base (3)``… — whichever is free, within the name limit."""
    base = base[:NAME_MAX_CHARS]
    if base not in taken:
        return base
    number = 2
    while True:
        suffix = f" ({number})"
        candidate = base[: NAME_MAX_CHARS - len(suffix)].rstrip() + suffix
        if candidate not in taken:
            return candidate
        number += 1


def _category_tags(value: str) -> list[str]:
    """OPML 2.0 ``category``: comma-separated slash paths; each path segment is a tag."""
    tags: list[str] = []
    for path in value.split(","):
        tags.extend(seg for seg in (_clean_text(s) for s in path.split("/")) if seg)
    return tags


def _dedupe_tags(tags: Iterable[str]) -> tuple[str, ...]:
    seen: set[str] = set()
    unique: list[str] = []
    for tag in tags:
        if tag.casefold() not in seen:
            seen.add(tag.casefold())
            unique.append(tag)
    return tuple(unique)


# --- writing -------------------------------------------------------------------------


def write_opml(
    feeds: Iterable[tuple[str, str, Sequence[str]]],
    *,
    title: str,
    date_created: datetime | None = None,
) -> bytes:
    """OPML 2.0 that any reader can import.

    Each feed sits in a folder named after its first tag (what readers display), and all
    its tags are also listed in ``category`` so none is lost; ``parse_opml`` reads both
    back to the same tags. A tag containing ``/`` or ``,`` comes back split, as the OPML
    category syntax has no escape.
    """
    created = date_created or datetime.now(UTC)
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = _xml_safe(title)
    ET.SubElement(head, "dateCreated").text = format_datetime(created, usegmt=True)
    ET.SubElement(head, "docs").text = "http://opml.org/spec2.opml"
    body = ET.SubElement(root, "body")
    folders: dict[str, ET.Element] = {}
    for name, url, tags in feeds:
        clean_tags = [_xml_safe(_clean_text(tag)) for tag in tags]
        clean_tags = [tag for tag in clean_tags if tag]
        parent = body
        if clean_tags:
            first = clean_tags[0]
            if first not in folders:
                folders[first] = ET.SubElement(body, "outline", text=first, title=first)
            parent = folders[first]
        attrs = {
            "type": "rss",
            "text": _xml_safe(name),
            "title": _xml_safe(name),
            "xmlUrl": _xml_safe(url),
        }
        if clean_tags:
            attrs["category"] = ",".join(f"/{tag}" for tag in clean_tags)
        ET.SubElement(parent, "outline", attrs)
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def _xml_safe(value: str) -> str:
    return _XML_INVALID.sub("", value)


# --- merging into the config ---------------------------------------------------------

_TOML_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def toml_string(value: str) -> str:
    """A TOML basic string; control characters escaped, other Unicode kept as UTF-8."""
    out: list[str] = []
    for ch in value:
        code = ord(ch)
        if ch in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04X}")
        elif 0xD800 <= code <= 0xDFFF:
            raise ValueError(f"lone surrogate U+{code:04X} cannot be written to TOML")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def merge_into_config_toml(
    config_text: str,
    feeds: Sequence[OpmlFeed],
    *,
    note: str | None = None,
) -> tuple[str, int, int]:
    """Append ``[[feeds]]`` tables for feeds whose URL the config lacks.

    Returns ``(new_text, added, skipped)``. The existing text is kept byte for byte
    (comments, layout, line endings); when nothing is added it is returned unchanged.
    A name already used by a different feed gets a `` (2)`` suffix. ``note`` becomes a
    comment line above the appended block (e.g. where the feeds came from).
    """
    try:
        current = tomllib.loads(config_text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"the config is not valid TOML, so nothing was merged: {exc}") from exc
    existing = current.get("feeds", [])
    if not isinstance(existing, list) or (existing and not _FEEDS_TABLE_HEADER.search(config_text)):
        raise SettingsError(
            "the config defines 'feeds' as an inline array or table, which TOML does not let us "
            "append [[feeds]] tables to; rewrite it as [[feeds]] tables, then import again"
        )
    known_urls = {url_key(str(f.get("url", ""))) for f in existing if isinstance(f, dict)}
    names = {str(f.get("name", "")) for f in existing if isinstance(f, dict)}
    newline = "\r\n" if "\r\n" in config_text else "\n"
    blocks: list[str] = []
    expected: list[dict[str, Any]] = []
    skipped = 0
    for feed in feeds:
        key = url_key(feed.url)
        if key in known_urls:
            skipped += 1
            continue
        known_urls.add(key)
        name = unique_name(feed.name, names)
        names.add(name)
        entry: dict[str, Any] = {"name": name, "url": feed.url}
        lines = ["[[feeds]]", f"name = {toml_string(name)}", f"url = {toml_string(feed.url)}"]
        if feed.tags:
            entry["tags"] = list(feed.tags)
            lines.append(f"tags = [{', '.join(toml_string(tag) for tag in feed.tags)}]")
        blocks.append(newline.join(lines) + newline)
        expected.append(entry)
    if not blocks:
        return config_text, 0, skipped

    text = config_text
    if text and not text.endswith(("\n", "\r")):
        text += newline
    text += newline
    if note:
        text += f"# {_clean_text(note)}{newline}"
    text += newline.join(blocks)
    _verify_merge(text, existing, expected)
    return text, len(blocks), skipped


def _verify_merge(text: str, before: list[Any], expected: list[dict[str, Any]]) -> None:
    """Parse the result again: the old feeds untouched, exactly the new ones after them."""
    try:
        merged = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(
            f"appending [[feeds]] tables made the config invalid TOML ({exc}); the file was "
            "left unchanged"
        ) from exc
    after = merged.get("feeds", [])
    if after[: len(before)] != before or after[len(before) :] != expected:
        raise SettingsError(
            "the merged config did not read back as the intended feeds; the file was left "
            "unchanged"
        )
