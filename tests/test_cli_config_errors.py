"""Misconfiguration stops the CLI with exit code 2, one line per problem, and no secret echoed.

These run ``python -m monitor`` as operators do, with the settings in the environment,
because the environment is where a token ends up in the wrong variable.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.alerts.base import redact
from monitor.alerts.outbox import drain_outbox
from monitor.cli import main
from monitor.models import Alert, Article, Receipt, Verdict
from monitor.store.sqlite import SqliteStore
from tests.support.configs import REPO, write_config
from tests.support.defaults import drain_options

TOKEN = "xoxb-5555-6666-cliSECRETtoken"
APP_TOKEN = "xapp-1-A0123ABC-4567-appSECRETtoken"
FIX_CHANNEL = (
    "set SLACK_CHANNEL to the channel ID, like C0123ABCD, or unset SLACK_BOT_TOKEN for "
    "console alerts"
)
FIX_PASTED = (
    "looks like a Slack token; put the token in SLACK_BOT_TOKEN and the channel ID in "
    "SLACK_CHANNEL"
)
OUR_VARIABLES = ("SLACK_", "MONITOR_")


def monitor_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``python -m monitor ARGS`` with only ``env`` of our variables set."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(OUR_VARIABLES)}
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        env={**clean, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(autouse=True)
def _keep_root_handlers() -> Iterator[None]:
    """main() installs a stderr handler: drop it, so later tests never log to a closed capture."""
    before = list(logging.getLogger().handlers)
    level = logging.getLogger().level
    yield
    logging.getLogger().handlers[:] = before
    logging.getLogger().setLevel(level)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path, {"Wire": "https://wire.example/rss"},
                        '[slack]\nchannel = "#from-file"\n')


def test_token_pasted_into_slack_channel_exits_2_without_echo(config: Path) -> None:
    result = monitor_cli(["check-config", "--config", str(config)], {"SLACK_CHANNEL": TOKEN})
    assert result.returncode == 2
    assert "configuration error" in result.stderr and "slack.channel" in result.stderr
    assert FIX_PASTED in result.stderr
    assert "SECRET" not in result.stdout + result.stderr


def test_bot_token_with_empty_channel_exits_2(config: Path) -> None:
    env = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_CHANNEL": ""}
    result = monitor_cli(["check-config", "--config", str(config)], env)
    assert result.returncode == 2
    assert FIX_CHANNEL in result.stderr
    assert "SECRET" not in result.stdout + result.stderr


def test_every_problem_gets_its_own_line(config: Path) -> None:
    env = {
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_CHANNEL": APP_TOKEN,
        "SLACK_API_URL": "https://slack com/api/",
        "MONITOR_DATABASE_URL": "sqlite:///",
    }
    result = monitor_cli(["check-config", "--config", str(config)], env)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 3, result.stderr
    assert any("storage.database_url" in line and "in-memory" in line for line in lines)
    assert any("slack.api_url" in line and "SLACK_API_URL" in line for line in lines)
    assert any("slack.channel" in line and FIX_PASTED in line for line in lines)
    assert "SECRET" not in result.stdout + result.stderr


def test_channel_without_token_warns_but_runs(config: Path) -> None:
    result = monitor_cli(["check-config", "--config", str(config)], {"SLACK_CHANNEL": "C0123"})
    assert result.returncode == 0
    assert "SLACK_BOT_TOKEN is not" in result.stderr and "alerts: console" in result.stdout


@pytest.mark.parametrize("command", ["once", "run", "check-config"])
def test_daemon_commands_exit_2_before_doing_anything(
    command: str, config: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key in list(os.environ):
        if key.startswith(OUR_VARIABLES):
            monkeypatch.delenv(key)
    monkeypatch.setenv("MONITOR_DATABASE_URL", "sqlite:///")
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("SLACK_API_URL", "not a url")
    assert main([command, "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "storage.database_url" in err and "slack.api_url" in err
    assert "SECRET" not in err
    assert not (config.parent / "state.db").exists()


# --- redaction of whatever reaches a log line ----------------------------------------------
class LeakyDeliverer:
    """A destination whose error text carries every kind of Slack secret."""

    name = "leaky"
    supports_lookup = False

    async def deliver(self, alert: Alert) -> Receipt:
        raise RuntimeError(
            f"auth={TOKEN} app={APP_TOKEN} user=xoxp-1-2-userSECRET "
            "legacy=xoxs-legacySECRET refresh=xoxe-1-refreshSECRET "
            "cfg=xoxa-2-cfgSECRET,xoxr-rotSECRET "
            "hook=https://hooks.slack.com/services/T0/B0/hookSECRET"
        )

    async def find_delivered(self, alert: Alert) -> Receipt | None:
        return None

    async def aclose(self) -> None:
        return None


async def test_drainer_logs_never_carry_tokens(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    at = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    store = SqliteStore(str(tmp_path / "state.db"))
    store.migrate()
    article = Article(id="a1", feed_name="wire", source="Wire", url="https://w.example/1",
                      title="Pyongyang and Moscow sign arms deal", summary="s",
                      published_at=at, first_seen_at=at)
    verdict = Verdict("a1", 0.9, True, 0.5, "terms", "m1", "arms/military")
    alert = Alert(id="al1", article_id="a1", destination="leaky", title=article.title,
                  url=article.url, source="Wire", published_at=at, score=0.9, reason="terms",
                  snippet="s", event_type="arms/military")
    assert store.record_article(article, verdict, alert)
    with caplog.at_level(logging.DEBUG):
        await drain_outbox(store, LeakyDeliverer(), now=lambda: at,
                           logger=logging.getLogger("test.redact"),
            options=drain_options(max_batches=1))
    store.close()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "al1" in logged  # the failure was logged at all
    stored = sqlite3.connect(tmp_path / "state.db").execute(
        "SELECT last_error FROM alerts WHERE id = 'al1'").fetchone()[0]
    for text in (logged, stored):
        assert "SECRET" not in text
        assert "[redacted" in text


def test_redact_catches_tokens_anywhere_in_a_line() -> None:
    line = f"x={TOKEN};({APP_TOKEN})Bearer xoxp-9-a-b \"xoxe.xoxp-1-zzz\""
    cleaned = redact(line)
    assert "SECRET" not in cleaned and "xoxp-9" not in cleaned and "zzz" not in cleaned
    assert cleaned.startswith("x=")
