"""Feed redirects into our own network (issue 0, item 5): every hop is the remote site's choice.

The configured feed URL is trusted as given (these tests poll 127.0.0.1 like real
deployments poll intranet hosts); each redirect *hop* is checked by
``netguard.check_redirect_hop``. Real local servers only: refused literal
addresses are never connected to, and the one name resolved is ``localhost``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from monitor.classify import ArticleClassifier
from monitor.errors import FetchError, SettingsError
from monitor.feeds import PollOutcome, after_poll, effective_url
from monitor.fetch import fetch_feed
from monitor.http import FetchLimits, build_client
from monitor.models import Feed, FeedState, ParsedFeed
from monitor.netguard import check_redirect_hop, same_server
from monitor.parse import parse_feed
from monitor.pipeline import PipelineDeps, run_feed
from monitor.settings import load_settings
from monitor.store.sqlite import SqliteStore
from tests.support.defaults import alert_rules, lifecycle
from tests.support.feed_server import FeedServer

ROOT = Path(__file__).resolve().parent.parent
RSS = (ROOT / "tests" / "fixtures" / "feeds" / "rss20_news.xml").read_bytes()
LIMITS = FetchLimits(connect_timeout=2.0, read_timeout=2.0, total_timeout=5.0,
                     max_bytes=200_000, unconditional_probability=0.0)
T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

try:
    import httpx_aiohttp  # noqa: F401

    TRANSPORTS = ["aiohttp", "httpx"]
except ImportError:  # pragma: no cover - the fallback transport must still pass everything
    TRANSPORTS = ["httpx"]


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as srv:
        yield srv


@pytest.fixture
def other() -> Iterator[FeedServer]:
    """A second internal server: same address, another port, so another host:port."""
    with FeedServer() as srv:
        yield srv


@pytest.fixture(params=TRANSPORTS)
async def client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    async with build_client(replace(LIMITS, transport=request.param)) as c:
        yield c


async def fetch_error(client: httpx.AsyncClient, url: str,
                      limits: FetchLimits = LIMITS) -> FetchError:
    with pytest.raises(FetchError) as info:
        await fetch_feed(client, Feed("desk", url), None, limits)
    return info.value


# -- hops into the internal network are refused ---------------------------------------------------


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/iam/security-credentials/", "metadata"),
        ("http://100.100.100.200/latest/meta-data/", "metadata"),
        ("http://[fe80::1]/feed.xml", "link-local"),
        ("http://169.254.10.20/feed.xml", "link-local"),
        ("http://10.0.0.1/admin", "private"),
        ("http://192.168.1.1/router", "private"),
        ("http://[fc00::1]/", "private"),
        ("http://[::1]/", "loopback"),
        ("http://[::ffff:127.0.0.2]/", "loopback"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://240.0.0.1/", "reserved|private"),  # Python 3.13 calls 240/4 private
    ],
)
async def test_a_feed_redirect_to_an_internal_address_is_refused(
    server: FeedServer, client: httpx.AsyncClient, target: str, reason: str
) -> None:
    for status in (301, 302, 307, 308):
        start = server.add_redirect(f"/r{status}.xml", target, status=status)
        error = await fetch_error(client, start)
        assert error.kind == "redirect_blocked"
        assert target.split("/")[2].strip("[]").split("]")[0] in str(error)  # names the hop
        assert re.search(reason, str(error)) and "fetch.allow_internal_hosts" in str(error)


async def test_a_hop_whose_name_resolves_inward_is_refused(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    server.add_file("/feed.xml", RSS)
    inward = server.url("/feed.xml").replace("127.0.0.1", "localhost")
    start = server.add_redirect("/go.xml", inward, status=302)
    error = await fetch_error(client, start)
    assert error.kind == "redirect_blocked"
    assert "localhost (" in str(error) and "loopback" in str(error)
    assert server.hits("/feed.xml") == 0


async def test_another_port_on_the_same_address_is_another_host(
    server: FeedServer, other: FeedServer, client: httpx.AsyncClient
) -> None:
    other.add_file("/admin", RSS)
    start = server.add_redirect("/feed.xml", other.url("/admin"), status=302)
    assert (await fetch_error(client, start)).kind == "redirect_blocked"
    assert other.hits("/admin") == 0


async def test_a_hop_that_comes_back_inward_after_a_detour_is_refused(
    server: FeedServer, other: FeedServer, client: httpx.AsyncClient
) -> None:
    """The same-host exemption is the start URL's, not the previous hop's."""
    other.add_file("/admin", RSS)
    server.add_redirect("/detour", other.url("/admin"), status=302)
    start = server.add_redirect("/feed.xml", "/detour", status=301)
    limits = replace(LIMITS, allow_internal_hosts=("localhost",))
    assert (await fetch_error(client, start, limits)).kind == "redirect_blocked"


# -- what keeps working ---------------------------------------------------------------------------


async def test_an_internal_feed_moving_on_its_own_host_is_followed_and_saved(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    final = server.add_file("/v2/feed.xml", RSS)
    server.add_redirect("/v1/feed.xml", server.url("/v2/feed.xml"), status=308)  # absolute
    start = server.add_redirect("/feed.rss", "/v1/feed.xml", status=301)        # relative
    result = await fetch_feed(client, Feed("desk", start), None, LIMITS)
    assert result.status == 200 and result.final_url == final
    assert result.permanent_redirect == final


@pytest.mark.parametrize("entry", ["127.0.0.1", "127.0.0.0/8"])
async def test_the_allow_list_lets_a_hop_through_but_a_move_there_is_not_saved(
    server: FeedServer, other: FeedServer, client: httpx.AsyncClient, entry: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    final = other.add_file("/feed.xml", RSS)
    start = server.add_redirect("/feed.xml", final, status=301)
    limits = replace(LIMITS, allow_internal_hosts=(entry,))
    with caplog.at_level(logging.WARNING, logger="monitor.fetch"):
        for _ in range(3):
            result = await fetch_feed(client, Feed(f"allowed-{entry}", start), None, limits)
            assert result.status == 200 and result.final_url == final
            assert result.permanent_redirect is None
    refused = [r.getMessage() for r in caplog.records if r.name == "monitor.fetch"]
    assert len(refused) == 1  # once per feed and target, not once per poll
    assert final in refused[0] and "not saved" in refused[0]


async def test_an_allow_listed_name_is_followed(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    server.add_file("/feed.xml", RSS)
    by_name = server.url("/feed.xml").replace("127.0.0.1", "localhost")
    start = server.add_redirect("/go.xml", by_name, status=302)
    limits = replace(LIMITS, allow_internal_hosts=("LOCALHOST.",))
    result = await fetch_feed(client, Feed("desk", start), None, limits)
    assert result.status == 200 and result.final_url == by_name


async def test_a_network_entry_does_not_allow_the_metadata_address_inside_it(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    start = server.add_redirect("/feed.xml", "http://169.254.169.254/latest/", status=302)
    limits = replace(LIMITS, allow_internal_hosts=("169.254.0.0/16",))
    error = await fetch_error(client, start, limits)
    assert error.kind == "redirect_blocked" and "metadata" in str(error)


# -- the hop check on its own ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("http://127.0.0.1:8080/a", "http://127.0.0.1:8080/b?x=1", True),
        ("http://127.0.0.1:8080/a", "https://127.0.0.1:8080/a", True),   # scheme aside
        ("http://intranet.example/a", "https://INTRANET.example./a", True),  # upgrade
        ("http://intranet.example/a", "http://intranet.example:80/b", True),
        ("http://127.0.0.1:8080/a", "http://127.0.0.1:9090/a", False),
        ("http://127.0.0.1:8080/a", "http://localhost:8080/a", False),
        ("http://127.0.0.1/a", "http://127.1/a", False),
        ("http://intranet.example/a", "https://intranet.example:8443/a", False),
    ],
)
def test_same_server(a: str, b: str, same: bool) -> None:
    assert same_server(httpx.URL(a), httpx.URL(b)) is same
    assert same_server(httpx.URL(b), httpx.URL(a)) is same


async def test_hop_verdicts() -> None:
    origin = httpx.URL("http://127.0.0.1:8080/feed.xml")
    assert await check_redirect_hop(httpx.URL("http://127.0.0.1:8080/new"),
                                    origin=origin) == "same_host"
    assert await check_redirect_hop(httpx.URL("https://93.184.215.14/feed"),
                                    origin=origin) == "public"
    assert await check_redirect_hop(httpx.URL("http://10.1.2.3/feed"), origin=origin,
                                    allow=["10.0.0.0/8"]) == "allowed"
    assert await check_redirect_hop(httpx.URL("http://wiki.corp/feed"), origin=origin,
                                    allow=["wiki.corp"]) == "allowed"
    with pytest.raises(FetchError) as info:
        await check_redirect_hop(httpx.URL("ftp://127.0.0.1:8080/feed"), origin=origin)
    assert info.value.kind == "redirect_blocked"


# -- a refused move is never saved, and an old one is not trusted -------------------------------


def test_lifecycle_never_saves_a_move_to_a_literal_internal_address_on_another_host() -> None:
    feed = Feed("desk", "https://news.example/feed.xml")
    state = FeedState(name="desk", url=feed.url, polls=1, last_success_at=T0)
    rng = random.Random(1)
    for target, saved in [
        ("http://169.254.169.254/latest/", False),
        ("http://[::1]:8080/feed", False),
        ("http://localhost:8080/feed", False),
        ("http://10.0.0.7/feed", False),
        ("https://news.example/v2/feed.xml", True),
        ("https://feeds.other.example/desk", True),
    ]:
        outcome = PollOutcome(ok=True, http_status=200, moved_to=target)
        update = after_poll(feed, state, outcome, lifecycle(), now=T0, rng=rng,
                            override_seconds=None)
        assert (update.moved_to == target) is saved, target
        assert (update.notice is not None) is saved
    internal = Feed("lan", "http://127.0.0.1:8080/feed.xml")  # the operator's own choice
    outcome = PollOutcome(ok=True, http_status=200, moved_to="http://127.0.0.1:8080/v2.xml")
    update = after_poll(internal, FeedState(name="lan", url=internal.url), outcome,
                        lifecycle(), now=T0, rng=rng, override_seconds=None)
    assert update.moved_to == "http://127.0.0.1:8080/v2.xml"


def test_a_move_saved_before_the_guard_is_not_trusted_as_the_start_url() -> None:
    feed = Feed("desk", "https://news.example/feed.xml")
    old = FeedState(name="desk", url=feed.url, moved_to="http://169.254.169.254/latest/")
    assert effective_url(feed, old) == feed.url
    fine = FeedState(name="desk", url=feed.url, moved_to="https://news.example/v2.xml")
    assert effective_url(feed, fine) == "https://news.example/v2.xml"


async def _parse_in_thread(feed_name: str, body: bytes, **kwargs: object) -> ParsedFeed:
    return await asyncio.to_thread(parse_feed, feed_name, body, **kwargs)  # type: ignore[arg-type]


async def _run(feed: Feed, store: SqliteStore, limits: FetchLimits) -> str:
    classifier = ArticleClassifier.load(None)
    async with build_client(limits) as client:
        deps = PipelineDeps(
            client=client, store=store, classify=classifier.classify_in_thread,
            fetch_limits=limits, rules=alert_rules(max_article_age_hours=0),
            max_items=100, now=lambda: T0, parse=_parse_in_thread, rng=random.Random(1),
            lifecycle=lifecycle(),
        )
        return (await run_feed(feed, deps)).status


def test_through_the_pipeline(tmp_path: Path, server: FeedServer, other: FeedServer) -> None:
    """Refused hops are failures of the feed; allowed internal moves are polled, not saved."""
    store = SqliteStore(tmp_path / "m.db")
    store.migrate()
    try:
        blocked = Feed("Blocked", server.add_redirect("/meta.xml", "http://169.254.169.254/",
                                                      status=301))
        assert asyncio.run(_run(blocked, store, LIMITS)) == "redirect_blocked"
        state = store.get_feed_state("Blocked")
        assert state is not None and state.moved_to is None
        assert "redirect_blocked" in (state.last_error or "")

        moved = Feed("Moved", server.add_redirect("/old.xml", other.add_file("/new.xml", RSS),
                                                  status=301))
        allowed = replace(LIMITS, allow_internal_hosts=("127.0.0.1",))
        assert asyncio.run(_run(moved, store, allowed)) == "ok"
        state = store.get_feed_state("Moved")
        assert state is not None and state.moved_to is None and state.consecutive_errors == 0
        assert other.hits("/new.xml") == 1
    finally:
        store.close()


# -- configuration --------------------------------------------------------------------------------


def test_the_allow_list_key_is_validated_like_fulltext_allow_hosts(tmp_path: Path) -> None:
    (tmp_path / "keywords.toml").write_text((ROOT / "config" / "keywords.toml").read_text())
    feed = '[[feeds]]\nname = "A"\nurl = "http://127.0.0.1:8080/rss"\n'
    good = tmp_path / "good.toml"
    good.write_text('[fetch]\nallow_internal_hosts = ["wiki.corp", "10.1.0.0/16"]\n' + feed)
    settings = load_settings(good, env={})
    assert settings.fetch.allow_internal_hosts == ("wiki.corp", "10.1.0.0/16")
    bad = tmp_path / "bad.toml"
    bad.write_text('[fetch]\nallow_internal_hosts = ["http://wiki.corp/"]\n' + feed)
    with pytest.raises(SettingsError, match="allow_internal_hosts"):
        load_settings(bad, env={})
    with pytest.raises(SettingsError, match=r"fetch\.allow_internal_hosts"):
        FetchLimits(allow_internal_hosts=("not a host",))
