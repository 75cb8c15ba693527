"""HostLimiter, the occasional unconditional fetch and the User-Agent, against a real local server.

Concurrency and spacing are measured where the publisher would see them: from
the times requests *arrive* at the server, not from timers in the client.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from monitor.fetch import fetch_feed, should_refetch_unconditionally
from monitor.http import (
    FetchLimits,
    HostLimiter,
    HostPausedError,
    build_client,
    build_user_agent,
)
from monitor.models import Feed, FeedState
from tests.support.feed_server import TimedServer

RSS = (Path(__file__).parent / "fixtures" / "feeds" / "rss20_news.xml").read_bytes()
LIMITS = FetchLimits(
    connect_timeout=2.0, read_timeout=3.0, total_timeout=5.0, max_bytes=200_000,
    unconditional_probability=0.0,
)
SLOW = 0.2  # seconds the slow route waits before answering


@pytest.fixture
def server() -> Iterator[TimedServer]:
    with TimedServer() as srv:
        yield srv


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with build_client(LIMITS) as c:
        yield c


def most_in_flight(arrivals: list[float], duration: float) -> int:
    """Most requests the server was handling at once, each busy for ``duration`` from arrival."""
    slack = 0.03  # the next request can only arrive after the previous answer was read
    return max(
        sum(1 for other in arrivals if other <= t < other + duration - slack) for t in arrivals
    )


async def fetch_through(
    limiter: HostLimiter | None, client: httpx.AsyncClient, url: str
) -> None:
    if limiter is None:
        await fetch_feed(client, Feed(name="f", url=url), None, LIMITS)
        return
    async with limiter.slot(url):
        await fetch_feed(client, Feed(name="f", url=url), None, LIMITS)


# -- per host, as the server sees it -------------------------------------------------------------


async def test_per_host_concurrency_is_capped(
    server: TimedServer, client: httpx.AsyncClient
) -> None:
    url = server.add_slow("/slow.xml", SLOW)
    limiter = HostLimiter(per_host=2, min_gap_seconds=0, global_limit=50)

    await asyncio.gather(*(fetch_through(limiter, client, url) for _ in range(6)))

    arrivals = [t for t, _ in server.arrivals]
    assert len(arrivals) == 6
    assert most_in_flight(arrivals, SLOW) == 2  # never more, and the allowance is used
    assert arrivals[-1] - arrivals[0] >= 2 * SLOW - 0.03  # three waves of two


async def test_without_a_limiter_the_same_load_overlaps(
    server: TimedServer, client: httpx.AsyncClient
) -> None:
    # The control for the test above: the measurement does see overlap when there is some.
    url = server.add_slow("/slow.xml", SLOW)
    await asyncio.gather(*(fetch_through(None, client, url) for _ in range(6)))
    assert most_in_flight([t for t, _ in server.arrivals], SLOW) >= 4


async def test_requests_to_one_host_start_at_least_the_gap_apart(
    server: TimedServer, client: httpx.AsyncClient
) -> None:
    url = server.add_file("/rss.xml", RSS)
    gap = 0.2
    limiter = HostLimiter(per_host=4, min_gap_seconds=gap, global_limit=50)

    await asyncio.gather(*(fetch_through(limiter, client, url) for _ in range(4)))

    arrivals = sorted(t for t, _ in server.arrivals)
    spacing = [b - a for a, b in itertools.pairwise(arrivals)]
    assert len(spacing) == 3
    assert min(spacing) >= gap - 0.05  # server-side arrivals: allow some network jitter
    assert max(spacing) < 2 * gap  # one gap each, not a growing queue


async def test_other_hosts_are_not_held_up_by_a_busy_one(
    server: TimedServer, client: httpx.AsyncClient
) -> None:
    slow = server.add_slow("/slow.xml", SLOW)
    other = server.add_file("/rss.xml", RSS).replace("127.0.0.1", "localhost")
    limiter = HostLimiter(per_host=1, min_gap_seconds=1.0, global_limit=50)

    busy = [asyncio.create_task(fetch_through(limiter, client, slow)) for _ in range(3)]
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await fetch_through(limiter, client, other)
    elapsed = time.monotonic() - started
    for task in busy:
        task.cancel()
    await asyncio.gather(*busy, return_exceptions=True)

    assert elapsed < 0.5  # not behind the slow host's queue or its 1 s gap
    assert [p for _, p in server.arrivals].count("/rss.xml") == 1


# -- the limiter itself ------------------------------------------------------------------------


async def test_global_limit_caps_requests_across_hosts() -> None:
    limiter = HostLimiter(per_host=5, min_gap_seconds=0, global_limit=3)
    inside = peak = 0

    async def job(i: int) -> None:
        nonlocal inside, peak
        async with limiter.slot(f"https://host{i}.example/feed"):
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0.02)
            inside -= 1

    await asyncio.gather(*(job(i) for i in range(12)))
    assert peak == 3


async def test_a_request_waiting_for_its_host_holds_no_global_slot() -> None:
    limiter = HostLimiter(per_host=1, min_gap_seconds=0, global_limit=2)

    async def hold(url: str, seconds: float) -> None:
        async with limiter.slot(url):
            await asyncio.sleep(seconds)

    queue = [asyncio.create_task(hold("https://busy.example/a", 0.3)) for _ in range(3)]
    await asyncio.sleep(0.01)
    started = time.monotonic()
    await hold("https://idle.example/b", 0)
    assert time.monotonic() - started < 0.2  # not behind a 0.3 s holder
    await asyncio.gather(*queue)


async def test_gap_applies_per_host_not_globally() -> None:
    limiter = HostLimiter(per_host=2, min_gap_seconds=0.3, global_limit=10)
    async with limiter.slot("https://a.example/1"):
        pass
    started = time.monotonic()
    async with limiter.slot("https://b.example/1"):
        other_host = time.monotonic() - started
    async with limiter.slot("https://a.example/2"):
        same_host = time.monotonic() - started
    assert other_host < 0.15
    assert same_host >= 0.28


async def test_pause_holds_back_one_host() -> None:
    limiter = HostLimiter(per_host=2, min_gap_seconds=0, global_limit=10)
    limiter.pause("https://busy.example/feed", 0.3)
    started = time.monotonic()
    async with limiter.slot("https://elsewhere.example/feed"):
        assert time.monotonic() - started < 0.15
    async with limiter.slot("https://BUSY.example/other"):
        assert time.monotonic() - started >= 0.28


async def test_a_long_pause_is_refused_not_waited_out() -> None:
    limiter = HostLimiter(per_host=2, min_gap_seconds=0, global_limit=10, max_pause_wait=1.0)
    limiter.pause("https://busy.example/feed", 3600)
    started = time.monotonic()
    with pytest.raises(HostPausedError) as info:
        async with limiter.slot("https://busy.example/other"):
            pytest.fail("a paused host was polled")
    assert time.monotonic() - started < 0.1
    assert info.value.host == "busy.example" and 3590 < info.value.seconds <= 3600
    # a short pause is still waited out, and other hosts never notice
    limiter.pause("https://brief.example/", 0.2)
    async with limiter.slot("https://brief.example/"), limiter.slot("https://other.example/"):
        assert time.monotonic() - started >= 0.18


async def test_a_cancelled_waiter_frees_its_place() -> None:
    limiter = HostLimiter(per_host=1, min_gap_seconds=0, global_limit=10)
    release = asyncio.Event()

    async def holder() -> None:
        async with limiter.slot("https://a.example/"):
            await release.wait()

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(holder())
    await asyncio.sleep(0.01)
    waiter.cancel()
    release.set()
    await first
    with pytest.raises(asyncio.CancelledError):
        await waiter
    async with asyncio.timeout(0.5), limiter.slot("https://a.example/"):
        pass


async def test_memory_is_bounded_by_busy_hosts_not_hosts_seen() -> None:
    limiter = HostLimiter(per_host=2, min_gap_seconds=0, global_limit=10)
    for i in range(2_000):
        async with limiter.slot(f"https://h{i}.example/feed"):
            pass
    assert len(limiter) <= 64

    gapped = HostLimiter(per_host=2, min_gap_seconds=0.05, global_limit=10)
    for i in range(100):
        async with gapped.slot(f"https://h{i}.example/feed"):
            pass
    assert len(gapped) >= 50  # inside their gap: still remembered, or the gap would be lost
    await asyncio.sleep(0.06)
    assert gapped.sweep() == 0


async def test_file_and_broken_urls_pass_without_a_host_gate() -> None:
    limiter = HostLimiter(per_host=1, min_gap_seconds=5, global_limit=2)
    started = time.monotonic()
    for url in ("file:///tmp/a.xml", "file:///tmp/a.xml", "http://[::1", "feed.xml"):
        async with limiter.slot(url):
            pass
    assert time.monotonic() - started < 1.0  # far below one 5 s gap
    assert len(limiter) == 0


def test_limiter_rejects_nonsense_settings() -> None:
    for kwargs in ({"per_host": 0}, {"global_limit": 0}, {"min_gap_seconds": -1}):
        with pytest.raises(ValueError):
            HostLimiter(**kwargs)  # type: ignore[arg-type]


def test_host_key_ignores_case_port_and_path() -> None:
    key = HostLimiter.host_key
    assert key("https://News.Example.org:8443/a?b") == key("http://news.example.org/c")
    assert key("https://a.example/") != key("https://b.example/")


# -- unconditional fetches -------------------------------------------------------------------------


def test_should_refetch_unconditionally_is_rare_and_seeded() -> None:
    rng = random.Random(7)
    draws = [should_refetch_unconditionally(rng, 0.01) for _ in range(20_000)]
    assert 120 <= sum(draws) <= 280  # about 1 %
    again = random.Random(7)
    assert draws == [should_refetch_unconditionally(again, 0.01) for _ in range(20_000)]
    assert not any(should_refetch_unconditionally(rng, 0.0) for _ in range(1000))
    assert all(should_refetch_unconditionally(rng, 1.0) for _ in range(1000))


async def test_chosen_polls_drop_the_validators(
    server: TimedServer, client: httpx.AsyncClient
) -> None:
    modified = "Wed, 19 Jun 2024 03:10:00 GMT"
    url = server.add_file("/rss.xml", RSS, etag='"v1"', last_modified=modified)
    state = FeedState(name="f", url=url, etag='"v1"', last_modified=modified)
    limits = replace(LIMITS, unconditional_probability=0.3)
    rng, twin = random.Random(2024), random.Random(2024)

    statuses = [
        (await fetch_feed(client, Feed(name="f", url=url), state, limits, rng=rng)).status
        for _ in range(30)
    ]

    expected = [twin.random() < 0.3 for _ in range(30)]  # one draw per conditional poll
    assert 3 <= sum(expected) <= 20
    sent = [r.headers for r in server.requests]
    assert ["if-none-match" not in h for h in sent] == expected
    assert ["if-modified-since" not in h for h in sent] == expected
    assert statuses == [200 if unconditional else 304 for unconditional in expected]


async def test_unconditional_fetch_recovers_from_a_broken_304(
    server: TimedServer, client: httpx.AsyncClient
) -> None:
    # The server changed the feed but kept the old ETag, so every conditional GET gets a 304.
    url = server.add_file("/rss.xml", RSS, etag='"v1"')
    changed = RSS.replace(b"</channel>", b"<item><title>new</title></item></channel>")
    server.add_file("/rss.xml", changed, etag='"v1"')
    state = FeedState(name="f", url=url, etag='"v1"')
    feed = Feed(name="f", url=url)

    never = await fetch_feed(client, feed, state, replace(LIMITS, unconditional_probability=0))
    assert never.body is None
    always = await fetch_feed(client, feed, state, replace(LIMITS, unconditional_probability=1))
    assert always.body == changed


async def test_polls_without_validators_draw_nothing(
    server: TimedServer, client: httpx.AsyncClient
) -> None:
    url = server.add_file("/rss.xml", RSS)
    rng, twin = random.Random(5), random.Random(5)
    await fetch_feed(client, Feed(name="f", url=url), None, LIMITS, rng=rng)
    assert rng.random() == twin.random()


# -- identification --------------------------------------------------------------------------------


async def test_user_agent_with_contact_is_what_the_server_sees(
    server: TimedServer,
) -> None:
    agent = build_user_agent("https://desk.example.org/monitor-contact")
    assert "+https://desk.example.org/monitor-contact" in agent
    limits = replace(LIMITS, user_agent=agent)
    url = server.add_file("/rss.xml", RSS)
    async with build_client(limits) as c:
        await fetch_feed(c, Feed(name="f", url=url), None, limits)
    assert server.requests[0].headers["user-agent"] == agent


def test_user_agent_needs_a_real_contact() -> None:
    assert build_user_agent("mailto:desk@example.org").endswith("(+mailto:desk@example.org; "
                                                                 "news alert bot)")
    for junk in ("", "desk@example.org", "javascript:alert(1)"):
        with pytest.raises(ValueError):
            build_user_agent(junk)
