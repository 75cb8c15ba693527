"""OPML: readers' exports come in intact, hostile XML is refused, merging keeps the config."""

from __future__ import annotations

import logging
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from monitor.errors import SettingsError
from monitor.opml import (
    MAX_DEPTH,
    OpmlError,
    OpmlFeed,
    merge_into_config_toml,
    parse_opml,
    read_opml,
    read_opml_file,
    toml_string,
    write_opml,
)
from monitor.settings import default_config_path, load_settings

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "opml"
CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
KEYWORDS = (CONFIG_DIR / "keywords.toml").read_text(encoding="utf-8")


def _opml(body: str, head: str = "<title>t</title>") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<opml version="2.0"><head>{head}</head><body>\n{body}\n</body></opml>\n'
    ).encode()


# --- round trip ----------------------------------------------------------------------

TRICKY_FEEDS = [
    ("Plain", "https://plain.example.org/rss", ()),
    ('Quotes "double" & \'single\' <angle>', "https://q.example.org/rss?a=1&b=2", ("korea",)),
    ("Юнхап — 연합뉴스", "https://unicode.example.kr/feed", ("korea", "analysis")),
    ("Back\\slash ]] # not a comment", "http://bs.example.net:8080/x.xml", ("russia",)),
    ("Second in folder", "https://second.example.org/rss", ("korea", "state-media")),
]


def test_write_then_read_gives_the_same_feeds() -> None:
    data = write_opml(TRICKY_FEEDS, title="Monitor feeds & more")
    document = parse_opml(data, source="roundtrip")
    assert document.title == "Monitor feeds & more"
    assert document.warnings == ()
    got = {f.url: (f.name, f.tags) for f in document.feeds}
    assert got == {url: (name, tuple(tags)) for name, url, tags in TRICKY_FEEDS}


def test_written_opml_is_opml_2_with_folders_categories_and_escaping() -> None:
    created = datetime(2024, 6, 3, 8, 15, tzinfo=UTC)
    data = write_opml(
        [("Bad\x00\x07 chars", "https://x.example.org/a?b=1&c=2", ("korea", "analysis"))],
        title="T",
        date_created=created,
    )
    assert data.startswith(b"<?xml")
    root = ET.fromstring(data)
    assert root.tag == "opml" and root.get("version") == "2.0"
    assert root.findtext("head/dateCreated") == "Mon, 03 Jun 2024 08:15:00 GMT"
    (folder,) = root.findall("body/outline")
    assert folder.get("text") == "korea" and folder.get("xmlUrl") is None
    (feed,) = folder.findall("outline")
    assert feed.get("xmlUrl") == "https://x.example.org/a?b=1&c=2"
    assert b"a?b=1&amp;c=2" in data
    assert feed.get("text") == "Bad chars" and feed.get("type") == "rss"
    assert feed.get("category") == "/korea,/analysis"


def test_the_shipped_config_exports_and_reimports_without_loss() -> None:
    settings = load_settings(default_config_path(), env={})
    data = write_opml([(f.name, f.url, f.tags) for f in settings.feeds], title="Monitor")
    feeds = read_opml(data, source="export")
    assert len(feeds) == len(settings.feeds)
    assert {f.url: (f.name, f.tags) for f in feeds} == {
        f.url: (f.name, f.tags) for f in settings.feeds
    }


# --- a reader's real-world export ----------------------------------------------------


def test_reader_export_gives_clean_unique_feeds_and_says_what_it_skipped() -> None:
    document = read_opml_file(FIXTURES / "reader_export.opml")
    assert document.title == "Analyst subscriptions in Example Reader"
    assert list(document.feeds) == [
        OpmlFeed("Pyongyang Watch", "https://pyongyang-watch.example.org/feed/",
                 ("Korean Peninsula",)),
        OpmlFeed("Border & Sanctions Desk", "https://sanctions.example.com/rss.xml",
                 ("Korean Peninsula",)),
        OpmlFeed("Tumen River Notes – blog", "https://tumen.example.net/atom.xml",
                 ("Korean Peninsula", "Analysis")),
        OpmlFeed("Pyongyang Watch (2)", "https://mirror.example.org/pyongyang-watch.rss",
                 ("Korean Peninsula", "Analysis", "Korea", "think-tanks")),
        OpmlFeed("Far East Ports", "http://ports.example.ru/news.rss", ("Russia",)),
        OpmlFeed("vladivostok.example.ru", "http://vladivostok.example.ru/rss", ("Russia",)),
        OpmlFeed("World wire", "https://wire.example.com/world.xml", ()),
    ]
    warnings = "\n".join(document.warnings)
    assert len(document.warnings) == 5
    assert "line 29" in warnings and "same URL as the feed on line 28" in warnings
    assert "ftp://files.example.ru/feed.xml" in warnings
    assert "file:///etc/passwd" in warnings
    assert "renamed 'Pyongyang Watch (2)'" in warnings
    assert "Ministry home page" in warnings


def test_read_opml_logs_each_warning(caplog: pytest.LogCaptureFixture) -> None:
    data = _opml('<outline text="x" xmlUrl="javascript:alert(1)"/>')
    with caplog.at_level(logging.WARNING, logger="monitor.opml"):
        assert read_opml(data, source="mem") == []
    assert "javascript:alert(1)" in caplog.text and "mem line" in caplog.text


def test_duplicate_tags_from_folders_and_categories_collapse() -> None:
    data = _opml(
        '<outline text="Korea"><outline text="A" xmlUrl="https://a.example.org/"'
        ' category="/korea/Korea,/Russia, /russia"/></outline>'
    )
    (feed,) = read_opml(data, source="mem")
    assert feed.tags == ("Korea", "Russia")


# --- refusals ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fixture", ["billion_laughs.opml", "external_entity.opml", "parameter_entity.opml"]
)
def test_hostile_declarations_are_refused_before_expansion(fixture: str) -> None:
    started = time.process_time()
    with pytest.raises(OpmlError) as info:
        read_opml_file(FIXTURES / fixture)
    assert time.process_time() - started < 0.5
    message = str(info.value)
    assert fixture in message and "line 3" in message and "DOCTYPE" in message


def test_declarations_are_refused_whatever_the_encoding() -> None:
    text = (FIXTURES / "billion_laughs.opml").read_text(encoding="utf-8")
    data = text.replace('encoding="utf-8"', 'encoding="utf-16"').encode("utf-16")
    with pytest.raises(OpmlError, match="DOCTYPE"):
        parse_opml(data, source="utf16")


def test_undeclared_html_entity_is_a_clear_error_with_line() -> None:
    data = _opml('<outline text="A&nbsp;B" xmlUrl="https://a.example.org/"/>')
    with pytest.raises(OpmlError, match=r"mem: not well-formed XML at line 3.*undefined entity"):
        parse_opml(data, source="mem")


def test_a_feed_instead_of_opml_names_the_root_element() -> None:
    with pytest.raises(OpmlError, match=r"root element is <rss>"):
        read_opml_file(FIXTURES / "not_opml.xml")


def test_opml_without_body_is_refused() -> None:
    with pytest.raises(OpmlError, match="no <body>"):
        parse_opml(b"<opml version='2.0'><head/></opml>", source="mem")


def test_oversized_input_is_refused_without_parsing(tmp_path: Path) -> None:
    with pytest.raises(OpmlError, match="larger than 1,000 bytes"):
        parse_opml(_opml("<outline/>" * 200), source="mem", max_bytes=1_000)
    path = tmp_path / "big.opml"
    path.write_bytes(_opml("<outline/>" * 200))
    with pytest.raises(OpmlError, match="larger than"):
        read_opml_file(path, max_bytes=1_000)


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    depth = MAX_DEPTH + 1
    data = _opml('<outline text="f">' * depth + "</outline>" * depth)
    with pytest.raises(OpmlError, match="nested deeper"):
        parse_opml(data, source="mem")


def test_missing_file_is_an_opml_error(tmp_path: Path) -> None:
    with pytest.raises(OpmlError, match="cannot be read"):
        read_opml_file(tmp_path / "absent.opml")


# --- merging into the config ---------------------------------------------------------


def _write_config(tmp_path: Path, text: str) -> Path:
    (tmp_path / "keywords.toml").write_text(KEYWORDS, encoding="utf-8")
    path = tmp_path / "monitor.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_merge_keeps_comments_skips_known_urls_and_validates(tmp_path: Path) -> None:
    original = default_config_path().read_text(encoding="utf-8")
    imported = [
        OpmlFeed("NK News copy", "HTTPS://www.NKNEWS.org:443/feed/", ("korea",)),  # known URL
        OpmlFeed("NK News", "https://other.example.org/nk.rss", ("korea",)),  # known name
        OpmlFeed('Quote " and \\ and\ttab', "https://q.example.org/rss?a=1&b=2", ()),
        OpmlFeed("Юнхап", "https://unicode.example.kr/feed", ("Korean Peninsula", "분석")),
    ]
    merged, added, skipped = merge_into_config_toml(original, imported, note="from test.opml")
    assert (added, skipped) == (3, 1)
    assert merged.startswith(original)  # every comment and line kept as it was
    assert "# from test.opml\n[[feeds]]" in merged

    settings = load_settings(_write_config(tmp_path, merged), env={})
    before = load_settings(default_config_path(), env={})
    assert settings.feeds[: len(before.feeds)] == before.feeds
    new = [(f.name, f.url, f.tags) for f in settings.feeds[len(before.feeds) :]]
    assert new == [
        ("NK News (2)", "https://other.example.org/nk.rss", ("korea",)),
        ('Quote " and \\ and\ttab', "https://q.example.org/rss?a=1&b=2", ()),
        ("Юнхап", "https://unicode.example.kr/feed", ("Korean Peninsula", "분석")),
    ]

    again, added, skipped = merge_into_config_toml(merged, imported)
    assert (again, added, skipped) == (merged, 0, 4)


def test_merge_of_a_reader_export_into_a_config_without_feeds(tmp_path: Path) -> None:
    original = "# hand-written\n[logging]\nlevel = \"INFO\"  # keep me"  # no final newline
    feeds = read_opml_file(FIXTURES / "reader_export.opml").feeds
    merged, added, skipped = merge_into_config_toml(original, feeds)
    assert (added, skipped) == (len(feeds), 0)
    assert merged.startswith(original + "\n")
    settings = load_settings(_write_config(tmp_path, merged), env={})
    assert [(f.name, f.url, f.tags) for f in settings.feeds] == [
        (f.name, f.url, f.tags) for f in feeds
    ]


def test_merge_keeps_windows_line_endings() -> None:
    original = '[logging]\r\nlevel = "INFO"\r\n'
    merged, added, _ = merge_into_config_toml(original, [OpmlFeed("A", "https://a.example/")])
    assert added == 1 and merged.startswith(original)
    assert "\n" not in merged.replace("\r\n", "")
    assert tomllib.loads(merged)["feeds"] == [{"name": "A", "url": "https://a.example/"}]


def test_merge_refuses_inline_feed_arrays_and_broken_toml() -> None:
    inline = 'feeds = [{name = "A", url = "https://a.example/"}]\n'
    with pytest.raises(SettingsError, match="inline array"):
        merge_into_config_toml(inline, [OpmlFeed("B", "https://b.example/")])
    with pytest.raises(SettingsError, match="not valid TOML"):
        merge_into_config_toml("[logging\n", [OpmlFeed("B", "https://b.example/")])


@pytest.mark.parametrize(
    "value",
    ['"', "\\", '"""', "'''", "a\nb\r\nc", "\x00\x01\x1f\x7f", "tab\there", "ü 한 😀", "\\u0041"],
)
def test_toml_string_round_trips_through_tomllib(value: str) -> None:
    assert tomllib.loads(f"v = {toml_string(value)}")["v"] == value
