"""The fast path must read every feed it accepts exactly as feedparser does, and decline the rest.

"Exactly" is judged on what the daemon keeps: the normalised Articles (id, URL,
title, summary text, date), plus the feed title and <ttl>. The corpus is every
fixture feed we have (legacy and mis-declared encodings, RSS 0.9x/1.0/2.0, Atom
0.3/1.0, relative links, missing dates, hostile markup) and the benchmark's
generated feeds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.feeds import feed_xml, recent_epoch
from monitor.errors import HostileFeedError, ParseError
from monitor.fastparse import fast_parse
from monitor.models import Article, ParsedFeed
from monitor.normalise import normalise_entries
from monitor.parse import parse_feed

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
CORPUS = sorted(
    [p for p in FIXTURES.rglob("*") if p.suffix in (".xml", ".atom", ".rss")]
    + list((REPO / "examples").rglob("*.xml"))
)
PLAIN = ["feeds/rss20_news.xml", "feeds/atom10_news.xml", "encodings/utf8_plain.xml",
         "encodings/atom10_plain.xml", "integration/wire_atom.xml"]
DECLINED = ["encodings/misdeclared_cp1252.xml", "encodings/undeclared_latin1.xml",
            "encodings/euc_kr.xml", "encodings/koi8_r.xml", "encodings/shift_jis.xml",
            "encodings/utf16_atom.xml", "encodings/atom03.xml", "encodings/rss092.xml",
            "feeds/rss10_rdf.xml", "feeds/relative_links_rss.xml",
            "feeds/relative_links_xmlbase.atom", "feeds/html_entities.xml",
            "feeds/missing_dates.xml", "feeds/windows1251.xml", "feeds/iso8859_1.xml",
            "integration/desk_rss.xml"]


def articles(parsed: ParsedFeed) -> list[Article]:
    return normalise_entries(parsed.entries, source="desk", now=NOW)


def feedparser_only(body: bytes, content_type: str | None = None) -> ParsedFeed | Exception:
    try:
        return parse_feed("desk", body, content_type=content_type, fast_path=False)
    except ParseError as exc:
        return exc


def assert_same_as_feedparser(body: bytes, content_type: str | None = None) -> bool:
    """True if the fast path accepted the body (and then agreed with feedparser)."""
    quick = fast_parse("desk", body, content_type=content_type)
    if quick is None:
        return False
    slow = feedparser_only(body, content_type)
    assert not isinstance(slow, Exception), f"fast path read what feedparser refuses: {slow}"
    assert articles(quick) == articles(slow)
    assert (quick.title, quick.ttl_seconds) == (slow.title, slow.ttl_seconds)
    assert [e.author for e in quick.entries] == [e.author for e in slow.entries]
    return True


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_fixture_is_declined_or_read_like_feedparser(path: Path) -> None:
    body = path.read_bytes()
    try:
        parse_feed("desk", body, fast_path=False)
    except HostileFeedError:
        return  # the XML guard stops these before any parser runs
    except ParseError:
        pass
    assert_same_as_feedparser(body)


def test_generated_news_feeds_take_the_fast_path_and_agree() -> None:
    epoch = recent_epoch(NOW)
    for index in range(40):
        body = feed_xml(index, items_min=20, items_max=100, epoch=epoch)
        assert assert_same_as_feedparser(body, "application/rss+xml; charset=utf-8")


@pytest.mark.parametrize("name", PLAIN)
def test_plain_feeds_take_the_fast_path(name: str) -> None:
    assert assert_same_as_feedparser((FIXTURES / name).read_bytes())


@pytest.mark.parametrize("name", DECLINED)
def test_feeds_that_need_feedparser_are_declined(name: str) -> None:
    assert fast_parse("desk", (FIXTURES / name).read_bytes()) is None


PLAIN_ITEM = """<item><title>Rail link reopens</title><link>https://desk.example/rail</link>
<description>&lt;p&gt;Trains run again.&lt;/p&gt;</description>
<pubDate>Tue, 02 Jan 2024 09:00:00 GMT</pubDate></item>"""


def rss_with(item: str, *, prolog: str = '<?xml version="1.0" encoding="utf-8"?>') -> bytes:
    return (f'{prolog}<rss version="2.0"><channel><title>Desk</title>{PLAIN_ITEM}{item}'
            "</channel></rss>").encode()


@pytest.mark.parametrize(
    "item",
    [
        "<item><title>Relative</title><link>/a/relative</link></item>",
        "<item><title>No link</title><guid>https://desk.example/g</guid></item>",
        "<item><title>Bold &lt;b&gt;claim&lt;/b&gt;</title><link>https://d.example/b</link></item>",
        "<item><title>Twice &amp;amp; escaped</title><link>https://d.example/t</link></item>",
        "<item><title>S</title><link>https://d.example/s</link>"
        "<description>&lt;script&gt;alert(1)&lt;/script&gt;text</description></item>",
        "<item><title>C</title><link>https://d.example/c</link>"
        "<description>&lt;!-- hidden --&gt;shown</description></item>",
        '<item xmlns:dc="http://purl.org/dc/elements/1.1/"><title>D</title>'
        "<link>https://d.example/d</link><dc:date>2024-01-02T09:00:00Z</dc:date></item>",
        "<item><title>Z</title><link>https://d.example/z</link>"
        "<pubDate>Tue, 02 Jan 2024 09:00:00</pubDate></item>",
        "<item><title>Odd date</title><link>https://d.example/o</link>"
        "<pubDate>2024-01-02 09:00</pubDate></item>",
        '<item xmlns:content="http://purl.org/rss/1.0/modules/content/"><title>E</title>'
        "<link>https://d.example/e</link><content:encoded>&lt;p&gt;Body&lt;/p&gt;"
        "</content:encoded></item>",
    ],
    ids=["relative-link", "no-link", "markup-title", "double-escaped-title", "script",
         "html-comment", "dc-date-only", "date-without-zone", "iso-date-in-rss",
         "content-encoded-only"],
)
def test_one_doubtful_item_sends_the_whole_feed_to_feedparser(item: str) -> None:
    body = rss_with(item)
    assert fast_parse("desk", body) is None
    assert articles(parse_feed("desk", body)) == articles(feedparser_only(body))


@pytest.mark.parametrize(
    ("prolog", "content_type"),
    [
        ('<?xml version="1.0" encoding="windows-1251"?>', None),
        ('<?xml version="1.0"?>', "application/rss+xml; charset=ISO-8859-1"),
        ('<?xml version="1.0"?><!DOCTYPE rss>', None),
    ],
    ids=["declared-legacy", "http-charset", "doctype"],
)
def test_anything_but_plain_utf8_is_declined(prolog: str, content_type: str | None) -> None:
    assert fast_parse("desk", rss_with("", prolog=prolog), content_type=content_type) is None


def test_max_items_is_applied_and_reported_like_feedparser() -> None:
    body = feed_xml(3, items_min=30, items_max=30, epoch=recent_epoch(NOW))
    quick = fast_parse("desk", body, max_items=10)
    slow = parse_feed("desk", body, max_items=10, fast_path=False)
    assert quick is not None and len(quick.entries) == 10
    assert articles(quick) == articles(slow)
    assert quick.problem == slow.problem == "30 entries, kept the first 10"


@pytest.mark.parametrize(
    ("name", "title"),
    [
        ("euc_kr.xml", "북한, 러시아에 포탄 수백만 발 수출 정황"),
        ("koi8_r.xml", "КНДР и Россия договорились о расширении железнодорожного сообщения"),
        ("shift_jis.xml", "北朝鮮とロシア、軍事協力を強化へ"),
        ("utf16_atom.xml", "Putin arrives in Pyongyang for first visit in 24 years"),
        ("misdeclared_cp1252.xml", "Kim’s envoy in Moscow – talks on grain"),
        ("undeclared_latin1.xml", "Café diplomacy: Pyongyang envoy in Vladivostok"),
        ("atom03.xml", "Kim's armoured train crosses into Russia"),
        ("rss092.xml", "Russian delegation visits Rason port"),
    ],
)
def test_every_encoding_and_dialect_comes_out_right(name: str, title: str) -> None:
    parsed = parse_feed("desk", (FIXTURES / "encodings" / name).read_bytes())
    assert articles(parsed)[0].title == title


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        b"<title>T</title><author><name>Feed Desk</name></author><id>u</id><entry><title>A"
        b'</title><id>u1</id><link href="https://x.example/1"/><updated>2024-01-01T00:00:00Z'
        b"</updated><summary>s</summary></entry></feed>",
        b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
        b'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>T</title><managingEditor>'
        b"ed@x.example (Ed)</managingEditor><item><title>A</title><link>https://x.example/1"
        b"</link><dc:creator> Jane  Roe </dc:creator></item></channel></rss>",
    ],
    ids=["feed-level-atom-author", "dc-creator"],
)
def test_authors_agree_with_feedparser(body: bytes) -> None:
    assert assert_same_as_feedparser(body)
