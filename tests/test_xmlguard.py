"""check_xml: entity declarations refused before feedparser, in any encoding feedparser reads."""

from __future__ import annotations

import base64
import io
import time
import tracemalloc
from pathlib import Path

import feedparser
import pytest

from monitor.errors import HostileFeedError, ParseError
from monitor.parse import parse_feed
from monitor.xmlguard import check_xml

HOSTILE = Path(__file__).parent / "fixtures" / "hostile"
FEEDS = Path(__file__).parent / "fixtures" / "feeds"


def load(name: str) -> bytes:
    return (HOSTILE / name).read_bytes()


def quadratic(value_chars: int, references: int, *, declaration: str = "") -> str:
    """One big plain entity referenced many times: the bomb feedparser does not defuse."""
    decl = declaration or '<?xml version="1.0" encoding="utf-8"?>'
    return (
        f'{decl}\n<!DOCTYPE rss [\n<!ENTITY blob "{"B" * value_chars}">\n]>\n'
        '<rss version="2.0"><channel><title>Q</title><item><title>q</title><guid>q1</guid>'
        f"<description>{'&blob;' * references}</description></item></channel></rss>"
    )


def refused(body: bytes, **kwargs: object) -> HostileFeedError:
    with pytest.raises(HostileFeedError) as info:
        check_xml(body, **kwargs)  # type: ignore[arg-type]
    assert info.value.kind == "xml_entities"
    assert "\n" not in str(info.value)
    return info.value


def feedparser_summary_chars(body: bytes, content_type: str = "application/xml") -> int:
    parsed = feedparser.parse(io.BytesIO(body), response_headers={"content-type": content_type})
    return len(parsed.entries[0].get("summary", ""))


# -- the bombs ---------------------------------------------------------------------------------


def test_billion_laughs_is_refused_quickly_and_named() -> None:
    started = time.perf_counter()
    error = refused(load("billion_laughs.xml"))
    assert time.perf_counter() - started < 0.1
    assert "10 XML entities" in str(error)
    assert "'ha0'" in str(error)


def test_quadratic_blowup_is_refused_quickly_in_bounded_memory() -> None:
    body = quadratic(100_000, 5_000).encode()  # 125 KB; feedparser makes it 500 MB
    tracemalloc.start()
    try:
        started = time.perf_counter()
        error = refused(body)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 0.5  # about 1 ms when the machine is idle
    assert peak < 2 * 1024 * 1024  # only the prolog is decoded
    assert "'blob'" in str(error)


def test_parse_feed_runs_the_guard_itself() -> None:
    # The guard is inside parse_feed, so no caller can reach feedparser without it.
    started = time.perf_counter()
    with pytest.raises(HostileFeedError) as info:
        parse_feed("bomb", quadratic(100_000, 5_000).encode())
    assert time.perf_counter() - started < 0.5
    assert isinstance(info.value, ParseError)
    assert info.value.kind == "xml_entities"


@pytest.mark.parametrize(
    ("encode", "content_type"),
    [
        (lambda s: s.encode("utf-8"), "application/xml"),
        (lambda s: s.replace("utf-8", "utf-16").encode("utf-16"), "application/xml"),
        (
            lambda s: s.split("\n", 1)[1].encode("utf-16-le"),  # no BOM, no declaration
            "application/rss+xml; charset=utf-16le",
        ),
        (lambda s: _utf7_markup(s.replace("utf-8", "utf-7")), "application/xml"),
    ],
    ids=["utf-8", "utf-16-bom", "utf-16-from-http-charset", "utf-7-escaped-markup"],
)
def test_the_small_bomb_really_expands_in_feedparser_and_the_guard_refuses_it(
    encode: object, content_type: str
) -> None:
    # 1 KB × 1,000 references: small enough to let feedparser expand it here, to show
    # that each encoding really is a way in, and that the guard closes each one.
    body = encode(quadratic(1_000, 1_000))  # type: ignore[operator]
    assert feedparser_summary_chars(body, content_type) >= 1_000_000
    refused(body, content_type=content_type)


def _utf7_markup(text: str) -> bytes:
    """UTF-7 lets every markup character hide as a base64 run: ``<`` is ``+ADw-``."""
    declaration, rest = text.split("\n", 1)
    prolog, root = rest.split("<rss", 1)
    for char in '<!>[]"':
        run = base64.b64encode(char.encode("utf-16-be")).decode().rstrip("=")
        prolog = prolog.replace(char, f"+{run}-")
    assert "<!ENTITY" not in prolog
    return f"{declaration}\n{prolog}<rss{root}".encode("ascii")


# -- encodings of the DOCTYPE ------------------------------------------------------------------


def test_utf16_fixture_with_bom_is_refused() -> None:
    body = load("billion_laughs_utf16.xml")
    assert body[:2] == b"\xff\xfe" and b"<!DOCTYPE" not in body  # invisible to a byte scan
    assert "utf-16" in str(refused(body))


@pytest.mark.parametrize(
    "codec", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be", "utf-32", "cp037"]
)
def test_doctype_in_other_encodings_is_refused(codec: str) -> None:
    text = load("billion_laughs.xml").decode().replace('encoding="utf-8"', f'encoding="{codec}"')
    refused(text.encode(codec))


def test_encoding_declared_on_a_later_line_is_read_too() -> None:
    # feedparser reads the encoding from the first line only; the XML spec lets the
    # declaration span lines. Reading both costs nothing and covers either reading.
    body = _utf7_markup(quadratic(10, 3).replace("utf-8", "utf-7"))
    first_line, rest = body.split(b"\n", 1)
    refused(first_line.replace(b" encoding=", b"\n encoding=") + b"\n" + rest)


def test_charset_from_http_header_alone_is_a_view() -> None:
    body = quadratic(10, 3).split("\n", 1)[1].encode("utf-16-be")
    check_xml(body)  # without the header feedparser reads it as UTF-8 garbage: nothing to fear
    refused(body, content_type="text/xml; charset=UTF-16BE")


# -- what a naive scan would miss ----------------------------------------------------------------


def test_entities_hidden_behind_a_fake_tag_in_the_subset_are_found() -> None:
    refused(load("hidden_behind_attlist.xml"))


def test_entities_after_a_literal_holding_a_bracket_are_found() -> None:
    # "]>" inside a quoted default does not end the internal subset for an XML parser.
    body = (
        b'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ATTLIST rss note CDATA "]><x>">\n'
        b'<!ENTITY blob "BBBB">\n]>\n<rss><channel><title>&blob;</title></channel></rss>'
    )
    refused(body)


def test_doctype_cut_by_the_first_chunk_boundary_is_found() -> None:
    head = '<?xml version="1.0" encoding="utf-8"?>\n<!-- <b>bold</b> '
    tail = " -->\n"
    padding = "p" * (4096 - 3 - len(head) - len(tail))  # "<!D" ends the first 4 KB
    text = head + padding + tail + quadratic(10, 3).split("\n", 1)[1]
    assert text.encode()[4093:4096] == b"<!D"
    refused(text.encode())


def test_doctype_after_a_long_comment_is_found() -> None:
    comment = "<!-- " + "padding " * 2_000 + "-->"
    text = quadratic(10, 3).replace("\n<!DOCTYPE", f"\n{comment}\n<!DOCTYPE")
    assert text.index("<!DOCTYPE") > 8_192  # past the first decoded chunks
    refused(text.encode())


def test_entity_after_a_non_ascii_root_is_found() -> None:
    # feedparser's own cut-off is the first "<" + ASCII word character, so a root element
    # named "<ёлка>" lets it collect declarations from inside the document.
    body = (
        '<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE x>\n<ёлка>\n'
        '<!ENTITY blob "BBBB">\n</ёлка>\n<rss><channel><item><description>&blob;'
        "</description></item></channel></rss>"
    ).encode()
    refused(body)


@pytest.mark.parametrize(
    "body",
    [
        b'<!doctype rss [<!entity a "x">]><rss/>',
        b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "x">',  # truncated document
        b'<?xml version="1.0"?>\n<!ENTITY a "x">\n<!DOCTYPE rss>\n<rss/>',  # outside DOCTYPE
    ],
    ids=["lower-case", "truncated", "outside-doctype"],
)
def test_odd_spellings_and_places_are_refused(body: bytes) -> None:
    refused(body)


# -- what must still parse -------------------------------------------------------------------------


def test_netscape_rss091_doctype_without_subset_passes_and_parses() -> None:
    body = load("rss091_netscape.xml")
    assert check_xml(body) is body  # no copy for the common case
    parsed = parse_feed("harbour", body)
    assert parsed.title == "Harbour Notes"
    assert [e.title for e in parsed.entries] == [
        "Cargo ship leaves Rajin for Vostochny", "Ferry timetable for the winter"
    ]


def test_internal_subset_without_entities_passes() -> None:
    body = b'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ATTLIST rss version CDATA "2.0">\n]>\n'
    body += b"<rss><channel><title>t</title><item><title>ok</title></item></channel></rss>"
    assert check_xml(body) is body
    assert parse_feed("attlist", body).entries[0].title == "ok"


def test_entity_declaration_quoted_inside_an_item_passes() -> None:
    parsed = parse_feed("security", load("entity_mentioned_in_item.xml"))
    assert parsed.entries[0].title == "How entity bombs work"
    assert "ENTITY" in parsed.entries[0].summary_html


@pytest.mark.parametrize("name", sorted(p.name for p in FEEDS.glob("*.xml")))
def test_every_ordinary_fixture_passes(name: str) -> None:
    body = (FEEDS / name).read_bytes()
    assert check_xml(body, content_type="application/rss+xml; charset=utf-8") is body


def test_ordinary_feed_costs_microseconds() -> None:
    body = (FEEDS / "rss20_news.xml").read_bytes()
    started = time.perf_counter()
    for _ in range(1_000):
        check_xml(body, content_type="application/rss+xml; charset=utf-8")
    assert time.perf_counter() - started < 1.0  # about 15 µs each when the machine is idle


# -- the bounded allowance ---------------------------------------------------------------------


def test_a_few_harmless_entities_can_be_allowed() -> None:
    body = load("legacy_nbsp_entity.xml")
    refused(body)
    parsed = parse_feed("legacy", body, max_entity_declarations=1)
    assert parsed.entries[0].title == "Talks\u00a0resume in Vladivostok"


@pytest.mark.parametrize("name", ["external_entity.xml", "parameter_entity.xml"])
def test_external_and_parameter_entities_are_refused_whatever_the_limit(name: str) -> None:
    error = refused(load(name), max_entity_declarations=10)
    assert "always refused" in str(error)


@pytest.mark.parametrize(
    ("declarations", "reason"),
    [
        ('<!ENTITY a "x"><!ENTITY b "&a;&a;">', "references"),
        ('<!ENTITY a "&#38;b;&#38;b;">', "references"),  # becomes "&b;&b;" when declared
        ('<!ENTITY a "&#x26;">', "references"),
        ('<!ENTITY a "<b>bold</b>">', "markup"),
        (f'<!ENTITY a "{"x" * 300}">', "300 characters"),
        ('<!ENTITY % p "harmless">', "parameter entity"),
    ],
)
def test_allowed_entities_must_be_plain_and_short(declarations: str, reason: str) -> None:
    body = f'<!DOCTYPE rss [{declarations}]><rss><channel/></rss>'.encode()
    assert reason in str(refused(body, max_entity_declarations=10))


def test_allowed_entities_are_bounded_in_total_expansion() -> None:
    body = quadratic(200, 6_000).encode()  # 1.2 M characters once expanded
    assert "1200000" in str(refused(body, max_entity_declarations=1))
    check_xml(quadratic(200, 4_000).encode(), max_entity_declarations=1)  # 800 K: allowed
