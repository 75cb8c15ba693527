"""kill -9, twice, while Slack answers 500 three times and 429 to every 9th post: after the
last crash every alert is delivered within five minutes, none twice (real daemon processes,
a local feed server, the fake Slack on loopback)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.faults.stories import rss, spaced
from tests.support.fake_slack import DEFAULT_TOKEN, FakeSlack
from tests.support.feed_server import FeedServer

REPO = Path(__file__).resolve().parent.parent


def _posted_ids(slack: FakeSlack) -> Counter[str]:
    ids: Counter[str] = Counter()
    for message in slack.posted("C0ALERTS1"):
        payload = (message.metadata or {}).get("event_payload") or {}
        for alert_id in payload.get("alert_ids") or [payload.get("alert_id")]:
            if isinstance(alert_id, str):
                ids[alert_id] += 1
    return ids


def _alert_ids(db: Path) -> set[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {row[0] for row in conn.execute("SELECT id FROM alerts")}
    finally:
        conn.close()


def _wait(condition, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


@pytest.mark.slow
def test_kill_9_twice_in_a_slack_storm_delivers_every_alert_once(tmp_path: Path) -> None:
    count = 24 if os.environ.get("MONITOR_SHORT_SLOW") else 60
    db = tmp_path / "state.db"
    with FeedServer() as server, FakeSlack() as slack:
        url = server.add_file("/wire.xml", rss("wire", list(range(count)),
                                                published=spaced(count)))
        config = tmp_path / "monitor.toml"
        config.write_text(f"""
[schedule]
default_interval_seconds = 60
jitter_seconds = 0
drain_interval_seconds = 1
[storage]
database_url = "sqlite:///{db}"
[classifier]
keywords_path = "{REPO / 'config' / 'keywords.toml'}"
[alerts]
max_article_age_hours = 0
lease_seconds = 5
pace_per_second = 5
pace_burst = 2
[[feeds]]
name = "Wire"
url = "{url}"
""")
        slack.fail_next(3, status=500, method="chat.postMessage")
        slack.rate_limit_every, slack.rate_limit_retry_after = 9, 1
        env = {**os.environ, "SLACK_BOT_TOKEN": DEFAULT_TOKEN, "SLACK_CHANNEL": "C0ALERTS1",
               "SLACK_API_URL": slack.base_url, "PYTHONUNBUFFERED": "1"}
        env.pop("SLACK_APP_TOKEN", None)

        def start() -> subprocess.Popen[bytes]:
            return subprocess.Popen([sys.executable, "-m", "monitor", "run", "--config",
                                     str(config)], cwd=REPO, env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        daemon = start()
        try:
            for crash_after in (3, 9):  # kill -9 mid-drain, twice
                assert _wait(lambda n=crash_after: sum(_posted_ids(slack).values()) >= n, 120)
                daemon.send_signal(signal.SIGKILL)
                daemon.wait(30)
                daemon = start()
            last_crash = time.monotonic()
            assert _wait(lambda: db.exists() and len(_alert_ids(db)) == count, 120)
            expected = _alert_ids(db)
            delivered = _wait(lambda: set(_posted_ids(slack)) >= expected, 300)
            elapsed = time.monotonic() - last_crash
        finally:
            daemon.kill()
            daemon.wait(30)
        posted = _posted_ids(slack)
    assert delivered, f"{len(expected - set(posted))} alerts not delivered"
    assert elapsed <= 300
    assert [a for a, n in posted.items() if n > 1] == [], "posted twice"
    assert set(posted) == expected
    print(f"\n{count} alerts, 2 crashes, 3x500, 429 every 9th: all delivered once, "
          f"{elapsed:.0f} s after the last crash")
