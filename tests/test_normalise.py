"""normalise: canonical URLs, HTML → text, stable ids, UTC dates (pure functions)."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from monitor.models import RawEntry
from monitor.normalise import (
    SUMMARY_MAX_CHARS,
    article_id,
    canonical_url,
    html_to_text,
    normalise_entries,
    normalise_entry,
)
from monitor.parse import parse_feed

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"
NOW = datetime(2025, 7, 1, 12, 0, tzinfo=UTC)


def entry(**kwargs: object) -> RawEntry:
    fields: dict[str, object] = {
        "feed_name": "desk",
        "guid": "g-1",
        "link": "https://news.example.org/a/1",
        "title": "Title",
        "summary_html": "<p>Summary</p>",
        "published": datetime(2025, 6, 30, 8, 0, tzinfo=UTC),
        "author": None,
    }
    fields.update(kwargs)
    return RawEntry(**fields)  # type: ignore[arg-type]


def fixture_entries(name: str, **kwargs: object) -> list[RawEntry]:
    body = (FIXTURES / name).read_bytes()
    return list(parse_feed("fixture", body, **kwargs).entries)  # type: ignore[arg-type]


# -- canonical_url ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HTTPS://News.Example.COM/World/", "https://news.example.com/World"),
        ("https://news.example.com:443/a", "https://news.example.com/a"),
        ("http://news.example.com:80/a", "http://news.example.com/a"),
        ("http://news.example.com:8080/a", "http://news.example.com:8080/a"),
        ("https://news.example.com", "https://news.example.com/"),
        ("https://news.example.com/", "https://news.example.com/"),
        ("https://news.example.com/a#comments", "https://news.example.com/a"),
        ("https://e.example/a?b=2&a=1", "https://e.example/a?a=1&b=2"),
        ("https://e.example/a?utm_source=rss&utm_medium=x&UTM_Campaign=y", "https://e.example/a"),
        ("https://e.example/a?id=7&fbclid=1&gclid=2&mc_cid=3&mc_eid=4", "https://e.example/a?id=7"),
        ("https://e.example/a?ref=home&cmpid=rss&id=7", "https://e.example/a?id=7"),
        ("https://e.example/a?q=a%20b&amp", "https://e.example/a?amp&q=a%20b"),  # kept as written
        ("  https://e.example/a  ", "https://e.example/a"),
        ("http://[2001:DB8::1]:80/x", "http://[2001:db8::1]/x"),
        ("mailto:desk@example.org", "mailto:desk@example.org"),
        ("/relative/path/", "/relative/path/"),
        ("http://e.example:99999/x", "http://e.example:99999/x"),  # unparseable port: unchanged
    ],
)
def test_canonical_url(raw: str, expected: str) -> None:
    assert canonical_url(raw) == expected


def test_canonical_url_is_idempotent() -> None:
    url = "HTTPS://Track.Example.COM:443/story/x/?utm_source=a&z=1&b=2#top"
    once = canonical_url(url)
    assert canonical_url(once) == once


# -- html_to_text -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>One</p><p>Two</p>", "One Two"),
        ("<b>Bold</b> news", "Bold news"),
        ("line<br>break<br/>again", "line break again"),
        ("Kim &amp; Putin &#8216;meet&#8217; &lt;again&gt;", "Kim & Putin ‘meet’ <again>"),
        ("Analyst&amp;#8217;s view", "Analyst’s view"),  # escaped twice by the feed
        ("AT&amp;T&amp;notice", "AT&T&notice"),  # no semicolon: not an entity
        ("before<script>var x = '<p>';</script>after", "beforeafter"),
        ("<style>p { color: red }</style>visible", "visible"),
        ("  lots \n\t of   <i>space</i>\u00a0here ", "lots of space here"),
        ("nul\x00and\x07bell", "nulandbell"),
        ("<!-- a comment -->text", "text"),
        ("5 < 7 and 9 > 3", "5 < 7 and 9 > 3"),
        ("", ""),
    ],
)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


# -- article_id ---------------------------------------------------------------------------------


@pytest.mark.parametrize("plain", [
    "Pyongyang and Moscow sign a rail accord", "  spaced\tout\r\nlines  ", "ctrl\x07char",
    "Москва и Пхеньян", "북한과 러시아", "semicolons; quotes \" ' and > signs", "\u00a0nbsp\u2009",
])
def test_text_without_markup_skips_the_parser_and_reads_the_same(plain: str) -> None:
    # Adding one harmless tag forces the parser; the result must not change.
    assert html_to_text(plain) == html_to_text(f"<span>{plain}</span>")


def test_article_id_is_guid_and_link_and_ignores_everything_else() -> None:
    a = entry()
    updated = replace(a, title="Changed", summary_html="<p>new text</p>", published=None,
                      link="https://NEWS.example.org/a/1/?utm_source=rss&fbclid=x")
    assert article_id(a) == article_id(updated)  # an updated story stays one item
    assert len(article_id(a)) == 32
    assert all(c in "0123456789abcdef" for c in article_id(a))


def test_a_reused_guid_with_another_link_is_another_item() -> None:
    ids = {article_id(entry(link=f"https://news.example.org/a/{n}")) for n in range(3)}
    assert len(ids) == 3
    assert article_id(entry(link="https://news.example.org/a/1")) != article_id(
        entry(feed_name="other", link="https://news.example.org/a/1"))


def _guid_only_id(feed: str, guid: str) -> str:
    """The id every version before guid+link keys: stored rows carry it."""
    return hashlib.sha256(f"feed:{feed}\nguid:{guid}".encode()).hexdigest()[:32]


@pytest.mark.parametrize(
    ("guid", "link"),
    [
        ("https://news.example.org/a/1", "https://news.example.org/a/1"),
        ("https://news.example.org/a/1", "https://news.example.org/a/1/?utm_medium=rss"),
        ("HTTP://News.example.org:80/a/1", "http://news.example.org/a/1"),
        ("g-1", None),
        ("https://news.example.org/?p=123", None),
    ],
)
def test_permalink_guids_and_linkless_entries_keep_their_stored_ids(
    guid: str, link: str | None
) -> None:
    assert article_id(entry(guid=guid, link=link)) == _guid_only_id("desk", guid)


def test_article_id_falls_back_to_canonical_link() -> None:
    a = entry(guid=None, link="https://E.example/story/?utm_source=rss")
    b = entry(guid=None, link="https://e.example/story", title="Other title")
    assert article_id(a) == article_id(b)
    assert article_id(a) != article_id(entry(guid=None, link="https://e.example/other"))


def test_article_id_falls_back_to_text() -> None:
    a = entry(guid=None, link=None, title="<b>Same</b>", summary_html="<p>text</p>")
    b = entry(guid=None, link=None, title="Same", summary_html="text")
    c = entry(guid=None, link=None, title="Same", summary_html="different")
    assert article_id(a) == article_id(b)
    assert article_id(a) != article_id(c)


def test_article_id_keys_differ_by_kind_and_by_feed() -> None:
    # A guid that happens to equal a URL must not collide with that URL's fallback id.
    url = "https://e.example/1"
    assert article_id(entry(guid=url, link=None)) != article_id(entry(guid=None, link=url))
    # Sites number their guids 1, 2, 3…: two feeds' item "1" are different stories.
    assert article_id(entry(guid="1")) != article_id(entry(guid="1", feed_name="other"))


def test_article_ids_do_not_depend_on_order_or_time() -> None:
    entries = fixture_entries("rss20_news.xml")
    forward = [a.id for a in normalise_entries(entries, source="desk", now=NOW)]
    later = NOW + timedelta(days=3)
    backward = [a.id for a in normalise_entries(entries[::-1], source="desk", now=later)]
    assert forward == backward[::-1]
    assert len(set(forward)) == len(forward)


# -- normalise_entry ----------------------------------------------------------------------------


def test_normalise_entry_fields() -> None:
    raw = entry(
        title="Kim &amp; Putin <b>meet</b>",
        summary_html="<p>Talks in <em>Pyongyang</em>.</p>",
        link="HTTPS://News.Example.ORG/a/1/?utm_source=rss",
        published=datetime(2025, 6, 30, 17, 0, tzinfo=timezone(timedelta(hours=9))),
    )
    article = normalise_entry(raw, source="Desk", now=NOW)
    assert article.id == article_id(raw)
    assert article.feed_name == "desk"
    assert article.source == "Desk"
    assert article.title == "Kim & Putin meet"
    assert article.summary == "Talks in Pyongyang."
    assert article.url == "https://news.example.org/a/1"
    assert article.published_at == datetime(2025, 6, 30, 8, 0, tzinfo=UTC)
    assert article.published_at.tzinfo is UTC
    assert article.first_seen_at == NOW
    assert article.guid == "g-1"


def test_missing_date_falls_back_to_now() -> None:
    article = normalise_entry(entry(published=None), source="s", now=NOW)
    assert article.published_at == NOW


def test_future_date_beyond_a_day_falls_back_to_now() -> None:
    soon = NOW + timedelta(hours=20)
    far = NOW + timedelta(days=2)
    assert normalise_entry(entry(published=soon), source="s", now=NOW).published_at == soon
    assert normalise_entry(entry(published=far), source="s", now=NOW).published_at == NOW


def test_naive_datetimes_are_taken_as_utc() -> None:
    naive_now = datetime(2025, 7, 1, 12, 0)
    article = normalise_entry(
        entry(published=datetime(2025, 6, 1, 6, 0)), source="s", now=naive_now
    )
    assert article.published_at == datetime(2025, 6, 1, 6, 0, tzinfo=UTC)
    assert article.first_seen_at == NOW


def test_long_summary_is_cut_at_a_word_boundary() -> None:
    words = " ".join(f"word{i}" for i in range(1000))
    article = normalise_entry(entry(summary_html=f"<p>{words}</p>"), source="s", now=NOW)
    assert len(article.summary) <= SUMMARY_MAX_CHARS + 1
    assert article.summary.endswith("…")
    last = article.summary[:-1].split(" ")[-1]
    assert last in words.split(" ")  # no half word before the ellipsis
    assert len(article.summary) > SUMMARY_MAX_CHARS * 0.9


def test_short_summary_is_untouched() -> None:
    article = normalise_entry(entry(summary_html="Short."), source="s", now=NOW)
    assert article.summary == "Short."


def test_title_falls_back_to_summary_then_url() -> None:
    from_summary = normalise_entry(entry(title="", summary_html="<p>Only text</p>"), source="s",
                                   now=NOW)
    assert from_summary.title == "Only text"
    from_url = normalise_entry(entry(title="", summary_html=""), source="s", now=NOW)
    assert from_url.title == "https://news.example.org/a/1"


def test_guid_permalink_is_used_when_link_is_missing() -> None:
    article = normalise_entry(
        entry(link=None, guid="https://e.example/p/9?utm_medium=x"), source="s", now=NOW
    )
    assert article.url == "https://e.example/p/9"
    no_url = normalise_entry(entry(link=None, guid="opaque-9"), source="s", now=NOW)
    assert no_url.url == ""


# -- normalise_entries on fixtures ---------------------------------------------------------------


def test_entries_without_title_or_link_are_skipped() -> None:
    entries = fixture_entries("missing_dates.xml")
    articles = normalise_entries(entries, source="undated", now=NOW)
    assert [a.guid for a in articles] == ["nd-1", "nd-2", "nd-3", "nd-4"]
    assert [a.published_at for a in articles] == [
        NOW, NOW, NOW, datetime(2025, 1, 10, 12, 0, tzinfo=UTC)
    ]
    blank = entry(title="  <b> </b> ", link=None)
    assert normalise_entries([blank], source="s", now=NOW) == []


def test_html_fixture_becomes_plain_text() -> None:
    articles = {a.guid: a for a in normalise_entries(
        fixture_entries("html_entities.xml"), source="markup", now=NOW
    )}
    assert articles["ent-1"].title == "Kim & Putin sign ‘comprehensive’ pact <analysis>"
    assert articles["ent-1"].summary == (
        "Leaders met for talks lasting several hours. Full text below."
    )
    assert articles["ent-2"].title == "Bold claims: shells shipped by rail"
    assert articles["ent-2"].summary == (
        "Satellite images show freight cars at a border station."
    )
    assert articles["ent-3"].title == "Analyst’s view: what the treaty means"
    assert "Q&A" in articles["ent-3"].summary
    assert "5 < 7" in articles["ent-3"].summary


def test_tracking_fixture_gets_canonical_urls() -> None:
    articles = normalise_entries(fixture_entries("tracking_params.xml"), source="t", now=NOW)
    assert [a.url for a in articles] == [
        "https://track.example.com/story/kursk-deployment?id=42&page=2",
        "https://track.example.com/story/kursk-deployment?id=42&page=2",
        "http://track.example.com/",
    ]


def test_non_latin_text_survives() -> None:
    articles = normalise_entries(fixture_entries("windows1251.xml"), source="dv", now=NOW)
    assert articles[0].title == "Шойгу прибыл в Пхеньян"
