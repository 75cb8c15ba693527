"""ParserPool: parse_feed in worker processes, with time and memory limits and recovery.

Faults are real: a feed too big to parse in time, a body too big for the memory limit,
a worker stopped (SIGSTOP) or killed (SIGKILL) underneath a parse. Nothing in the pool
is monkeypatched.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.errors import HostileFeedError, ParseError
from monitor.models import ParsedFeed, RawEntry
from monitor.parse import parse_feed
from monitor.parse_pool import ParserPool
from tests.support.processes import alive

FEEDS = Path(__file__).parent / "fixtures" / "feeds"
HOSTILE = Path(__file__).parent / "fixtures" / "hostile"


def busy_feed(items: int, description_chars: int = 40) -> bytes:
    """A legal feed that simply takes long to parse (about 0.5 ms per item).

    RSS 0.92, so that monitor.fastparse leaves it to feedparser: these tests need
    the slow parser, and the pool must bound whichever parser runs.
    """
    text = "Delegations discussed rail freight and port access. " * (description_chars // 52 + 1)
    body = "".join(
        f"<item><title>Story {i}</title><guid>busy-{i}</guid>"
        f"<link>https://busy.example.org/{i}</link>"
        f"<description>{text[:description_chars]}</description></item>"
        for i in range(items)
    )
    return f'<rss version="0.92"><channel><title>Busy</title>{body}</channel></rss>'.encode()


async def wait_for_new_pid(pool: ParserPool, old: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = pool.worker_pids()
        if pids and pids[0] != old:
            return pids[0]
        await asyncio.sleep(0.005)
    raise AssertionError("no new worker appeared")


# -- results cross the process boundary intact ----------------------------------------------------


def test_models_and_errors_pickle() -> None:
    entry = RawEntry("f", "g1", "https://x.example/1", "Title", "<p>x</p>",
                     datetime(2024, 6, 19, 3, 10, tzinfo=UTC), "desk")
    parsed = ParsedFeed("f", "Feed", (entry, entry), "a problem")
    assert pickle.loads(pickle.dumps(parsed)) == parsed
    error = pickle.loads(pickle.dumps(HostileFeedError("parse_memory", "too big")))
    assert isinstance(error, HostileFeedError)
    assert (error.kind, str(error)) == ("parse_memory", "too big")


CASES = [
    ("rss20_news.xml", {"content_type": "application/rss+xml; charset=utf-8",
                        "base_url": "https://desk.example.org/feed.xml"}),
    ("atom10_news.xml", {"content_type": "application/atom+xml"}),
    ("rss10_rdf.xml", {}),
    ("windows1251.xml", {"content_type": "application/rss+xml; charset=utf-8"}),
    ("relative_links_rss.xml", {"base_url": "https://rel.example.net/feeds/world.xml"}),
    ("missing_dates.xml", {}),
    ("malformed_recoverable.xml", {"content_type": "application/rss+xml"}),
    ("html_entities.xml", {"max_items": 1}),
]


async def test_pool_results_equal_in_process_results() -> None:
    async with ParserPool(workers=2) as pool:
        results = await asyncio.gather(
            *(pool.parse(name, (FEEDS / name).read_bytes(), **kw) for name, kw in CASES)
        )
    for (name, kw), result in zip(CASES, results, strict=True):
        assert result == parse_feed(name, (FEEDS / name).read_bytes(), **kw), name  # type: ignore[arg-type]
        assert result.entries  # not vacuously equal


@pytest.mark.parametrize("version", ["2.0", "0.92"])  # the fast path, then feedparser
async def test_feed_level_facts_cross_the_boundary_too(version: str) -> None:
    body = (f'<rss version="{version}"><channel><title>Desk</title><ttl>30</ttl>'
            '<item><title>One</title><guid>t-1</guid><link>https://t.example/1</link></item>'
            '</channel></rss>').encode()
    async with ParserPool(workers=1) as pool:
        result = await pool.parse("ttl", body)
    assert result == parse_feed("ttl", body)
    assert (result.title, result.ttl_seconds, len(result.entries)) == ("Desk", 1800.0, 1)


async def test_errors_come_back_typed_with_their_messages() -> None:
    async with ParserPool() as pool:
        with pytest.raises(ParseError, match="not a feed") as info:
            await pool.parse("page", (FEEDS / "not_a_feed.html").read_bytes(),
                             content_type="text/html")
        assert not isinstance(info.value, HostileFeedError)
        with pytest.raises(ParseError, match="'test-feed'"):
            await pool.parse("test-feed", (FEEDS / "bad_charref.xml").read_bytes())
        with pytest.raises(HostileFeedError) as hostile:
            await pool.parse("laughs", (HOSTILE / "billion_laughs_utf16.xml").read_bytes())
        assert hostile.value.kind == "xml_entities"
        legacy = (HOSTILE / "legacy_nbsp_entity.xml").read_bytes()
        parsed = await pool.parse("legacy", legacy, max_entity_declarations=1)
        assert parsed.entries[0].title == "Talks\u00a0resume in Vladivostok"
        assert pool.counts["xml_entities"] == 1
        assert pool.counts["parse_error"] == 2


# -- limits and recovery ---------------------------------------------------------------------------


async def test_runaway_parse_times_out_and_the_worker_keeps_serving() -> None:
    normal = (FEEDS / "rss20_news.xml").read_bytes()
    async with ParserPool(timeout_seconds=0.2) as pool:
        (pid,) = pool.worker_pids()
        started = time.monotonic()
        with pytest.raises(HostileFeedError, match=r"longer than 0\.2 s") as info:
            await pool.parse("busy", busy_feed(3_000), max_items=3_000)  # ~1.5 s to parse
        assert info.value.kind == "parse_timeout"
        assert time.monotonic() - started < 1.0
        # The worker interrupted itself, so it was not replaced.
        assert pool.worker_pids() == [pid]
        assert await pool.parse("normal", normal) == parse_feed("normal", normal)


async def test_stuck_worker_is_killed_and_replaced() -> None:
    # A stopped process cannot run its own alarm: only the outside deadline can end it.
    normal = (FEEDS / "atom10_news.xml").read_bytes()
    async with ParserPool(timeout_seconds=0.2, kill_grace_seconds=0.3) as pool:
        (pid,) = pool.worker_pids()
        os.kill(pid, signal.SIGSTOP)
        started = time.monotonic()
        with pytest.raises(HostileFeedError, match="did not stop") as info:
            await pool.parse("stuck", normal)
        assert info.value.kind == "parse_timeout"
        assert 0.5 <= time.monotonic() - started < 3.0
        (new_pid,) = pool.worker_pids()
        assert new_pid != pid
        assert await pool.parse("normal", normal) == parse_feed("normal", normal)
        for _ in range(200):
            if not alive(pid):
                break
            await asyncio.sleep(0.01)
        assert not alive(pid)


async def test_memory_limit_is_a_typed_error_and_the_pool_recovers() -> None:
    huge = busy_feed(1, description_chars=20_000_000)  # ~20 MB: far beyond 100 MB once parsed
    normal = (FEEDS / "rss20_news.xml").read_bytes()
    async with ParserPool(memory_limit_mb=100) as pool:
        (pid,) = pool.worker_pids()
        with pytest.raises(HostileFeedError, match="more than 100 MB") as info:
            await pool.parse("huge", huge)
        assert info.value.kind == "parse_memory"
        assert pool.worker_pids() != [pid]  # replaced, not trusted after an allocation failure
        assert await pool.parse("normal", normal) == parse_feed("normal", normal)


async def test_worker_killed_mid_parse_is_retried_once_and_succeeds() -> None:
    body = busy_feed(1_000)
    async with ParserPool() as pool:
        (pid,) = pool.worker_pids()
        task = asyncio.create_task(pool.parse("victim", body, max_items=1_000))
        await asyncio.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
        parsed = await task
        assert len(parsed.entries) == 1_000
        assert parsed == parse_feed("victim", body, max_items=1_000)
        assert pool.counts["worker_died"] == 1
        assert pool.worker_pids() != [pid]


async def test_worker_dying_twice_on_one_feed_is_parse_crashed() -> None:
    body = busy_feed(1_000)
    normal = (FEEDS / "rss20_news.xml").read_bytes()
    async with ParserPool() as pool:
        (first,) = pool.worker_pids()
        task = asyncio.create_task(pool.parse("doomed", body, max_items=1_000))
        await asyncio.sleep(0.1)
        os.kill(first, signal.SIGKILL)
        second = await wait_for_new_pid(pool, first)
        await asyncio.sleep(0.1)
        os.kill(second, signal.SIGKILL)
        with pytest.raises(HostileFeedError, match="died twice") as info:
            await task
        assert info.value.kind == "parse_crashed"
        assert await pool.parse("normal", normal) == parse_feed("normal", normal)


async def test_cancelled_parse_does_not_leave_a_busy_worker_behind() -> None:
    normal = (FEEDS / "rss20_news.xml").read_bytes()
    async with ParserPool() as pool:
        (pid,) = pool.worker_pids()
        task = asyncio.create_task(pool.parse("slow", busy_feed(3_000), max_items=3_000))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        started = time.monotonic()
        assert await pool.parse("normal", normal) == parse_feed("normal", normal)
        assert time.monotonic() - started < 1.0  # did not wait for the abandoned parse
        assert pool.worker_pids() != [pid]


# -- the event loop and the life cycle ----------------------------------------------------------


async def test_parsing_never_blocks_the_event_loop() -> None:
    body = busy_feed(3_000)
    worst = 0.0
    done = asyncio.Event()

    async def heartbeat() -> None:
        nonlocal worst
        while not done.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            worst = max(worst, time.perf_counter() - before - 0.01)

    async with ParserPool() as pool:
        beat = asyncio.create_task(heartbeat())
        started = time.perf_counter()
        parsed = await pool.parse("long", body, max_items=3_000)
        elapsed = time.perf_counter() - started
        done.set()
        await beat
    assert len(parsed.entries) == 3_000
    # Had the parse run on the loop, the heartbeat's worst delay would be about
    # the whole parse time; off the loop it stays a small fraction of it.
    assert worst < 0.1
    assert worst < elapsed / 3


async def test_lazy_start_waiting_callers_and_close() -> None:
    normal = (FEEDS / "rss20_news.xml").read_bytes()
    pool = ParserPool(workers=1)
    # Never started: the first parse starts it; extra callers wait for the one worker.
    results = await asyncio.gather(*(pool.parse(f"f{i}", normal) for i in range(4)))
    assert [r.feed_name for r in results] == ["f0", "f1", "f2", "f3"]
    (pid,) = pool.worker_pids()
    in_flight = asyncio.create_task(pool.parse("last", normal))
    await asyncio.sleep(0)
    backlog = [asyncio.create_task(pool.parse(f"queued{i}", normal)) for i in range(3)]
    await asyncio.sleep(0)
    await pool.aclose()  # lets the running parse finish; the backlog is refused
    assert (await in_flight).feed_name == "last"
    for queued in backlog:
        with pytest.raises(ParseError, match="closed"):
            await queued
    assert pool.worker_pids() == []
    assert not alive(pid)
    with pytest.raises(ParseError, match="closed"):
        await pool.parse("late", normal)
    await pool.aclose()  # idempotent


# -- overhead (slow: run with -m slow) ----------------------------------------------------------


@pytest.mark.slow
async def test_pool_overhead_is_small_next_to_the_parse() -> None:
    body = busy_feed(50, description_chars=400)  # a typical news feed: 50 items, ~30 KB
    rounds = 60
    parse_feed("warm-up", body)
    cpu = time.process_time()
    for _ in range(rounds):
        parse_feed("typical", body)
    in_process = (time.process_time() - cpu) / rounds
    async with ParserPool() as pool:
        for _ in range(3):
            await pool.parse("warm-up", body)
        cpu = time.process_time()
        for _ in range(rounds):
            await pool.parse("typical", body)
        daemon_side = (time.process_time() - cpu) / rounds
    print(f"\nin-process parse {in_process * 1e3:.2f} ms CPU; "
          f"pool costs the daemon {daemon_side * 1e3:.3f} ms CPU per parse")
    assert daemon_side < 0.1 * in_process
