"""parse_feed on the fixture feeds: formats, encodings, relative links, the bozo policy."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.errors import ParseError
from monitor.models import ParsedFeed, RawEntry
from monitor.parse import parse_feed
from tests.support.feed_server import FeedServer

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def parse(name: str, **kwargs: object) -> ParsedFeed:
    return parse_feed("test-feed", load(name), **kwargs)  # type: ignore[arg-type]


def by_guid(parsed: ParsedFeed) -> dict[str | None, RawEntry]:
    return {e.guid: e for e in parsed.entries}


# -- the three formats -------------------------------------------------------------------------


def test_rss20() -> None:
    parsed = parse("rss20_news.xml", content_type="application/rss+xml; charset=utf-8",
                   base_url="https://desk.example.org/feed.xml")
    assert parsed.feed_name == "test-feed"
    assert parsed.title == "Northeast Asia Desk"
    assert parsed.problem is None
    assert [e.guid for e in parsed.entries] == [f"nad-010{i}" for i in range(1, 6)]
    first = parsed.entries[0]
    assert first.feed_name == "test-feed"
    assert first.link == "https://desk.example.org/2024/06/19/putin-pyongyang-visit"
    assert first.title == "Putin lands in Pyongyang for first visit in 24 years"
    assert "Kim Jong Un" in first.summary_html
    assert first.published == datetime(2024, 6, 19, 3, 10, tzinfo=UTC)  # +0900 in the file
    assert first.author == "Staff reporter"
    assert all(e.published is not None and e.published.tzinfo is UTC for e in parsed.entries)


def test_atom10() -> None:
    parsed = parse("atom10_news.xml", content_type="application/atom+xml")
    assert parsed.title == "Harbour Wire: Asia"
    assert parsed.problem is None
    ids = [e.guid for e in parsed.entries]
    assert ids == [f"tag:harbourwire.example.net,2024:asia-{i}" for i in range(1, 5)]
    one, two, three, _ = parsed.entries
    assert one.published == datetime(2024, 10, 23, 9, 0, tzinfo=UTC)  # published beats updated
    assert two.published == datetime(2024, 11, 20, 12, 0, tzinfo=UTC)  # only <updated>
    assert three.summary_html.startswith("<p>The first train")  # from <content type="html">
    assert "<b>tourists</b>" in three.summary_html
    assert one.author == "Harbour Wire staff"
    assert one.link == "https://harbourwire.example.net/asia/2024/10/23/troops-far-east"


def test_rss10_rdf() -> None:
    parsed = parse("rss10_rdf.xml", content_type="application/rdf+xml")
    assert parsed.title == "Frontier Digest"
    assert parsed.problem is None
    assert len(parsed.entries) == 3
    first = parsed.entries[0]
    assert first.link == "https://digest.example.com/items/lavrov-wonsan"
    assert first.guid == "https://digest.example.com/items/lavrov-wonsan"  # rdf:about
    assert first.published == datetime(2025, 7, 12, 6, 0, tzinfo=UTC)
    assert first.author == "Digest desk"
    assert parsed.entries[1].published == datetime(2025, 8, 30, 1, 15, tzinfo=UTC)


def test_empty_but_valid_feed_is_not_an_error() -> None:
    body = b"<?xml version='1.0'?><rss version='2.0'><channel><title>Quiet</title></channel></rss>"
    parsed = parse_feed("quiet", body)
    assert parsed.entries == ()
    assert parsed.title == "Quiet"
    assert parsed.problem is None


def test_missing_content_type_is_not_reported_as_a_problem() -> None:
    # file:// fetches have no Content-Type; that alone must not make every such feed "bozo".
    parsed = parse("rss20_news.xml", base_url="file:///srv/mirror/rss20_news.xml")
    assert parsed.problem is None
    assert len(parsed.entries) == 5


# -- encodings ---------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", [None, "application/rss+xml", "application/xml"])
def test_windows_1251(content_type: str | None) -> None:
    parsed = parse("windows1251.xml", content_type=content_type)
    assert parsed.problem is None
    assert parsed.title == "Новости Дальнего Востока"
    assert [e.title for e in parsed.entries] == [
        "Шойгу прибыл в Пхеньян", "Во Владивостоке открылся новый мост"
    ]
    assert "КНДР" in parsed.entries[0].summary_html


def test_windows_1251_served_with_the_wrong_charset_still_decodes() -> None:
    parsed = parse("windows1251.xml", content_type="application/rss+xml; charset=utf-8")
    assert parsed.entries[0].title == "Шойгу прибыл в Пхеньян"
    assert parsed.problem is not None
    assert "CharacterEncodingOverride" in parsed.problem


def test_iso_8859_1() -> None:
    parsed = parse("iso8859_1.xml", content_type="text/xml; charset=ISO-8859-1")
    (entry,) = parsed.entries
    assert entry.title == "Pjöngjang und Moskau: Gespräche über Zugverbindung"
    assert "Präsident" in entry.summary_html
    assert "Grenzübergang" in entry.summary_html


# -- markup, links, dates ----------------------------------------------------------------------


def test_html_and_entities_stay_html_for_the_normaliser() -> None:
    entries = by_guid(parse("html_entities.xml"))
    one, two = entries["ent-1"], entries["ent-2"]
    # Titles that the feed marked as plain text come back escaped, so that
    # stripping tags later cannot eat a literal "<analysis>".
    assert one.title == "Kim &amp; Putin sign ‘comprehensive’ pact &lt;analysis&gt;"
    assert "<script>" not in one.summary_html  # feedparser sanitises
    assert two.title == "<b>Bold claims</b>: shells shipped by rail"


def test_plain_text_atom_title_is_escaped() -> None:
    body = (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>'
        b'<entry><id>1</id><title type="text">Profits &lt;b&gt; &amp; losses</title>'
        b'<summary type="text">a &lt; b</summary></entry></feed>'
    )
    (entry,) = parse_feed("atom", body).entries
    assert entry.title == "Profits &lt;b&gt; &amp; losses"
    assert entry.summary_html == "a &lt; b"


def test_relative_links_resolve_against_base_url() -> None:
    entries = by_guid(
        parse("relative_links_rss.xml", base_url="https://rel.example.net/feeds/world.xml")
    )
    assert entries["rr-1"].link == "https://rel.example.net/news/2024/belousov-visit"
    assert entries["rr-2"].link == "https://rel.example.net/feeds/local-weather.html"
    assert 'href="https://rel.example.net/about"' in entries["rr-1"].summary_html


def test_xml_base_wins_over_base_url() -> None:
    parsed = parse("relative_links_xmlbase.atom", base_url="https://elsewhere.example/x.xml")
    links = [e.link for e in parsed.entries]
    assert links == [
        "https://relative.example.com/world/asia/2024/11/ratification",
        "https://relative.example.com/briefs/sanctions-panel",
    ]


def test_relative_links_stay_relative_without_any_base() -> None:
    parsed = parse("relative_links_rss.xml")
    assert parsed.entries[0].link == "/news/2024/belousov-visit"


def test_missing_and_bad_dates() -> None:
    parsed = parse("missing_dates.xml")
    assert parsed.problem is None
    dates = [e.published for e in parsed.entries]
    assert dates == [
        None,
        None,
        datetime(2099, 1, 1, tzinfo=UTC),
        datetime(2025, 1, 10, 12, 0, tzinfo=UTC),
        None,
    ]
    orphan = parsed.entries[4]
    assert (orphan.guid, orphan.link, orphan.title) == (None, None, "")
    assert orphan.summary_html == "An orphan description with nothing else."


# -- the bozo policy and errors -----------------------------------------------------------------


def test_malformed_feed_keeps_recovered_entries() -> None:
    parsed = parse("malformed_recoverable.xml", content_type="application/rss+xml")
    assert [e.guid for e in parsed.entries] == ["mal-1", "mal-2", "mal-3"]
    assert "Rail &amp; port" in parsed.entries[0].title
    assert parsed.problem is not None
    assert "\n" not in parsed.problem
    assert "not well-formed" in parsed.problem


def test_character_reference_that_crashes_feedparser_becomes_parse_error() -> None:
    with pytest.raises(ParseError) as info:
        parse("bad_charref.xml")
    assert isinstance(info.value.__cause__, ValueError)
    assert "test-feed" in str(info.value)


@pytest.mark.parametrize("ref", ["&#x110000;", "&#99999999;", "&#xD800;"])
def test_other_crashing_references_become_parse_errors(ref: str) -> None:
    body = (
        "<rss version='2.0'><channel><title>t</title>"
        f"<item><title>bad {ref} ref</title><link>https://x.example/1</link></item>"
        "</channel></rss>"
    ).encode()
    with pytest.raises(ParseError):
        parse_feed("refs", body)


def test_html_page_is_not_a_feed() -> None:
    with pytest.raises(ParseError, match="not a feed"):
        parse("not_a_feed.html", content_type="text/html; charset=utf-8")


@pytest.mark.parametrize("body", [b"", b"   ", b"\x00\xff\xfe garbage", b'{"items": []}'])
def test_junk_is_not_a_feed(body: bytes) -> None:
    with pytest.raises(ParseError, match="not a feed"):
        parse_feed("junk", body, content_type="application/octet-stream")


def test_body_that_is_a_path_is_never_opened() -> None:
    # If the body were handed to feedparser as a string it would open this file
    # and find five entries; as bytes in a stream it is just an invalid document.
    absolute = FIXTURES / "rss20_news.xml"
    assert absolute.is_file()
    for candidate in (load("body_is_a_path.txt"), str(absolute).encode()):
        with pytest.raises(ParseError, match="not a feed"):
            parse_feed("path", candidate)


def test_body_that_is_a_url_is_never_fetched() -> None:
    with FeedServer() as server:
        url = server.add_file("/rss.xml", load("rss20_news.xml"))
        with pytest.raises(ParseError, match="not a feed"):
            parse_feed("url", url.encode())
        assert server.hits("/rss.xml") == 0


def test_max_items_keeps_the_first_entries_and_says_so() -> None:
    items = "".join(
        f"<item><title>Story {i}</title><guid>g{i}</guid></item>" for i in range(30)
    )
    body = f"<rss version='2.0'><channel><title>Busy</title>{items}</channel></rss>".encode()

    parsed = parse_feed("busy", body, max_items=10)

    assert [e.guid for e in parsed.entries] == [f"g{i}" for i in range(10)]
    assert parsed.problem is not None
    assert "30" in parsed.problem
    assert "10" in parsed.problem
    assert parse_feed("busy", body, max_items=30).problem is None



@pytest.mark.parametrize(("ttl", "expected"), [("45", 2700.0), (" 5 ", 300.0), ("0", None),
                                               ("soon", None), ("999999", None), (None, None)])
def test_rss_ttl_is_read_as_a_polling_hint(ttl: str | None, expected: float | None) -> None:
    tag = f"<ttl>{ttl}</ttl>" if ttl is not None else ""
    body = (f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>{tag}'
            '<item><title>a</title><link>https://example.org/a</link></item></channel></rss>')
    assert parse_feed("ttl", body.encode()).ttl_seconds == expected
