"""fetch_feed against a real local HTTP server: validators, limits, redirects, typed errors."""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitor.errors import FetchError, SettingsError
from monitor.fetch import fetch_feed
from monitor.http import ACCEPT_ENCODING, FetchLimits, build_client, parse_retry_after
from monitor.models import Feed, FeedState
from tests.support.feed_server import FeedServer

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"
RSS = (FIXTURES / "rss20_news.xml").read_bytes()
# No random unconditional polls here: these tests assert what each conditional GET sends
# (the 1 % default is tested with a seeded rng in test_politeness.py).
LIMITS = FetchLimits(
    connect_timeout=2.0, read_timeout=2.0, total_timeout=5.0, max_bytes=200_000,
    unconditional_probability=0.0,
)
LAST_MODIFIED = "Wed, 19 Jun 2024 03:10:00 GMT"


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as srv:
        yield srv


try:
    import httpx_aiohttp  # noqa: F401

    HAVE_AIOHTTP = True
except ImportError:  # the fallback transport must still pass everything
    HAVE_AIOHTTP = False
needs_aiohttp = pytest.mark.skipif(not HAVE_AIOHTTP, reason="httpx-aiohttp is not installed")


@pytest.fixture(params=[pytest.param("aiohttp", marks=needs_aiohttp), "httpx"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    """Every behaviour must hold on both transports: the fast one and httpx's own fallback."""
    async with build_client(replace(LIMITS, transport=request.param)) as c:
        yield c


def feed_for(url: str, name: str = "desk") -> Feed:
    return Feed(name=name, url=url)


async def fetch_error(
    client: httpx.AsyncClient, url: str, limits: FetchLimits = LIMITS,
    state: FeedState | None = None,
) -> FetchError:
    with pytest.raises(FetchError) as info:
        await fetch_feed(client, feed_for(url), state, limits)
    return info.value


async def fetch_error_with_peak_memory(
    client: httpx.AsyncClient, url: str
) -> tuple[FetchError, int]:
    """The fetch's error and the most memory Python allocated during it (bytes)."""
    was_tracing = tracemalloc.is_tracing()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        error = await fetch_error(client, url)
        return error, tracemalloc.get_traced_memory()[1] - baseline
    finally:
        if not was_tracing:
            tracemalloc.stop()


# -- success and conditional GET -----------------------------------------------------------


async def test_plain_get_returns_body_headers_and_final_url(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    url = server.add_file("/rss.xml", RSS, etag='"v1"', last_modified=LAST_MODIFIED)
    result = await fetch_feed(client, feed_for(url), None, LIMITS)

    assert result.status == 200
    assert result.body == RSS
    assert not result.not_modified
    assert result.etag == '"v1"'
    assert result.last_modified == LAST_MODIFIED
    assert result.content_type == "application/rss+xml; charset=utf-8"
    assert result.url == result.final_url == url
    assert result.feed_name == "desk"
    assert 0 < result.elapsed_seconds < LIMITS.total_timeout

    (request,) = server.requests
    assert request.method == "GET"
    assert request.headers["user-agent"] == LIMITS.user_agent
    assert request.headers["accept-encoding"] == ACCEPT_ENCODING
    assert "if-none-match" not in request.headers
    assert "if-modified-since" not in request.headers


async def test_etag_from_state_gives_304_without_body(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    url = server.add_file("/rss.xml", RSS, etag='"v1"')
    first = await fetch_feed(client, feed_for(url), None, LIMITS)
    state = FeedState(name="desk", url=url, etag=first.etag)

    second = await fetch_feed(client, feed_for(url), state, LIMITS)

    assert second.status == 304
    assert second.body is None
    assert second.not_modified
    assert second.etag == '"v1"'
    assert server.requests[-1].headers["if-none-match"] == '"v1"'
    assert server.hits("/rss.xml") == 2


async def test_last_modified_from_state_gives_304(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    url = server.add_file("/rss.xml", RSS, last_modified=LAST_MODIFIED)
    state = FeedState(name="desk", url=url, last_modified=LAST_MODIFIED)

    result = await fetch_feed(client, feed_for(url), state, LIMITS)

    assert (result.status, result.body) == (304, None)
    assert server.requests[-1].headers["if-modified-since"] == LAST_MODIFIED


async def test_stale_etag_gets_the_new_body(server: FeedServer, client: httpx.AsyncClient) -> None:
    url = server.add_file("/rss.xml", RSS, etag='"v2"')
    state = FeedState(name="desk", url=url, etag='"v1"')

    result = await fetch_feed(client, feed_for(url), state, LIMITS)

    assert result.status == 200
    assert result.body == RSS
    assert result.etag == '"v2"'


async def test_validators_are_not_sent_after_the_feed_url_changed(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    url = server.add_file("/new.xml", RSS, etag='"v1"', last_modified=LAST_MODIFIED)
    state = FeedState(
        name="desk", url=server.url("/old.xml"), etag='"v1"', last_modified=LAST_MODIFIED
    )

    result = await fetch_feed(client, feed_for(url), state, LIMITS)

    assert result.status == 200
    assert result.body == RSS
    headers = server.requests[-1].headers
    assert "if-none-match" not in headers
    assert "if-modified-since" not in headers


async def test_one_client_serves_concurrent_fetches(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    urls = [server.add_file(f"/f{i}.xml", RSS + b"<!-- %d -->" % i) for i in range(12)]
    results = await asyncio.gather(*(fetch_feed(client, feed_for(u), None, LIMITS) for u in urls))
    assert [r.body for r in results] == [RSS + b"<!-- %d -->" % i for i in range(12)]


# -- status codes ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 500, 502, 503])
async def test_error_statuses_become_http_status_errors(
    server: FeedServer, client: httpx.AsyncClient, status: int
) -> None:
    url = server.add_status("/broken", status, body=b"nope")
    error = await fetch_error(client, url)
    assert error.kind == "http_status"
    assert error.status == status
    assert error.retry_after is None
    assert str(status) in str(error)


async def test_429_with_retry_after_seconds(server: FeedServer, client: httpx.AsyncClient) -> None:
    url = server.add_status("/busy", 429, headers={"Retry-After": "120"})
    error = await fetch_error(client, url)
    assert (error.kind, error.status, error.retry_after) == ("http_status", 429, 120.0)


async def test_503_with_retry_after_http_date(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    when = datetime.now(UTC) + timedelta(seconds=90)
    url = server.add_status("/down", 503, headers={"Retry-After": format_datetime(when, True)})
    error = await fetch_error(client, url)
    assert error.status == 503
    assert error.retry_after is not None
    assert 80 <= error.retry_after <= 91


def test_parse_retry_after_forms() -> None:
    now = datetime(2024, 6, 19, 12, 0, tzinfo=UTC)

    def seconds(value: str, **kwargs: Any) -> float | None:
        return parse_retry_after(httpx.Headers({"Retry-After": value}), now=now, **kwargs)

    assert seconds("0") == 0.0
    assert seconds(" 30 ") == 30.0
    assert seconds("Wed, 19 Jun 2024 12:01:30 GMT") == 90.0
    assert seconds("Wed, 19 Jun 2024 11:00:00 GMT") == 0.0  # in the past
    assert seconds("Wed, 19 Jun 2024 12:00:10 -0000") == 10.0
    for junk in ("", "soon", "-5", "1.5e3", "Someday, 99 Foo 2024"):
        assert seconds(junk) is None
    assert parse_retry_after(None) is None and parse_retry_after(httpx.Headers()) is None
    # Capped at six hours unless the caller bounds it itself (feeds: the poll schedule).
    assert seconds("86400") == 6 * 3600.0
    assert seconds("86400", max_seconds=None) == 86400.0


async def test_unfollowable_3xx_is_an_error(server: FeedServer, client: httpx.AsyncClient) -> None:
    url = server.add_status("/choices", 300, body=b"pick one")
    error = await fetch_error(client, url)
    assert (error.kind, error.status) == ("http_status", 300)


# -- redirects ---------------------------------------------------------------------------------


async def test_redirects_are_followed_and_final_url_reported(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    final = server.add_file("/feeds/current.xml", RSS)
    server.add_redirect("/feeds/middle", final, status=302)  # absolute Location
    start = server.add_redirect("/old.rss", "/feeds/middle", status=301)  # relative Location

    result = await fetch_feed(client, feed_for(start), None, LIMITS)

    assert result.body == RSS
    assert result.url == start
    assert result.final_url == final
    assert [r.path for r in server.requests] == ["/old.rss", "/feeds/middle", "/feeds/current.xml"]


async def test_redirect_chain_longer_than_the_limit(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    server.add_file("/end", RSS)
    for i in range(3):
        server.add_redirect(f"/r{i}", f"/r{i + 1}" if i < 2 else "/end")
    two = replace(LIMITS, max_redirects=2)
    three = replace(LIMITS, max_redirects=3)

    error = await fetch_error(client, server.url("/r0"), two)
    assert error.kind == "too_many_redirects"
    assert server.hits("/end") == 0

    ok = await fetch_feed(client, feed_for(server.url("/r0")), None, three)
    assert ok.final_url == server.url("/end")


async def test_redirect_loop(server: FeedServer, client: httpx.AsyncClient) -> None:
    server.add_redirect("/a", "/b")
    server.add_redirect("/b", "/a", status=307)
    error = await fetch_error(client, server.url("/a"))
    assert error.kind == "too_many_redirects"
    assert server.hits("/a") + server.hits("/b") == LIMITS.max_redirects + 1


async def test_redirect_to_a_file_url_is_refused(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    url = server.add_redirect("/sneaky", (FIXTURES / "rss20_news.xml").as_uri())
    error = await fetch_error(client, url)
    assert error.kind in ("invalid_url", "protocol")


# -- size limits and content encodings ----------------------------------------------------------


async def test_declared_oversize_body_is_refused(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    url = server.add_file("/big.xml", b"x" * (LIMITS.max_bytes + 1))
    error = await fetch_error(client, url)
    assert error.kind == "too_large"


async def test_streamed_oversize_body_is_abandoned_early(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    # 200 chunks of 10 kB, 20 ms apart: 2 MB over about 4 s. The limit (200 kB) is
    # passed after ~21 chunks, so the fetch must give up long before the server ends.
    url = server.add_stream("/endless.xml", [b"y" * 10_000] * 200, delay_between=0.02)
    started = time.monotonic()
    error = await fetch_error(client, url)
    assert error.kind == "too_large"
    assert time.monotonic() - started < 2.0


async def test_gzip_body_is_decompressed(server: FeedServer, client: httpx.AsyncClient) -> None:
    url = server.add_gzip("/rss.xml.gz", RSS)
    result = await fetch_feed(client, feed_for(url), None, LIMITS)
    assert result.body == RSS


@pytest.mark.parametrize("encoding", ["deflate", "deflate-raw"])
async def test_deflate_bodies_are_decompressed(
    server: FeedServer, client: httpx.AsyncClient, encoding: str
) -> None:
    url = server.add_compressed("/rss.deflate", RSS, encoding=encoding)
    result = await fetch_feed(client, feed_for(url), None, LIMITS)
    assert result.body == RSS


async def test_multi_member_gzip_is_read_to_the_end(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    half = len(RSS) // 2
    packed = gzip.compress(RSS[:half]) + gzip.compress(RSS[half:])
    url = server.add_status("/two.gz", 200, headers={"Content-Encoding": "gzip"}, body=packed)
    result = await fetch_feed(client, feed_for(url), None, LIMITS)
    assert result.body == RSS


async def test_gzip_limit_counts_decompressed_bytes(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    exact = server.add_gzip("/exact.gz", b"z" * LIMITS.max_bytes)
    over = server.add_gzip("/over.gz", b"z" * (LIMITS.max_bytes + 1))

    ok = await fetch_feed(client, feed_for(exact), None, LIMITS)
    assert ok.body is not None
    assert len(ok.body) == LIMITS.max_bytes

    error = await fetch_error(client, over)
    assert error.kind == "too_large"
    assert "decompress" in str(error)


async def test_gzip_bomb_is_stopped_without_inflating_it(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    # 20 MB of spaces is ~20 kB of gzip: one network read. Inflating that read in
    # one go (what a plain decoder does) would allocate 20 MB; the fetch must stop
    # at the 200 kB limit instead, so peak memory stays far below the bomb size.
    packed = gzip.compress(b"<rss>" + b" " * 20_000_000, compresslevel=9)
    assert len(packed) < 64 * 1024
    url = server.add_status("/bomb.gz", 200, headers={"Content-Encoding": "gzip"}, body=packed)
    error, peak = await fetch_error_with_peak_memory(client, url)
    assert error.kind == "too_large"
    assert peak < 5_000_000


async def test_corrupt_gzip_is_a_protocol_error(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    url = server.add_status(
        "/corrupt.gz", 200, headers={"Content-Encoding": "gzip"}, body=b"this is not gzip data"
    )
    error = await fetch_error(client, url)
    assert error.kind == "protocol"


async def test_unrequested_content_encoding_is_a_protocol_error(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    url = server.add_status("/zs", 200, headers={"Content-Encoding": "zstd"}, body=b"\x28\xb5")
    error = await fetch_error(client, url)
    assert error.kind == "protocol"
    assert "zstd" in str(error)
    assert "zstd" not in ACCEPT_ENCODING


# -- time limits and network failures -----------------------------------------------------------


async def test_silent_server_hits_the_total_timeout(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    url = server.add_slow("/slow.xml", delay_seconds=10)
    limits = replace(LIMITS, total_timeout=0.3)
    started = time.monotonic()
    error = await fetch_error(client, url, limits)
    assert error.kind == "timeout"
    assert time.monotonic() - started < 1.5


async def test_trickling_server_hits_the_total_timeout(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    # Each chunk arrives well within read_timeout, so only the overall deadline can stop it.
    url = server.add_stream("/trickle.xml", [b"<"] * 100, delay_between=0.05)
    limits = replace(LIMITS, read_timeout=1.0, total_timeout=0.5)
    started = time.monotonic()
    error = await fetch_error(client, url, limits)
    assert error.kind == "timeout"
    assert time.monotonic() - started < 1.5


async def test_read_timeout_is_a_timeout(server: FeedServer) -> None:
    url = server.add_slow("/slow.xml", delay_seconds=10)
    limits = FetchLimits(connect_timeout=1.0, read_timeout=0.2, total_timeout=5.0)
    async with build_client(limits) as c:
        started = time.monotonic()
        error = await fetch_error(c, url, limits)
    assert error.kind == "timeout"
    assert time.monotonic() - started < 1.5


async def test_connection_refused_is_a_connect_error(client: httpx.AsyncClient) -> None:
    with socket.socket() as probe:  # find a port with nothing listening on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    error = await fetch_error(client, f"http://127.0.0.1:{port}/feed.xml")
    assert error.kind == "connect"


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/feed.xml", "feed.xml", "javascript:alert(1)", "http://", "http://[::1"]
)
async def test_unusable_urls(client: httpx.AsyncClient, url: str) -> None:
    error = await fetch_error(client, url)
    assert error.kind == "invalid_url"


# -- file:// ------------------------------------------------------------------------------------


async def test_file_url_is_read_from_disk(client: httpx.AsyncClient) -> None:
    url = (FIXTURES / "atom10_news.xml").as_uri()
    result = await fetch_feed(client, feed_for(url), None, LIMITS)
    assert result.status == 200
    assert result.body == (FIXTURES / "atom10_news.xml").read_bytes()
    assert result.final_url == url
    assert result.etag is None


async def test_file_url_with_spaces_in_the_path(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    path = tmp_path / "my feeds" / "a%b.xml"
    path.parent.mkdir()
    path.write_bytes(RSS)
    result = await fetch_feed(client, feed_for(path.as_uri()), None, LIMITS)
    assert result.body == RSS


async def test_missing_file(client: httpx.AsyncClient, tmp_path: Path) -> None:
    error = await fetch_error(client, (tmp_path / "absent.xml").as_uri())
    assert error.kind == "file"
    assert "absent.xml" in str(error)


async def test_directory_instead_of_file(client: httpx.AsyncClient, tmp_path: Path) -> None:
    error = await fetch_error(client, tmp_path.as_uri())
    assert error.kind == "file"


async def test_oversize_file(client: httpx.AsyncClient, tmp_path: Path) -> None:
    path = tmp_path / "big.xml"
    path.write_bytes(b"x" * (LIMITS.max_bytes + 1))
    error = await fetch_error(client, path.as_uri())
    assert error.kind == "too_large"

    path.write_bytes(b"x" * LIMITS.max_bytes)
    ok = await fetch_feed(client, feed_for(path.as_uri()), None, LIMITS)
    assert ok.body is not None
    assert len(ok.body) == LIMITS.max_bytes


async def test_file_url_with_a_remote_host_is_refused(client: httpx.AsyncClient) -> None:
    error = await fetch_error(client, "file://fileserver.example/share/feed.xml")
    assert error.kind == "invalid_url"


# -- the client ---------------------------------------------------------------------------------


async def test_build_client_applies_the_limits() -> None:
    limits = FetchLimits(connect_timeout=3.0, read_timeout=7.0, max_redirects=4, user_agent="t/1")
    async with build_client(limits) as c:
        assert c.timeout.connect == 3.0
        assert c.timeout.read == 7.0
        assert c.max_redirects == 4
        assert c.follow_redirects is True
        assert c.headers["user-agent"] == "t/1"
        assert c.headers["accept-encoding"] == ACCEPT_ENCODING



# -- the test server itself must not leak -------------------------------------------------------


async def test_feed_server_close_leaves_no_threads_or_sockets() -> None:
    before = set(threading.enumerate())
    srv = FeedServer().start()
    url = srv.add_file("/rss.xml", RSS)
    slow = srv.add_slow("/slow.xml", delay_seconds=30)
    async with build_client(LIMITS) as c:
        await fetch_feed(c, feed_for(url), None, LIMITS)  # leaves a keep-alive connection open
        pending = asyncio.create_task(fetch_feed(c, feed_for(slow), None, LIMITS))
        await asyncio.sleep(0.1)  # the slow handler is now waiting
        started = time.monotonic()
        await asyncio.to_thread(srv.close)
        assert time.monotonic() - started < 2.0
        with pytest.raises(FetchError):
            await pending
    leftover = [
        t for t in threading.enumerate()
        if t not in before and not t.name.startswith("asyncio_")  # the loop's own executor
    ]
    assert leftover == []
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", int(srv.base_url.rsplit(":", 1)[1])))


# -- brotli, cookies, headers and the transport choice ------------------------------------------

brotli = pytest.importorskip("brotli") if "br" in ACCEPT_ENCODING else None
needs_brotli = pytest.mark.skipif(brotli is None, reason="no bounded brotli decoder installed")


@needs_brotli
async def test_brotli_body_is_decompressed(server: FeedServer, client: httpx.AsyncClient) -> None:
    assert brotli is not None
    url = server.add_status(
        "/rss.br", 200, headers={"Content-Encoding": "br"}, body=brotli.compress(RSS)
    )
    result = await fetch_feed(client, feed_for(url), None, LIMITS)
    assert result.body == RSS


@needs_brotli
async def test_brotli_bomb_is_stopped_without_inflating_it(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    assert brotli is not None
    packed = brotli.compress(b"<rss>" + b" " * 50_000_000, quality=1)
    assert len(packed) < 200_000
    url = server.add_status("/bomb.br", 200, headers={"Content-Encoding": "br"}, body=packed)
    error, peak = await fetch_error_with_peak_memory(client, url)
    assert error.kind == "too_large"
    assert peak < 5_000_000


@needs_brotli
@pytest.mark.parametrize("body", [b"not brotli at all", "truncated"])
async def test_corrupt_or_truncated_brotli_is_a_protocol_error(
    server: FeedServer, client: httpx.AsyncClient, body: bytes | str
) -> None:
    assert brotli is not None
    data = brotli.compress(RSS)[:-20] if body == "truncated" else body
    assert isinstance(data, bytes)
    url = server.add_status("/bad.br", 200, headers={"Content-Encoding": "br"}, body=data)
    error = await fetch_error(client, url)
    assert error.kind == "protocol"


async def test_cookies_from_one_feed_are_never_sent_back(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    first = server.add_file("/a.xml", RSS, headers={"Set-Cookie": "track=1; Path=/"})
    second = server.add_file("/b.xml", RSS)
    await fetch_feed(client, feed_for(first), None, LIMITS)
    await fetch_feed(client, feed_for(second), None, LIMITS)
    assert all("cookie" not in r.headers for r in server.requests)


async def test_oversized_response_headers_are_a_protocol_error(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    url = server.add_status("/fat", 200, headers={"X-Padding": "p" * 150_000}, body=RSS)
    error = await fetch_error(client, url)
    assert error.kind == "protocol"


@needs_aiohttp
async def test_build_client_picks_the_fast_transport_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with build_client(LIMITS) as fast, build_client(
        replace(LIMITS, transport="httpx")
    ) as plain:
        assert getattr(fast, "direct_transport", None) is not None
        assert getattr(plain, "direct_transport", None) is None
    # Behind a proxy, requests must go through httpx's proxy routing, not straight out.
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    async with build_client(LIMITS) as proxied:
        assert getattr(proxied, "direct_transport", None) is None


def test_unknown_transport_is_a_settings_error() -> None:
    with pytest.raises(SettingsError):
        build_client(replace(LIMITS, transport="curl"))


# -- what the server says about the feed's future ------------------------------------------------


async def test_permanent_redirect_is_reported_for_the_store(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    final = server.add_file("/v2/feed.xml", RSS)
    server.add_redirect("/v1/feed.xml", "/v2/feed.xml", status=308)
    start = server.add_redirect("/feed.rss", "/v1/feed.xml", status=301)
    result = await fetch_feed(client, feed_for(start), None, LIMITS)
    assert result.permanent_redirect == final


async def test_a_temporary_hop_ends_the_permanent_move(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    server.add_file("/today.xml", RSS)
    server.add_redirect("/current", "/today.xml", status=302)
    start = server.add_redirect("/feed.rss", "/current", status=301)
    result = await fetch_feed(client, feed_for(start), None, LIMITS)
    # the feed moved to /current for good; where /current points today may change
    assert result.permanent_redirect == server.url("/current")

    temporary = server.add_redirect("/promo.rss", "/feed.rss", status=307)
    result = await fetch_feed(client, feed_for(temporary), None, LIMITS)
    assert result.permanent_redirect is None


async def test_validators_follow_a_feed_that_moved(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    new_home = server.add_file("/new.xml", RSS, etag='"v1"')
    state = FeedState(name="desk", url=server.url("/old.xml"), etag='"v1"', moved_to=new_home)
    result = await fetch_feed(client, feed_for(new_home), state, LIMITS)
    assert result.not_modified


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Cache-Control": "public, max-age=900"}, 900.0),
        ({"Cache-Control": "max-age=\"60\", must-revalidate",
          "Expires": "Wed, 19 Jun 2024 05:00:00 GMT"}, 60.0),  # max-age wins
        ({"Expires": "0"}, 0.0),
        ({"Cache-Control": "no-cache"}, None),
        ({}, None),
    ],
)
async def test_cache_headers_become_a_floor_for_the_next_poll(
    server: FeedServer, client: httpx.AsyncClient, headers: dict[str, str],
    expected: float | None,
) -> None:
    url = server.add_file("/cached.xml", RSS, headers=headers)
    result = await fetch_feed(client, feed_for(url), None, LIMITS)
    assert result.server_min_seconds == expected


async def test_expires_is_measured_against_the_servers_date(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    # The test server stamps its own Date (now); the feed expires half an hour later.
    expires = format_datetime(datetime.now(UTC) + timedelta(seconds=1800), usegmt=True)
    url = server.add_file("/expiring.xml", RSS, headers={"Expires": expires})
    result = await fetch_feed(client, feed_for(url), None, LIMITS)
    assert result.server_min_seconds == pytest.approx(1800, abs=5)
