"""Log lines for people and for log shippers: `--log-format json` / MONITOR_LOG_FORMAT give one
JSON object per line, lines about a feed carry its name and URL (in both formats), and the
Slack bot and app tokens never appear, whatever the format, level or outcome."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.logs import JsonFormatter, TextFormatter
from tests.support.configs import write_config
from tests.support.fake_slack import DEFAULT_TOKEN, FakeSlack

REPO = Path(__file__).resolve().parent.parent
REPLAY = REPO / "examples" / "replay" / "world_desk.xml"
APP_TOKEN = "xapp-1-A0TEST-1234567890-abcdefabcdef0123456789"


def _once(config: Path, *extra: str, env: dict[str, str] | None = None
          ) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "MONITOR_HTTP_LISTEN": "off"}
    for key in ("MONITOR_CONFIG", "SLACK_BOT_TOKEN", "SLACK_CHANNEL", "SLACK_APP_TOKEN",
                "SLACK_WEBHOOK_URL", "SLACK_API_URL", "MONITOR_LOG_FORMAT", "MONITOR_LOG_LEVEL"):
        full.pop(key, None)
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "monitor", "once", "--config", str(config),
                           *extra], cwd=REPO, env=full, capture_output=True, text=True,
                          timeout=180)


@pytest.mark.parametrize("how", ["flag", "env"])
def test_json_logs_one_object_per_line_with_feed_fields(tmp_path: Path, how: str) -> None:
    config = write_config(tmp_path, {"World Desk": REPLAY.as_uri()})
    done = (_once(config, "--log-format", "json") if how == "flag"
            else _once(config, env={"MONITOR_LOG_FORMAT": "json"}))
    assert done.returncode == 0, done.stderr
    entries = [json.loads(line) for line in done.stderr.splitlines()]
    assert entries and all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    polls = [e for e in entries if e["message"].startswith("poll feed=")]
    assert len(polls) == 1
    assert polls[0]["feed"] == "World Desk" and polls[0]["url"] == REPLAY.as_uri()
    assert any(e["message"].startswith("cycle done") for e in entries)


def test_text_poll_line_shows_the_url(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"World Desk": REPLAY.as_uri()})
    done = _once(config)
    assert done.returncode == 0, done.stderr
    poll = next(line for line in done.stderr.splitlines() if "poll feed='World Desk'" in line)
    assert f"url={REPLAY.as_uri()}" in poll


def test_a_failing_feed_line_names_feed_and_url(tmp_path: Path) -> None:
    missing = (tmp_path / "gone.xml").as_uri()
    config = write_config(tmp_path, {"Gone": missing})
    done = _once(config, "--log-format", "json")
    assert done.returncode == 4  # every feed failed (documented for cron)
    polls = [json.loads(line) for line in done.stderr.splitlines()
             if '"poll feed=' in line]
    assert polls[0]["level"] == "WARNING"
    assert (polls[0]["feed"], polls[0]["url"]) == ("Gone", missing)


@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.parametrize("bot_token", [DEFAULT_TOKEN, "xoxb-9999-wrong-token-refused"])
def test_tokens_never_appear_in_logs(tmp_path: Path, log_format: str, bot_token: str) -> None:
    """Debug level, buttons on, and (second token) Slack refusing the token: the error path."""
    config = write_config(tmp_path, {"World Desk": REPLAY.as_uri()})
    with FakeSlack(app_token=APP_TOKEN) as slack:
        done = _once(config, "--log-format", log_format, env={
            "SLACK_BOT_TOKEN": bot_token, "SLACK_APP_TOKEN": APP_TOKEN,
            "SLACK_CHANNEL": "C0ALERTS1", "SLACK_API_URL": slack.base_url,
            "MONITOR_LOG_LEVEL": "DEBUG",
        })
        posted = len(slack.posted())
    assert done.returncode == 0, done.stderr
    assert posted == (4 if bot_token == DEFAULT_TOKEN else 0)
    output = done.stdout + done.stderr
    assert "DEBUG" in output  # the most talkative level really ran
    for secret in (bot_token, APP_TOKEN, bot_token.split("-", 1)[1], APP_TOKEN.split("-", 1)[1]):
        assert secret not in output


def test_formatters_redact_what_a_caller_forgot() -> None:
    record = logging.LogRecord("monitor.x", logging.ERROR, __file__, 1,
                               "request failed with %s", (f"Bearer {DEFAULT_TOKEN}",), None)
    record.feed, record.url = "Desk", "https://desk.example/rss"
    entry = json.loads(JsonFormatter().format(record))
    assert DEFAULT_TOKEN not in entry["message"] and "redacted" in entry["message"]
    assert entry["feed"] == "Desk" and entry["url"] == "https://desk.example/rss"
    assert DEFAULT_TOKEN not in TextFormatter().format(record)
