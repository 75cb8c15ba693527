"""End to end on loopback: local feed server → real pipeline → real SQLite → fake Slack Web API.

Runs the real CLI (`once` in-process, `run` as a subprocess) with the shipped
classifier, and checks what a real Slack workspace would have received.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.store.sqlite import SqliteStore
from tests.support.fake_slack import DEFAULT_TOKEN, FakeSlack
from tests.support.feed_server import FeedServer
from tests.support.processes import wait_until

FIXTURES = Path(__file__).parent / "fixtures" / "integration"
REPO = Path(__file__).resolve().parent.parent
EXPECTED_URLS = {
    "https://desk.example/a/shells-by-rail",
    "https://desk.example/a/treaty",
    "https://wire.example/story/troops-kursk",
    "https://patchy.example/lavrov",
}


@pytest.fixture
def feeds() -> Iterator[FeedServer]:
    with FeedServer() as server:
        server.add_file("/desk.xml", (FIXTURES / "desk_rss.xml").read_bytes(), etag='"desk-v1"')
        server.add_file(
            "/wire.xml",
            (FIXTURES / "wire_atom.xml").read_bytes(),
            content_type="application/atom+xml; charset=utf-8",
            last_modified="Tue, 05 Nov 2024 10:00:00 GMT",
        )
        server.add_file("/patchy.xml", (FIXTURES / "patchy_malformed.xml").read_bytes())
        server.add_status("/broken.xml", 500, body=b"upstream exploded")
        yield server


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def write_config(tmp_path: Path, feeds: FeedServer, *, lease: int = 120) -> Path:
    keywords = REPO / "config" / "keywords.toml"
    body = f"""
[schedule]
default_interval_seconds = 3600
jitter_seconds = 0
drain_interval_seconds = 1

[storage]
database_url = "sqlite:///{tmp_path}/state.db"

[classifier]
keywords_path = "{keywords}"

[alerts]
max_article_age_hours = 0
lease_seconds = {lease}
base_backoff_seconds = 1
max_backoff_seconds = 2

[fetch]
total_timeout = 10
unconditional_probability = 0    # the second cycle must send its validators
min_host_gap_seconds = 0.05      # every feed here is on one host
"""
    for name, path in [("Desk", "/desk.xml"), ("Wire", "/wire.xml"),
                       ("Patchy", "/patchy.xml"), ("Broken", "/broken.xml")]:
        body += f'\n[[feeds]]\nname = "{name}"\nurl = "{feeds.url(path)}"\n'
    path = tmp_path / "monitor.toml"
    path.write_text(body)
    return path


def slack_env(slack: FakeSlack) -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": DEFAULT_TOKEN,
        "SLACK_CHANNEL": "#alerts",
        "SLACK_API_URL": slack.base_url,
    }


def posted_urls(slack: FakeSlack) -> Counter[str]:
    """Which story each posted message links to (from the headline block's link)."""
    found: Counter[str] = Counter()
    for message in slack.posted():
        blob = repr(message.blocks) + (message.text or "")
        for url in EXPECTED_URLS | {"https://desk.example/a/bok-rates",
                                    "https://desk.example/a/typhoon",
                                    "https://wire.example/story/diet",
                                    "https://wire.example/story/depot",
                                    "https://patchy.example/marathon"}:
            if url in blob:
                found[url] += 1
    return found


def test_once_posts_each_match_exactly_once(
    tmp_path: Path, feeds: FeedServer, slack: FakeSlack,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    for key, value in slack_env(slack).items():
        monkeypatch.setenv(key, value)
    config = write_config(tmp_path, feeds)
    caplog.set_level(logging.INFO)

    assert main(["once", "--config", str(config)]) == 0
    assert posted_urls(slack) == Counter({url: 1 for url in EXPECTED_URLS})
    # every call carried the bot token, and the payload had the shape Slack requires
    assert all(c.authorization == f"Bearer {DEFAULT_TOKEN}" for c in slack.calls)
    for message in slack.posted():
        assert message.text and message.blocks
        assert message.metadata["event_type"] == "news_monitor_alert"
    # hostile markup in a title arrives escaped: no channel ping, no injected link
    treaty = next(m for m in slack.posted() if "treaty" in (m.text or "").lower())
    blob = repr(treaty.blocks) + (treaty.text or "")
    assert "<!channel>" not in blob and "<https://evil.example|click>" not in blob
    assert "&lt;!channel&gt;" in blob
    # the broken feed was logged with its name and counted, the others were not affected
    assert any("Broken" in r.getMessage() and "500" in r.getMessage() for r in caplog.records)
    store = SqliteStore(tmp_path / "state.db")
    states = {s.name: s for s in store.all_feed_states()}
    assert states["Broken"].consecutive_errors == 1
    assert all(states[n].consecutive_errors == 0 for n in ("Desk", "Wire", "Patchy"))
    assert store.outbox_counts()["sent"] == 4
    store.close()

    # second cycle: conditional GETs, nothing new posted, the failure counted again
    before = len(slack.posted())
    assert main(["once", "--config", str(config)]) == 0
    assert len(slack.posted()) == before
    desk_requests = [r for r in feeds.requests if r.path == "/desk.xml"]
    wire_requests = [r for r in feeds.requests if r.path == "/wire.xml"]
    assert desk_requests[-1].headers.get("if-none-match") == '"desk-v1"'
    assert wire_requests[-1].headers.get("if-modified-since") == "Tue, 05 Nov 2024 10:00:00 GMT"
    store = SqliteStore(tmp_path / "state.db")
    assert store.get_feed_state("Broken").consecutive_errors == 2
    assert store.get_feed_state("Wire").polls == 2
    store.close()


def test_console_alerts_without_slack(
    tmp_path: Path, feeds: FeedServer, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key in ("SLACK_BOT_TOKEN", "SLACK_CHANNEL", "SLACK_API_URL", "SLACK_WEBHOOK_URL"):
        monkeypatch.delenv(key, raising=False)
    config = write_config(tmp_path, feeds)
    assert main(["once", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    for url in EXPECTED_URLS:
        assert out.count(url) == 1, url
    assert "https://desk.example/a/bok-rates" not in out


def _spawn(config: Path, env: dict[str, str], command: str = "run") -> subprocess.Popen[str]:
    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "monitor", command, "--config", str(config)],
        cwd=REPO, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_run_daemon_posts_and_stops_cleanly_on_sigterm(
    tmp_path: Path, feeds: FeedServer, slack: FakeSlack
) -> None:
    config = write_config(tmp_path, feeds)
    proc = _spawn(config, slack_env(slack))
    try:
        assert wait_until(lambda: len(slack.posted()) >= 4, 60), "daemon posted too little"
        time.sleep(1.5)  # one more drain interval: nothing further may be posted
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "stopped cleanly" in err
    assert "poll feed='Broken' status=http_status http=500" in err
    assert posted_urls(slack) == Counter({url: 1 for url in EXPECTED_URLS})


def test_restart_after_crash_sends_each_alert_exactly_once(
    tmp_path: Path, feeds: FeedServer, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path, feeds, lease=5)
    # 1. Slack unreachable: alerts are recorded, nothing is sent, the process ends.
    dead_port = {"SLACK_BOT_TOKEN": DEFAULT_TOKEN, "SLACK_CHANNEL": "#alerts",
                 "SLACK_API_URL": "http://127.0.0.1:9/api/"}
    first = _spawn(config, dead_port, "once")
    first.communicate(timeout=60)
    assert first.returncode == 0
    store = SqliteStore(tmp_path / "state.db")
    assert store.outbox_counts()["pending"] == 4
    store.close()

    # 2. Slack accepts the first post but never answers; the worker is killed mid-send.
    slack.stall_next(120, n=1)
    second = _spawn(config, slack_env(slack))
    try:
        assert wait_until(lambda: len(slack.posted()) >= 1, 60)
        second.send_signal(signal.SIGKILL)
        second.communicate(timeout=30)
    finally:
        if second.poll() is None:
            second.kill()
    store = SqliteStore(tmp_path / "state.db")
    assert store.outbox_counts()["sent"] < 4
    store.close()

    # 3. Restart after the lease expired: the in-flight alert is found in the channel
    #    (not re-posted) and the rest are posted once.
    time.sleep(5.5)
    for key, value in slack_env(slack).items():
        monkeypatch.setenv(key, value)
    assert main(["once", "--config", str(config)]) == 0
    assert posted_urls(slack) == Counter({url: 1 for url in EXPECTED_URLS})
    assert len(slack.posted()) == 4
    store = SqliteStore(tmp_path / "state.db")
    assert store.outbox_counts()["sent"] == 4
    store.close()
