"""Settings: one clear error per problem, environment overrides, secrets never printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.errors import SettingsError
from monitor.settings import default_config_path, load_settings

KEYWORDS = (Path(__file__).resolve().parent.parent / "config" / "keywords.toml").read_text()


def write_config(tmp_path: Path, body: str) -> Path:
    (tmp_path / "keywords.toml").write_text(KEYWORDS)
    path = tmp_path / "monitor.toml"
    path.write_text(body)
    return path


FEED = '[[feeds]]\nname = "A"\nurl = "https://example.org/rss"\n'


def test_default_config_is_valid_and_has_real_feeds() -> None:
    settings = load_settings(default_config_path(), env={})
    assert len(settings.feeds) >= 10
    assert all(f.url.startswith("https://") for f in settings.feeds)
    assert settings.slack.mode == "console"
    assert settings.keywords_file.is_file()


def test_unknown_key_names_file_section_and_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[fetch]\nmax_byte = 10\n" + FEED)
    with pytest.raises(SettingsError) as info:
        load_settings(path, env={})
    message = str(info.value)
    assert str(path) in message and "fetch.max_byte" in message and "unknown key" in message


def test_wrong_type_and_bad_url_are_reported(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        '[schedule]\ndefault_interval_seconds = "often"\n'
        '[[feeds]]\nname = "B"\nurl = "htp:/nowhere"\n',
    )
    with pytest.raises(SettingsError) as info:
        load_settings(path, env={})
    message = str(info.value)
    assert "schedule.default_interval_seconds" in message
    assert "feeds.0.url" in message and "http://" in message


def test_per_feed_bounds_and_classifier_workers_are_checked(tmp_path: Path) -> None:
    good = write_config(tmp_path, '[classifier]\nworkers = 0\n[[feeds]]\nname = "Wire"\n'
                                  'url = "https://w.example/rss"\nmin_interval_seconds = 30\n')
    settings = load_settings(good, env={})
    assert settings.classifier.workers == 0
    assert settings.feeds[0].min_interval_seconds == 30
    crossed = write_config(tmp_path, '[classifier]\nworkers = -1\n[[feeds]]\nname = "Wire"\n'
                                     'url = "https://w.example/rss"\nmin_interval_seconds = 900'
                                     '\nmax_interval_seconds = 600\n')
    with pytest.raises(SettingsError) as info:
        load_settings(crossed, env={})
    message = str(info.value)
    assert "classifier.workers" in message
    assert "'Wire': min_interval_seconds must not exceed max_interval_seconds" in message


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "nope.toml", env={})
    path = write_config(tmp_path, "[fetch\n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(path, env={})


def test_duplicate_feed_names_rejected(tmp_path: Path) -> None:
    path = write_config(tmp_path, FEED + FEED)
    with pytest.raises(SettingsError, match="appears twice"):
        load_settings(path, env={})


def test_environment_overrides_and_secret_redaction(tmp_path: Path) -> None:
    path = write_config(tmp_path, FEED)
    token = "xoxb-0000000000-test-not-a-real-token"
    env = {
        "SLACK_BOT_TOKEN": token,
        "SLACK_CHANNEL": "#alerts",
        "SLACK_API_URL": "http://127.0.0.1:9/api",
        "MONITOR_DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
    }
    settings = load_settings(path, env=env)
    assert settings.slack.mode == "slack"
    assert settings.slack.api_url == "http://127.0.0.1:9/api/"
    assert settings.storage.sqlite_path == f"{tmp_path}/x.db"
    printed = json.dumps(settings.redacted()) + repr(settings) + str(settings)
    assert token not in printed


def test_token_in_file_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[slack]\nbot_token = "xoxb-1"\n' + FEED)
    with pytest.raises(SettingsError, match="SLACK_BOT_TOKEN"):
        load_settings(path, env={})


def test_relative_file_urls_resolve_against_config(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[[feeds]]\nname = "R"\nurl = "file:replay/a.xml"\n')
    settings = load_settings(path, env={})
    assert settings.feeds[0].url == (tmp_path / "replay" / "a.xml").as_uri()


def test_cli_exits_2_on_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, "[nonsense]\nx = 1\n")
    assert main(["check-config", "--config", str(path)]) == 2
    assert "nonsense" in capsys.readouterr().err


def test_check_config_prints_summary_without_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "xoxb-0000000000-should-not-print"
    monkeypatch.setenv("SLACK_BOT_TOKEN", token)
    monkeypatch.setenv("SLACK_CHANNEL", "#x")
    path = write_config(tmp_path, FEED)
    assert main(["check-config", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "feeds: 1" in out and "slack:#x" in out and token not in out
