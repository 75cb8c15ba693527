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
    assert settings.sink == "console"
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
    assert settings.sink == "slack"
    assert settings.slack.api_url == "http://127.0.0.1:9/api/"
    assert settings.storage.database_url == f"sqlite:///{tmp_path}/x.db"
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


# --- misconfiguration that used to fail silently ------------------------------------------
BOT = "xoxb-1111-2222-settings-secret-token"
NO_CHANNEL_FIX = (
    "set SLACK_CHANNEL to the channel ID, like C0123ABCD, or unset SLACK_BOT_TOKEN for "
    "console alerts"
)


def test_bot_token_without_channel_is_an_error(tmp_path: Path) -> None:
    path = write_config(tmp_path, FEED)  # no [slack] channel at all
    with pytest.raises(SettingsError) as info:
        load_settings(path, env={"SLACK_BOT_TOKEN": BOT})
    message = str(info.value)
    assert NO_CHANNEL_FIX in message and "slack" in message
    assert BOT not in message


@pytest.mark.parametrize("blank", ["", "   "])
def test_empty_slack_channel_variable_with_token_is_an_error(tmp_path: Path, blank: str) -> None:
    """``SLACK_CHANNEL=${UNSET}`` must not quietly fall back to the file's channel."""
    path = write_config(tmp_path, '[slack]\nchannel = "#from-file"\n' + FEED)
    with pytest.raises(SettingsError) as info:
        load_settings(path, env={"SLACK_BOT_TOKEN": BOT, "SLACK_CHANNEL": blank})
    assert NO_CHANNEL_FIX in str(info.value) and BOT not in str(info.value)
    # Without a token an empty SLACK_CHANNEL is harmless: console alerts, as before.
    assert load_settings(path, env={"SLACK_CHANNEL": blank}).sink == "console"


def test_blank_channel_in_file_with_token_is_an_error(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[slack]\nchannel = "  "\n' + FEED)
    with pytest.raises(SettingsError, match="SLACK_CHANNEL to the channel ID"):
        load_settings(path, env={"SLACK_BOT_TOKEN": BOT})


def test_token_with_webhook_and_no_channel_uses_the_webhook(tmp_path: Path) -> None:
    """The token may be there for ops notices only; the webhook carries the alerts."""
    path = write_config(tmp_path, '[slack]\nops_channel = "C0OPS"\n' + FEED)
    env = {"SLACK_BOT_TOKEN": BOT, "SLACK_WEBHOOK_URL": "http://127.0.0.1:9/hook/abc"}
    assert load_settings(path, env=env).sink == "webhook"


def test_channel_variable_without_token_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_config(tmp_path, FEED)
    with caplog.at_level("WARNING", logger="monitor.settings"):
        settings = load_settings(path, env={"SLACK_CHANNEL": "C0123ABCD"})
    assert settings.sink == "console"
    assert any("SLACK_BOT_TOKEN is not" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING", logger="monitor.settings"):  # the shipped file's channel
        load_settings(default_config_path(), env={})
    assert not caplog.records


def test_fetch_max_items_moved_to_parse_and_the_old_key_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_config(tmp_path, "[parse]\nmax_items = 40\n" + FEED)
    with caplog.at_level("WARNING", logger="monitor.settings"):
        assert load_settings(path, env={}).parse.max_items == 40
    assert not caplog.records
    path = write_config(tmp_path, "[fetch]\nmax_items = 30\n" + FEED)
    with caplog.at_level("WARNING", logger="monitor.settings"):
        assert load_settings(path, env={}).parse.max_items == 30
    assert any("deprecated" in r.getMessage() and "parse.max_items" in r.getMessage()
               for r in caplog.records)
    path = write_config(tmp_path, "[fetch]\nmax_items = 30\n[parse]\nmax_items = 40\n" + FEED)
    with pytest.raises(SettingsError, match=r"keep only parse\.max_items"):
        load_settings(path, env={})
    path = write_config(tmp_path, "[fetch]\nmax_items = 0\n" + FEED)
    with pytest.raises(SettingsError, match=r"parse\.max_items"):
        load_settings(path, env={})


def test_ops_channel_without_token_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_config(tmp_path, '[slack]\nops_channel = "#ops"\n' + FEED)
    with caplog.at_level("WARNING", logger="monitor.settings"):
        load_settings(path, env={})
    assert any("notices go to the log" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("url", ["sqlite:///", "sqlite:///   ", "sqlite:///state/"])
def test_database_url_without_a_file_is_an_error(tmp_path: Path, url: str) -> None:
    path = write_config(tmp_path, f'[storage]\ndatabase_url = "{url}"\n' + FEED)
    with pytest.raises(SettingsError) as info:
        load_settings(path, env={})
    assert "storage.database_url" in str(info.value) and "in-memory" in str(info.value)
    with pytest.raises(SettingsError, match=r"storage\.database_url"):
        load_settings(write_config(tmp_path, FEED), env={"MONITOR_DATABASE_URL": url})


def test_in_memory_database_only_when_asked_for(tmp_path: Path) -> None:
    path = write_config(tmp_path, FEED)
    settings = load_settings(path, env={"MONITOR_DATABASE_URL": "sqlite:///:memory:"})
    assert settings.storage.database_url == "sqlite:///:memory:"


@pytest.mark.parametrize(
    "url",
    [
        "slack.com/api",
        "ftp://slack.com/api/",
        "http://",
        "http:///api/",
        "http://:8080/api/",
        "http://exa mple.com/api/",
        "http://127.0.0.1:port/api/",
        "https://slack.com/api/?x=1",
    ],
)
def test_malformed_slack_api_url_is_an_error(tmp_path: Path, url: str) -> None:
    path = write_config(tmp_path, FEED)
    env = {"SLACK_BOT_TOKEN": BOT, "SLACK_CHANNEL": "C0123ABCD", "SLACK_API_URL": url}
    with pytest.raises(SettingsError) as info:
        load_settings(path, env=env)
    message = str(info.value)
    assert "slack.api_url" in message and "SLACK_API_URL" in message and BOT not in message
    good = {**env, "SLACK_API_URL": "https://slack.com/api"}
    assert load_settings(path, env=good).slack.api_url == "https://slack.com/api/"


def test_webhook_url_pasted_as_api_url_is_refused_without_echo(tmp_path: Path) -> None:
    hook = "https://hooks.slack.com/services/T000/B000/apiurlSECRET"
    env = {"SLACK_BOT_TOKEN": BOT, "SLACK_CHANNEL": "C0123ABCD", "SLACK_API_URL": hook}
    with pytest.raises(SettingsError) as info:
        load_settings(write_config(tmp_path, FEED), env=env)
    assert "SLACK_WEBHOOK_URL" in str(info.value) and "apiurlSECRET" not in str(info.value)


@pytest.mark.parametrize(
    "url",
    ["hooks.slack.com/services/T0/B0/hookSECRET", "https://:443/hookSECRET",
     "http://a b/hookSECRET"],
)
def test_malformed_webhook_url_is_an_error_without_echo(tmp_path: Path, url: str) -> None:
    path = write_config(tmp_path, FEED)
    with pytest.raises(SettingsError) as info:
        load_settings(path, env={"SLACK_WEBHOOK_URL": url})
    message = str(info.value)
    assert "slack.webhook_url" in message and "SLACK_WEBHOOK_URL" in message
    assert "hookSECRET" not in message and url not in message
    local = load_settings(path, env={"SLACK_WEBHOOK_URL": "http://127.0.0.1:8080/hook/x"})
    assert local.sink == "webhook"


TOKEN_SHAPES = [
    "xoxb-1234-5678-pastedSECRET",
    "xoxp-1234-5678-pastedSECRET",
    "xoxa-2-pastedSECRET",
    "xoxr-pastedSECRET",
    "xoxs-pastedSECRET",
    "xapp-1-A0123-4567-pastedSECRET",
    "https://hooks.slack.com/services/T0/B0/pastedSECRET",
]
PASTED_FIX = (
    "looks like a Slack token; put the token in SLACK_BOT_TOKEN and the channel ID in "
    "SLACK_CHANNEL"
)


@pytest.mark.parametrize("value", TOKEN_SHAPES)
def test_token_pasted_into_slack_channel_is_refused_without_echo(
    tmp_path: Path, value: str
) -> None:
    path = write_config(tmp_path, FEED)
    with pytest.raises(SettingsError) as info:
        load_settings(path, env={"SLACK_CHANNEL": value})
    message = str(info.value)
    assert "slack.channel" in message and PASTED_FIX in message
    assert "pastedSECRET" not in message


@pytest.mark.parametrize("key", ["channel", "ops_channel"])
def test_token_in_channel_keys_of_the_file_is_refused_without_echo(
    tmp_path: Path, key: str
) -> None:
    path = write_config(tmp_path, f'[slack]\n{key} = "xoxp-99-fileSECRET"\n' + FEED)
    with pytest.raises(SettingsError) as info:
        load_settings(path, env={})
    assert f"slack.{key}" in str(info.value) and PASTED_FIX in str(info.value)
    assert "fileSECRET" not in str(info.value)


def test_error_messages_never_echo_token_shaped_values(tmp_path: Path) -> None:
    """Whatever key a token is pasted into, the message names the key, not the value."""
    path = write_config(
        tmp_path,
        '[logging]\nlevel = "xoxb-7-levelSECRET"\n'
        '[fetch]\ncontact_url = "xapp-1-contactSECRET"\n'
        '[[feeds]]\nname = "T"\nurl = "xoxp-8-feedSECRET"\n',
    )
    with pytest.raises(SettingsError) as info:
        load_settings(path, env={})
    message = str(info.value)
    assert "logging.level" in message and "fetch.contact_url" in message
    assert "feeds.0.url" in message
    assert "SECRET" not in message
    assert len(message.splitlines()) == 3
