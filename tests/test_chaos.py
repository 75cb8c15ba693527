"""Hostile and broken servers next to a healthy one, through the real daemon code.

Each bad feed fails with its own typed, recorded error (or is disabled / followed)
while the healthy feed is still polled and alerted in the same cycle, on time.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.store.sqlite import SqliteStore
from tests.support.configs import write_config
from tests.support.feed_server import FeedServer

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
HEALTHY = (FIXTURES / "integration" / "desk_rss.xml").read_bytes()


def test_hostile_feeds_fail_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    for key in ("SLACK_BOT_TOKEN", "SLACK_CHANNEL", "SLACK_WEBHOOK_URL"):
        monkeypatch.delenv(key, raising=False)
    with FeedServer() as server:
        routes = {
            "Healthy": server.add_file("/healthy.xml", HEALTHY),
            "Slow": server.add_slow("/slow.xml", 30),
            "Huge": server.add_file("/huge.xml", b"<rss>" + b" " * 3_000_000 + b"</rss>"),
            "GzipBomb": server.add_gzip("/bomb.xml", b"<rss>" + b"A" * 50_000_000 + b"</rss>"),
            "Laughs": server.add_file(
                "/laughs.xml", (FIXTURES / "hostile" / "billion_laughs.xml").read_bytes()),
            "Loop": server.add_redirect("/loop-a.xml", "/loop-b.xml", 302),
            # Another host name for the same server: the 429 pauses that host only.
            "Limited": server.add_status(
                "/limited.xml", 429, headers={"Retry-After": "7200"}
            ).replace("127.0.0.1", "localhost"),
            "Moved": server.add_redirect("/old-home.xml", "/new-home.xml", 301),
            "Gone": server.add_status("/gone.xml", 410),
            "NotFeed": server.add_file("/page.html", b"<html><body>hello</body></html>",
                                       content_type="text/html"),
        }
        server.add_redirect("/loop-b.xml", "/loop-a.xml", 302)
        server.add_file("/new-home.xml", HEALTHY, etag='"new-home-v1"')
        config = write_config(tmp_path, routes, """
[fetch]
total_timeout = 3
per_host_concurrency = 20
min_host_gap_seconds = 0
max_bytes = 1000000
max_redirects = 3
unconditional_probability = 0   # the second cycle must send its validators (no 1 % coin flip)
""")
        started = time.monotonic()
        assert main(["once", "--config", str(config)]) == 0
        elapsed = time.monotonic() - started
        # the healthy feed's matches were alerted in this same cycle
        out = capsys.readouterr().out
        assert "https://desk.example/a/shells-by-rail" in out
        assert "https://desk.example/a/treaty" in out
        # nothing waited for the slow server beyond the fetch deadline (plus start-up)
        assert elapsed < 25

        store = SqliteStore(tmp_path / "state.db")
        states = {s.name: s for s in store.all_feed_states()}
        assert states["Healthy"].consecutive_errors == 0
        expected_kinds = {
            "Slow": "timeout", "Huge": "too_large", "GzipBomb": "too_large",
            "Laughs": "xml_entities", "Loop": "too_many_redirects", "Limited": "http_status",
            "Gone": "http_status", "NotFeed": "ParseError",
        }
        for name, kind in expected_kinds.items():
            state = states[name]
            assert state.consecutive_errors == 1, name
            assert state.last_error and state.last_error.startswith(kind), (name, state.last_error)
        # Retry-After is honoured as a lower bound for the next poll
        limited = states["Limited"]
        assert (limited.next_poll_at - limited.last_attempt_at).total_seconds() >= 7200
        # 410 disables the feed; the next cycle does not request it again
        assert states["Gone"].disabled
        store.close()
        # 301: the stored address follows the move, and the next cycle goes straight there
        assert states["Moved"].moved_to == server.url("/new-home.xml")
        assert states["Moved"].consecutive_errors == 0
        hits_before = server.hits("/gone.xml")
        old_home_before = server.hits("/old-home.xml")
        assert main(["once", "--config", str(config)]) == 0
        assert server.hits("/gone.xml") == hits_before
        assert server.hits("/old-home.xml") == old_home_before
        new_home = [r for r in server.requests if r.path == "/new-home.xml"]
        assert len(new_home) == 2
        # the moved feed keeps its validators: a conditional GET, not a full download
        assert new_home[-1].headers.get("if-none-match") == '"new-home-v1"'


def _rss(*items: tuple[str, str]) -> bytes:
    body = "".join(f"<item><title>{title}</title><link>https://wire.example/{slug}</link>"
                   f"<guid>wire-{slug}</guid><pubDate>Mon, 09 Sep 2024 08:00:00 GMT</pubDate>"
                   f"<description>{title}.</description></item>" for slug, title in items)
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>Wire</title>{body}</channel></rss>").encode()


def test_a_broken_304_is_caught_by_the_occasional_unconditional_poll(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The server changes the feed but keeps its ETag, so every conditional poll gets a 304
    and the new story would stay hidden; an unconditional poll finds it and alerts once."""
    for key in ("SLACK_BOT_TOKEN", "SLACK_CHANNEL", "SLACK_WEBHOOK_URL"):
        monkeypatch.delenv(key, raising=False)
    quiet = ("harvest", "Farmers in Brittany report an early grain harvest")
    story = ("shells", "North Korea sent more artillery shells to Russia by rail, "
                       "South Korean intelligence says")
    with FeedServer() as server:
        feeds = {"Healthy": server.add_file("/healthy.xml", HEALTHY),
                 "Broken304": server.add_file("/wire.xml", _rss(quiet), etag='"w1"')}

        def cycle(probability: float) -> str:
            config = write_config(tmp_path, feeds,
                                  f"[fetch]\nunconditional_probability = {probability}\n")
            assert main(["once", "--config", str(config)]) == 0
            return capsys.readouterr().out

        cycle(0.0)
        server.add_file("/wire.xml", _rss(story, quiet), etag='"w1"')  # same ETag: broken
        hidden = cycle(0.0)
        found = cycle(1.0)
        again = cycle(1.0)
        sent = [r.headers.get("if-none-match") for r in server.requests
                if r.path == "/wire.xml"]
    assert sent == [None, '"w1"', None, None]
    assert "wire.example/shells" not in hidden          # the 304 hid it
    assert found.count("https://wire.example/shells") == 1  # found and alerted
    assert "wire.example/shells" not in again           # once only
    assert server.hits("/healthy.xml") == 4             # the healthy feed, every cycle
