"""``slack-test``, the start-up check and ``outbox status``, through the real CLI against the
fake Slack Web API on loopback: each Slack problem names its fix, and the outbox says why
alerts wait."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.models import Alert, Article, Verdict
from monitor.store.sqlite import SqliteStore
from tests.support.configs import write_config
from tests.support.fake_slack import DEFAULT_TOKEN, FakeSlack

REPO = Path(__file__).resolve().parent.parent


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True,
                          text=True, cwd=REPO, env={"PATH": "/usr/bin:/bin", **env},
                          timeout=60, check=False)


@pytest.fixture
def slack() -> FakeSlack:
    with FakeSlack() as fake:
        yield fake


def env_for(slack: FakeSlack, channel: str = "C0ALERTS1", token: str = DEFAULT_TOKEN) -> dict:
    return {"SLACK_BOT_TOKEN": token, "SLACK_CHANNEL": channel, "SLACK_API_URL": slack.base_url}


def test_slack_test_posts_a_test_message(tmp_path: Path, slack: FakeSlack) -> None:
    config = write_config(tmp_path, {})
    done = run_cli(["slack-test", "--config", str(config)], env_for(slack))
    assert done.returncode == 0, done.stderr
    assert "token works" in done.stdout and "bot is a member" in done.stdout
    assert "test message posted" in done.stdout
    [message] = slack.posted()
    assert "Test message" in (message.text or "")
    assert DEFAULT_TOKEN not in done.stdout + done.stderr


@pytest.mark.parametrize(("setup", "fix"), [
    ("bad_token", "reinstall the Slack app"),
    ("unknown_channel", "does not exist or the bot cannot see it"),
    ("not_member", "/invite"),
])
def test_slack_test_names_the_fix(tmp_path: Path, slack: FakeSlack, setup: str,
                                  fix: str) -> None:
    env = env_for(slack)
    if setup == "bad_token":
        env["SLACK_BOT_TOKEN"] = "xoxb-0000-wrong-token"
    elif setup == "unknown_channel":
        env["SLACK_CHANNEL"] = "C0NOSUCH99"
    else:
        slack.not_member.add("C0ALERTS1")
    done = run_cli(["slack-test", "--config", str(write_config(tmp_path, {}))], env)
    assert done.returncode == 1
    assert fix in done.stderr and "Traceback" not in done.stderr
    assert slack.posted() == []
    assert "wrong-token" not in done.stderr


def test_slack_test_without_slack_is_a_configuration_error(tmp_path: Path) -> None:
    done = run_cli(["slack-test", "--config", str(write_config(tmp_path, {}))], {})
    assert done.returncode == 2 and "SLACK_BOT_TOKEN" in done.stderr


async def test_the_daemon_checks_slack_at_start_up(
    tmp_path: Path, slack: FakeSlack, caplog: pytest.LogCaptureFixture,
) -> None:
    import asyncio
    import logging

    from monitor.app import run_forever
    from monitor.settings import load_settings

    caplog.set_level(logging.INFO)
    slack.not_member.add("C0ALERTS1")
    settings = load_settings(write_config(tmp_path, {}), env=env_for(slack))
    stop = asyncio.Event()
    task = asyncio.create_task(run_forever(settings, stop))
    for _ in range(100):
        if any("not usable yet" in r.getMessage() for r in caplog.records):
            break
        await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(task, 30)
    [line] = [r.getMessage() for r in caplog.records if "not usable yet" in r.getMessage()]
    assert "/invite" in line and "alerts wait in the outbox" in line


def test_outbox_status_groups_waiting_alerts_by_cause(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, {})
    store = SqliteStore(tmp_path / "state.db")
    store.migrate()
    t0 = datetime.now(UTC) - timedelta(hours=1)
    for i in range(5):
        a = Article(f"a{i}", "w", "Wire", f"https://w.example/{i}", f"T{i}", "s", t0, t0)
        alert = Alert(f"al{i}", a.id, "slack:C0ALERTS1", a.title, a.url, "Wire", t0, 0.9,
                      "r", "s")
        store.record_article(a, Verdict(a.id, 0.9, True, 0.5, "r", "m"), alert)
    claimed = store.claim_due_alerts(now=datetime.now(UTC), limit=10, lease_seconds=60)
    for alert in claimed[:3]:
        store.mark_alert_retry(alert.id, error="chat.postMessage: HTTP 503 (temporary)",
                               next_attempt_at=t0 + timedelta(hours=2), ambiguous=False)
    for alert in claimed[3:]:
        store.mark_alert_failed(alert.id, error="invalid_auth: reinstall the Slack app")
    store.close()
    assert main(["outbox", "status", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "pending=3" in out and "failed=2" in out
    assert "pending       3 alert(s), up to 1 attempt(s), next attempt" in out
    assert "HTTP 503 (temporary)" in out
    assert "failed        2 alert(s)" in out and "reinstall the Slack app" in out
