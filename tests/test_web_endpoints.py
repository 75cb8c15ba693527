"""The daemon's HTTP endpoints end to end: the real daemon (``run_forever``) polls a local
feed server (two outlets and a broken feed) and alerts the fake Slack, which rate limits
once; the test reads /healthz, /readyz, /metrics and the pages over real HTTP."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.settings import load_settings
from tests.support.fake_slack import DEFAULT_TOKEN, FakeSlack
from tests.support.feed_server import FeedServer
from tests.support.web import HOSTILE_TITLE, free_port, serve_feeds, web_config

CHANNEL = "C0ALERTS1"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def slack_env(slack: FakeSlack) -> dict[str, str]:
    return {"SLACK_BOT_TOKEN": DEFAULT_TOKEN, "SLACK_CHANNEL": CHANNEL,
            "SLACK_API_URL": slack.base_url}


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def wait_for(client: httpx.AsyncClient, check, timeout: float = 90.0):  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            result = await check(client)
            if result:
                return result
        except httpx.TransportError:
            pass
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting for the daemon")
        await asyncio.sleep(0.2)


async def test_health_metrics_and_pages_of_a_running_daemon(
    tmp_path: Path, slack: FakeSlack,
) -> None:
    from monitor.app import run_forever

    slack.fail_next(error="ratelimited", retry_after=0.2, method="chat.postMessage")
    with FeedServer() as server:
        port = free_port()
        settings = load_settings(web_config(tmp_path, serve_feeds(server), port),
                                 env=slack_env(slack))
        stop = asyncio.Event()
        daemon = asyncio.create_task(run_forever(settings, stop))
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                         timeout=10) as client:
                async def ready(c: httpx.AsyncClient) -> httpx.Response | None:
                    r = await c.get("/readyz")
                    return r if r.status_code == 200 else None

                async def delivered(c: httpx.AsyncClient) -> str | None:
                    text = (await c.get("/metrics")).text
                    found = samples(text)
                    done = (value(found, "monitor_outbox_alerts", status="sent") >= 3
                            and value(found, "monitor_polls_total", status="ok") >= 2
                            and value(found, "monitor_feed_consecutive_errors", feed="Broken"))
                    return text if done else None

                ready_body = (await wait_for(client, ready)).json()
                assert ready_body["status"] == "ok"
                assert set(ready_body["checks"]) == {"store", "model", "polls"}
                metrics_text = await wait_for(client, delivered)
                health = await client.get("/healthz")
                home = await client.get("/")
                feeds = await client.get("/feeds")
                found_page = await client.get("/search", params={"q": "artillery shells"})
                hostile_search = await client.get("/search", params={"q": "script alert"})
                awkward = [await client.get("/search", params={"q": q})
                           for q in ('"', "NEAR(", "title:x", "*", "a AND OR NOT")]
                bad_dates = await client.get("/search", params={"since": "yesterday"})
                matches = await client.get("/search", params={"matches": "1",
                                                              "outlet": "Wire"})
        finally:
            stop.set()
            await asyncio.wait_for(daemon, 60)

    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert set(health.json()["checks"]) == {"event_loop", "scheduler", "jobs"}

    found = samples(metrics_text)
    assert value(found, "monitor_polls_total", status="ok") >= 2
    assert sum(v for (name, labels), v in found.items() if name == "monitor_polls_total"
               and ("status", "ok") not in labels) >= 1  # the broken feed's failures
    assert value(found, "monitor_fetch_seconds_count") >= 2
    assert value(found, "monitor_fetched_bytes_total") > 1000
    assert ("monitor_not_modified_ratio", frozenset()) in found
    assert value(found, "monitor_items_parsed_total") == 5
    assert value(found, "monitor_new_articles_total") == 5
    assert value(found, "monitor_matches_total") >= 3
    assert 1 <= value(found, "monitor_stories_total") <= value(found, "monitor_matches_total")
    assert value(found, "monitor_alerts_queued_total") >= 3
    assert value(found, "monitor_drain_alerts_total", result="sent") >= 3
    assert value(found, "monitor_outbox_alerts", status="failed") == 0
    dest = f"slack:{CHANNEL}"
    assert value(found, "monitor_delivery_seconds_count", destination=dest, outcome="ok") >= 1
    assert value(found, "monitor_delivery_rate_limits_total", destination=dest) == 1
    assert value(found, "monitor_destination_up", destination=dest) == 1
    assert value(found, "monitor_classify_seconds_count") >= 2
    assert value(found, "monitor_event_loop_lag_seconds_count") >= 1
    assert value(found, "monitor_feed_consecutive_errors", feed="Broken") >= 1
    assert value(found, "monitor_feed_consecutive_errors", feed="Wire") == 0
    assert value(found, "monitor_last_successful_poll_timestamp_seconds") > 0

    for page in (home, feeds, found_page, hostile_search, *awkward, bad_dates, matches):
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("text/html")
        assert "script-src" not in page.headers["content-security-policy"]
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert "<script" not in page.text.lower()
    assert "Putin and Kim sign mutual defence treaty" in home.text
    assert "Rajin" in home.text or "Tumen" in home.text  # the reason or the titles
    assert "Broken" in feeds.text and "500" in feeds.text
    assert "<mark>artillery</mark>" in found_page.text.lower() or "artillery" in found_page.text
    assert "Seoul" in found_page.text and "Thailand" not in found_page.text
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;"
    assert escaped in hostile_search.text and HOSTILE_TITLE not in hostile_search.text
    assert escaped in home.text and HOSTILE_TITLE not in home.text
    assert "is not a date" in bad_dates.text
    assert "Putin and Kim" in matches.text and "Thailand" not in matches.text
    assert escaped not in matches.text  # a Herald item: the outlet filter holds


async def test_a_port_in_use_leaves_the_daemon_running_without_endpoints(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    from monitor.app import run_forever

    caplog.set_level(logging.INFO)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = load_settings(web_config(tmp_path, {}, port), env={})
        stop = asyncio.Event()
        daemon = asyncio.create_task(run_forever(settings, stop))
        for _ in range(300):
            if any("scheduler started" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.wait_for(daemon, 60)
    [line] = [r.getMessage() for r in caplog.records if "cannot listen" in r.getMessage()]
    assert f"127.0.0.1:{port}" in line and "MONITOR_HTTP_LISTEN" in line
    assert any("scheduler started" in r.getMessage() for r in caplog.records)
