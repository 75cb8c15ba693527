"""Full text: pre-filter, page fetch under limits and netguard, extraction, batch enrichment.

All traffic goes to the FeedServer on 127.0.0.1, which the tests allow
explicitly; redirects towards refused addresses are stopped before any connection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from monitor.countries import CountryTerms, load_country_terms, mentions_country
from monitor.errors import FetchError, SettingsError
from monitor.fulltext import (
    DEFAULT_LIMITS,
    FullTextEnricher,
    build_fulltext_client,
    enrich,
    extend_summary,
    fetch_full_text,
    fetch_page,
    needs_full_text,
)
from monitor.http import FetchLimits, build_client
from monitor.models import Article
from tests.support.feed_server import FeedServer

ROOT = Path(__file__).resolve().parents[1]
ARTICLES = Path(__file__).parent / "fixtures" / "articles"
RAIL_PAGE = (ARTICLES / "rail_link_boilerplate.html").read_bytes()
FLIGHTS_PAGE = (ARTICLES / "flights_cp1251.html").read_bytes()
HTML = "text/html; charset=utf-8"
ALLOW = ["127.0.0.1"]
LIMITS = replace(DEFAULT_LIMITS, connect_timeout=2.0, read_timeout=2.0, total_timeout=3.0,
                 max_bytes=200_000)
TERMS = load_country_terms(ROOT / "config" / "keywords.toml")
NOW = datetime(2025, 6, 14, 12, 0, tzinfo=UTC)

BODY_PHRASES = (
    "road bridge across the Tumen River",
    "Khasan with Tumangang",
    "passenger rail service between Moscow and Pyongyang",
    "customs posts on both banks",
)
BOILERPLATE_PHRASES = (
    "Crossword and Sudoku Corner",      # navigation
    "Horoscopes",
    "Refinance your yacht",             # advertisements
    "Comet Fibre",
    "Whisperwave",
    "cabbage soup",                     # reader comments
    "gadgetfan77",
    "autumn soup recipes",              # "most read" sidebar
    "All rights reserved",              # footer
    "Accept all biscuits",              # cookie banner
    "loadAds",                          # scripts
)


def article(url: str, *, title: str = "Pyongyang delegation discusses transport",
            summary: str = "Officials met this week.", name: str = "desk") -> Article:
    return Article(
        id=f"id-{url}-{title}"[:60], feed_name=name, source=name, url=url, title=title,
        summary=summary, published_at=NOW, first_seen_at=NOW,
    )


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as srv:
        srv.add_file("/rail", RAIL_PAGE, content_type=HTML)
        yield srv


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with build_fulltext_client(LIMITS, allow=ALLOW) as c:
        yield c


@pytest.fixture(params=["fulltext", "feed-aiohttp", "feed-httpx"])
async def any_client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    """The hop-by-hop checks must protect whichever client the caller passes."""
    if request.param == "fulltext":
        c = build_fulltext_client(LIMITS, allow=ALLOW)
    else:
        c = build_client(replace(LIMITS, transport=request.param.removeprefix("feed-")))
    async with c:
        yield c


async def page_error(
    client: httpx.AsyncClient, url: str, limits: FetchLimits = LIMITS,
    allow: Sequence[str] = ALLOW,
) -> FetchError:
    with pytest.raises(FetchError) as info:
        await fetch_page(client, url, limits=limits, allow=allow)
    return info.value


# -- the pre-filter ------------------------------------------------------------------------


def test_country_terms_come_from_the_keyword_file_without_weak_names() -> None:
    assert {"pyongyang", "kim jong un", "북한", "кндр"} <= TERMS.dprk
    assert {"putin", "moscow", "러시아", "путин"} <= TERMS.russia
    assert "kim" not in TERMS.dprk and "~kim" not in TERMS.dprk
    assert "vladivostok" not in TERMS.russia  # weak ("~") in the file


def test_country_terms_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"missing\.toml"):
        load_country_terms(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[dprk]\nen = ['pyongyang']\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"missing section \[russia\]"):
        load_country_terms(bad)
    bad.write_text("[dprk]\nen = 'pyongyang'\n[russia]\nen = ['moscow']\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="list of strings"):
        load_country_terms(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Kim Jong-un inspects a new factory", True),     # hyphen for a space
        ("Kim visits a new resort", False),               # "Kim" alone is weak
        ("Under the Kim’s regime banner", True),          # curly apostrophe straightened
        ("Putin to visit Hanoi", True),                   # Russia alone is enough
        ("Делегация КНДР прибыла", True),                 # Cyrillic substring
        ("북한 대표단 방러", True),                          # Korean substring
        ("Prussian history exhibition opens", False),     # no match inside a word
        ("Kim Keon-hee meets voters in Seoul", False),
        ("Moscow-based analysts say", True),
        ("DPRK", True),
    ],
)
def test_mentions_country(text: str, expected: bool) -> None:
    assert mentions_country(text, TERMS) is expected


def test_needs_full_text_wants_a_mention_a_short_summary_and_a_web_url() -> None:
    assert needs_full_text(article("https://news.example/a"), TERMS)
    long = article("https://news.example/a", summary="Officials met. " * 20)
    assert not needs_full_text(long, TERMS)
    assert needs_full_text(long, TERMS, min_summary_chars=10_000)
    unrelated = article("https://news.example/a", title="Harbour derby ends level",
                        summary="A late goal.")
    assert not needs_full_text(unrelated, TERMS)
    assert not needs_full_text(article(""), TERMS)
    assert not needs_full_text(article("ftp://news.example/a"), TERMS)
    plain_sets = ({"pyongyang"}, {"moscow"})  # any pair of term collections will do
    assert needs_full_text(article("http://news.example/a"), plain_sets)


# -- fetching and extracting one page ------------------------------------------------------


async def test_extracts_the_story_and_not_the_boilerplate(
    server: FeedServer, any_client: httpx.AsyncClient
) -> None:
    text = await fetch_full_text(any_client, server.url("/rail"), limits=LIMITS, allow=ALLOW)
    assert text is not None
    for phrase in BODY_PHRASES:
        assert phrase in text
    for phrase in BOILERPLATE_PHRASES:
        assert phrase not in text, phrase
    assert "\n" not in text and "  " not in text


async def test_text_is_cut_at_max_chars(server: FeedServer, client: httpx.AsyncClient) -> None:
    text = await fetch_full_text(client, server.url("/rail"), limits=LIMITS, allow=ALLOW,
                                 max_chars=300)
    assert text is not None and len(text) <= 301 and text.endswith("…")


@pytest.mark.parametrize("content_type", ["text/html", "text/html; charset=windows-1251"])
async def test_legacy_encodings_come_out_right(
    server: FeedServer, client: httpx.AsyncClient, content_type: str
) -> None:
    url = server.add_file("/flights", FLIGHTS_PAGE, content_type=content_type)
    text = await fetch_full_text(client, url, limits=LIMITS, allow=ALLOW)
    assert text is not None
    assert "прямых рейсах между двумя столицами" in text
    assert "Пластиковые окна" not in text and "Гороскоп" not in text


async def test_redirects_on_an_allowed_host_are_followed(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    server.add_redirect("/short", "/moved", status=302)
    server.add_redirect("/moved", server.url("/rail"), status=301)
    text = await fetch_full_text(client, server.url("/short"), limits=LIMITS, allow=ALLOW)
    assert text is not None and BODY_PHRASES[0] in text


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://10.0.0.1/admin",
        "http://[::ffff:127.0.0.2]/",
        "http://[::1]/",
    ],
)
async def test_a_redirect_from_an_allowed_host_to_a_refused_one_is_stopped(
    server: FeedServer, any_client: httpx.AsyncClient, target: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server.add_redirect("/bounce", target, status=302)
    error = await page_error(any_client, server.url("/bounce"))
    assert error.kind == "blocked_address"
    with caplog.at_level(logging.INFO, logger="monitor.fulltext"):
        text = await fetch_full_text(any_client, server.url("/bounce"), limits=LIMITS,
                                     allow=ALLOW)
    assert text is None
    records = [r for r in caplog.records if r.name == "monitor.fulltext"]
    assert len(records) == 1  # logged once, with the URL and the reason
    assert "/bounce" in records[0].getMessage()
    assert "blocked_address" in records[0].getMessage()
    assert records[0].levelno == logging.WARNING


async def test_redirect_to_another_scheme_is_refused(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    server.add_redirect("/to-file", "file:///etc/passwd", status=302)
    assert (await page_error(client, server.url("/to-file"))).kind in (
        "invalid_url", "blocked_address"
    )


async def test_without_the_allow_list_loopback_is_refused_before_connecting(
    server: FeedServer, any_client: httpx.AsyncClient
) -> None:
    for url in (server.url("/rail"), server.url("/rail").replace("127.0.0.1", "localhost")):
        assert (await page_error(any_client, url, allow=())).kind == "blocked_address"
        assert await fetch_full_text(any_client, url, limits=LIMITS) is None
    assert server.hits("/rail") == 0


async def test_redirect_loops_end(server: FeedServer, client: httpx.AsyncClient) -> None:
    server.add_redirect("/ping", "/pong", status=302)
    server.add_redirect("/pong", "/ping", status=302)
    assert (await page_error(client, server.url("/ping"))).kind == "too_many_redirects"
    assert server.hits("/ping") + server.hits("/pong") == LIMITS.max_redirects + 1


async def test_oversize_pages_give_none(server: FeedServer, client: httpx.AsyncClient) -> None:
    big = b"<html><body>" + b"<p>" + b"x" * 300_000 + b"</p></body></html>"
    declared = server.add_file("/big", big, content_type=HTML)
    streamed = server.add_stream("/stream", [b"<html><body><p>", *[b"y" * 50_000] * 6],
                                 content_type=HTML)
    bomb = server.add_gzip("/bomb", b"<html><body><p>" + b"z" * 5_000_000, content_type=HTML)
    for url in (declared, streamed, bomb):
        assert (await page_error(client, url)).kind == "too_large"
        assert await fetch_full_text(client, url, limits=LIMITS, allow=ALLOW) is None


async def test_slow_pages_give_none_within_the_deadline(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    limits = replace(LIMITS, total_timeout=0.3)
    silent = server.add_slow("/silent", 5.0, body=RAIL_PAGE)
    drip = server.add_stream("/drip", [b"<html><body><p>a</p>"] * 50, delay_between=0.1,
                             content_type=HTML)
    for url in (silent, drip):
        started = time.monotonic()
        assert await fetch_full_text(client, url, limits=limits, allow=ALLOW) is None
        assert time.monotonic() - started < 1.0


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/pdf", b"%PDF-1.7 binary stuff"),
        ("application/json", b'{"title": "Pyongyang"}'),
        ("image/jpeg", b"\xff\xd8\xff\xe0 not a page"),
        (None, b"%PDF-1.7 no content type at all"),
    ],
)
async def test_non_html_gives_none(
    server: FeedServer, client: httpx.AsyncClient, content_type: str | None, body: bytes
) -> None:
    if content_type is None:
        url = server.add_status("/doc", 200, body=body)
    else:
        url = server.add_file("/doc", body, content_type=content_type)
    assert (await page_error(client, url)).kind == "not_html"
    assert await fetch_full_text(client, url, limits=LIMITS, allow=ALLOW) is None


async def test_error_statuses_and_empty_pages_give_none(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    gone = server.add_status("/gone", 404, body=b"<html>not here</html>")
    busy = server.add_status("/busy", 429, headers={"Retry-After": "7"})
    empty = server.add_file(
        "/empty", b"<html><body><nav><a href='/'>Home</a></nav></body></html>", content_type=HTML
    )
    error = await page_error(client, busy)
    assert (error.kind, error.status, error.retry_after) == ("http_status", 429, 7.0)
    for url in (gone, busy, empty):
        assert await fetch_full_text(client, url, limits=LIMITS, allow=ALLOW) is None


# -- enriching a batch ---------------------------------------------------------------------


def test_extend_summary_drops_a_repeated_headline_and_lede() -> None:
    base = article("https://x.example/a", title="Bridge plans", summary="Officials met.")
    assert extend_summary(base, "Bridge plans Officials met. More detail.").summary == (
        "Officials met. More detail."
    )
    assert extend_summary(base, "Other words.").summary == "Officials met. Other words."
    assert extend_summary(base, "Bridge plans") == base


async def test_enrich_extends_only_candidates_and_keeps_order(
    server: FeedServer, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    server.add_file("/unrelated", RAIL_PAGE, content_type=HTML)
    server.add_file("/long", RAIL_PAGE, content_type=HTML)
    server.add_status("/missing", 404)
    batch = [
        article(server.url("/unrelated"), title="Harbour derby ends level", summary="Late goal."),
        article(server.url("/rail"), summary="Officials from both capitals met."),
        article(server.url("/long"), summary="Talks in Moscow. " + "More words. " * 30),
        article(server.url("/missing")),
        article("http://169.254.169.254/latest/meta-data/"),
    ]
    with caplog.at_level(logging.INFO, logger="monitor.fulltext"):
        out = await enrich(batch, client, terms=TERMS, limits=LIMITS, allow=ALLOW,
                           min_gap_seconds=0)
    assert [a.url for a in out] == [a.url for a in batch]
    assert out[0] == batch[0] and out[2] == batch[2]          # not candidates: untouched
    assert out[3] == batch[3] and out[4] == batch[4]          # failures: untouched
    assert out[1].summary.startswith("Officials from both capitals met. ")
    assert all(p in out[1].summary for p in BODY_PHRASES)
    assert "Crossword" not in out[1].summary
    assert out[1].text.startswith(batch[1].title)              # classifier sees title + text
    assert server.hits("/unrelated") == 0 and server.hits("/long") == 0
    assert server.hits("/missing") == 1
    messages = [r.getMessage() for r in caplog.records if r.name == "monitor.fulltext"]
    assert sum("/missing" in m for m in messages) == 1
    assert sum("169.254.169.254" in m for m in messages) == 1


async def test_one_slow_page_does_not_hold_up_the_rest(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    limits = replace(LIMITS, total_timeout=0.3)
    server.add_slow("/slow", 5.0, body=RAIL_PAGE)
    batch = [article(server.url("/slow")), article(server.url("/rail"))]
    started = time.monotonic()
    out = await enrich(batch, client, terms=TERMS, limits=limits, allow=ALLOW, min_gap_seconds=0)
    assert time.monotonic() - started < 1.0
    assert out[0] == batch[0]
    assert BODY_PHRASES[0] in out[1].summary


async def test_enricher_caps_pages_per_batch(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    for name in ("a", "b", "c"):
        server.add_file(f"/{name}", RAIL_PAGE, content_type=HTML)
    enricher = FullTextEnricher(client, terms=TERMS, limits=LIMITS, allow=ALLOW,
                                min_gap_seconds=0, max_per_batch=2)
    out = await enricher([article(server.url(f"/{n}")) for n in ("a", "b", "c")])
    assert [server.hits(f"/{n}") for n in ("a", "b", "c")] == [1, 1, 0]
    assert BODY_PHRASES[0] in out[1].summary and BODY_PHRASES[0] not in out[2].summary


async def test_enricher_respects_its_concurrency_limits(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    """Six slow pages on one host, per_host=2: they run two at a time, not six at once."""
    for i in range(6):
        server.add_stream(f"/p{i}", [b"<html><body><p>", RAIL_PAGE], delay_between=0.08,
                          content_type=HTML)
    enricher = FullTextEnricher(client, terms=TERMS, limits=LIMITS, allow=ALLOW,
                                min_gap_seconds=0, per_host=2, max_concurrent=4)
    started = time.monotonic()
    out = await enricher([article(server.url(f"/p{i}")) for i in range(6)])
    elapsed = time.monotonic() - started
    assert all(BODY_PHRASES[0] in a.summary for a in out)
    assert elapsed >= 3 * 0.08 * 2 * 0.9  # three rounds of two pages, each ~0.16 s


def test_country_terms_is_a_pair_of_sets() -> None:
    dprk, russia = TERMS
    assert isinstance(TERMS, CountryTerms) and "pyongyang" in dprk and "moscow" in russia
