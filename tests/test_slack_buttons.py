"""The analysts' buttons end to end: the real daemon (``run_forever``) with SLACK_APP_TOKEN
against a local feed server, the fake Slack Web API and a fake Socket Mode endpoint, all on
127.0.0.1. A press is acknowledged at once, stored with the Slack user (history kept), shown
on the message; mutes keep later alerts out of Slack while the articles are still stored and
scored. Parsing and the store are also tested on their own.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from monitor.alerts.format import ACTION_IDS, build_slack_message, build_slack_reply
from monitor.alerts.slack import SlackDeliverer
from monitor.cli import main
from monitor.errors import SettingsError, StoreError
from monitor.interact import InteractionError, apply_press, parse_block_actions
from monitor.models import Alert, Article, Verdict
from monitor.settings import load_settings
from monitor.store.sqlite import SqliteStore
from tests.support.configs import write_config
from tests.support.fake_slack import DEFAULT_TOKEN, FakeMessage, FakeSlack
from tests.support.fake_socket_mode import FakeSocketMode, block_actions
from tests.support.feed_server import FeedServer

APP_TOKEN = "xapp-1-A0FAKEAPP-1234567890-fakeAppLevelSecret0123456789"
NOW = datetime.now(UTC).replace(microsecond=0)
ALICE, BOB = "U0ALICE01", "U0BOB0002"

TRAIN = ("Kim Jong Un's armoured train crosses into Russia at Khasan ahead of Putin summit",
         "The North Korean leader's train crossed the Tumen River border into Russia's Primorye "
         "region early on Tuesday, Russian officials said, on the way to talks with Vladimir "
         "Putin expected to cover arms and military cooperation.")
PLANT = ("Kim tours Komsomolsk-on-Amur fighter jet plant as Russia shows off Su-35 production "
         "line",
         "After the summit, the North Korean leader visited the Yuri Gagarin aircraft factory in "
         "Komsomolsk-on-Amur, where Russian officials showed him Su-35 and Su-57 fighter "
         "production, fuelling talk of military technology transfer.")
WORKERS = ("Thousands of North Korean workers sent to Russian construction sites under new "
           "labour deal",
           "Pyongyang has dispatched thousands of labourers to building projects in Vladivostok "
           "and Moscow, South Korean intelligence said, in a deal that breaches UN sanctions on "
           "North Korean overseas workers.")


def rss(items: list[tuple[tuple[str, str], str, datetime]]) -> bytes:
    body = "".join(
        f"<item><title>{escape(t)}</title><link>{escape(u)}</link><guid>{escape(u)}</guid>"
        f"<description>{escape(s)}</description><pubDate>{format_datetime(p)}</pubDate></item>"
        for (t, s), u, p in items)
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>feed</title><link>https://example.org/</link>{body}</channel></rss>").encode()


SECTIONS = """
[schedule]
jitter_seconds = 0
drain_interval_seconds = 1
[fetch]
unconditional_probability = 0
min_host_gap_seconds = 0
"""


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSlack]:
    with FakeSlack(app_token=APP_TOKEN) as fake:
        monkeypatch.setenv("SLACK_BOT_TOKEN", DEFAULT_TOKEN)
        monkeypatch.setenv("SLACK_CHANNEL", "C0ALERTS1")
        monkeypatch.setenv("SLACK_API_URL", fake.base_url)
        monkeypatch.setenv("SLACK_APP_TOKEN", APP_TOKEN)
        yield fake


@pytest.fixture
def socket(slack: FakeSlack) -> Iterator[FakeSocketMode]:
    with FakeSocketMode(slack) as fake:
        yield fake


async def until(check: Any, timeout: float = 60.0, what: str = "condition") -> Any:
    """Poll ``check`` (sync) without blocking the daemon's loop."""
    for _ in range(int(timeout * 10)):
        value = check()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def feedback_text(message: FakeMessage) -> str:
    return " ".join(e.get("text", "") for b in message.blocks or []
                    if b.get("block_id") == "feedback" for e in b["elements"])


# --- the daemon, end to end ---------------------------------------------------------------
async def test_buttons_on_the_running_daemon(
    tmp_path: Path, slack: FakeSlack, socket: FakeSocketMode,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    t = NOW - timedelta(hours=1)
    with FeedServer() as server:
        feeds = {"Wire": server.add_file("/wire.xml", rss([
            (TRAIN, "https://wire.example/a/train", t)]))}
        config = write_config(tmp_path, feeds, SECTIONS)
        settings = load_settings(config)
        from monitor.app import run_forever

        stop = asyncio.Event()
        daemon = asyncio.create_task(run_forever(settings, stop))
        try:
            [parent] = await until(lambda: slack.top_level("C0ALERTS1"), what="the parent")
            # the parent carries the four buttons, shaped as Slack accepts them (the fake checks)
            [actions] = [b for b in parent.blocks or [] if b["type"] == "actions"]
            assert [e["action_id"] for e in actions["elements"]] == list(ACTION_IDS)
            value = json.loads(actions["elements"][0]["value"])
            article_id = value["article"]
            assert value["outlet"] == "Wire" and value["story"]
            await asyncio.to_thread(socket.wait_connected)

            # Alice: relevant. Acked within 3 s (in practice ms), stored with her id, shown.
            sent = await asyncio.to_thread(socket.press, parent, "label_relevant",
                                           user_id=ALICE, username="alice")
            ack = await asyncio.to_thread(socket.wait_ack, sent)
            assert ack.seconds < 3.0 and ack.body == {"envelope_id": sent}
            await until(lambda: parent.edits >= 1, 10, "the edit")
            assert f"marked relevant by <@{ALICE}> at " in feedback_text(parent)
            assert [b for b in parent.blocks or [] if b["type"] == "actions"], "buttons kept"

            # Bob relabels: the message shows the latest, the store keeps both.
            sent = await asyncio.to_thread(socket.press, parent, "label_not_relevant",
                                           user_id=BOB, username="bob")
            assert (await asyncio.to_thread(socket.wait_ack, sent)).seconds < 3.0
            await until(lambda: parent.edits >= 2, 10, "the second edit")
            shown = feedback_text(parent)
            assert f"marked not relevant by <@{BOB}>" in shown and ALICE not in shown

            # Presses we cannot use are acked, logged once each, and break nothing.
            bad = [
                socket.send_envelope(block_actions(parent, [{"action_id": "delete_everything",
                                                             "value": "{}"}], user_id=ALICE)),
                socket.send_envelope(block_actions(parent, [{"action_id": "mute_outlet"}],
                                                   user_id=ALICE)),
                socket.press(parent, "label_relevant", user_id=ALICE,
                             value=json.dumps({"article": "no-such-article"})),
                socket.send_envelope({"type": "view_submission"}),
            ]
            for envelope in bad:
                assert (await asyncio.to_thread(socket.wait_ack, envelope)).seconds < 3.0
            await until(lambda: len(ignored(caplog)) >= 4, 10, "the ignored presses")
            lines = ignored(caplog)
            assert len(lines) == 4, lines
            assert any("unknown action_id 'delete_everything'" in x for x in lines)
            assert any("has no value" in x for x in lines)
            assert any("no stored article 'no-such-article'" in x for x in lines)
            assert parent.edits == 2

            # Slack rotates the connection: slack-sdk reconnects with a new URL.
            await asyncio.to_thread(socket.disconnect)
            await asyncio.to_thread(socket.wait_connected, 2)
            sent = await asyncio.to_thread(socket.press, parent, "mute_outlet", user_id=ALICE)
            await asyncio.to_thread(socket.wait_ack, sent)
            await until(lambda: "muted by" in feedback_text(parent), 10, "the mute line")
            sent = await asyncio.to_thread(socket.press, parent, "mute_story", user_id=BOB)
            await asyncio.to_thread(socket.wait_ack, sent)
            await until(lambda: "story muted by" in feedback_text(parent), 10, "story mute")
            shown = feedback_text(parent)
            assert "outlet *Wire* muted by <@U0ALICE01> until" in shown
            assert f"story muted by <@{BOB}> until" in shown
            assert f"marked not relevant by <@{BOB}>" in shown  # the label line stays
        finally:
            stop.set()
            await asyncio.wait_for(daemon, 60)
        assert all(a.seconds < 3.0 for a in socket.acks.values())

        store = SqliteStore(tmp_path / "state.db")
        try:
            history = store.label_history(article_id)
            assert [(e.label, e.user_id, e.source) for e in history] == [
                (1, ALICE, "slack"), (0, BOB, "slack")]
            assert [label for a, label in store.labelled_articles() if a.id == article_id] == [0]
            mutes = store.active_mutes(datetime.now(UTC))
            assert {(m.kind, m.value, m.created_by) for m in mutes} == {
                ("outlet", "Wire", ALICE), ("story", value["story"], BOB)}
            outlet = next(m for m in mutes if m.kind == "outlet")
            assert timedelta(hours=23, minutes=59) < outlet.expires_at - outlet.created_at \
                <= timedelta(hours=24)
        finally:
            store.close()

        # The mutes apply on the next poll: Wire's new story is stored and scored but not
        # posted; another outlet's copy of the muted story is not threaded; others still go.
        feeds["Wire"] = server.add_file("/wire.xml", rss([
            (TRAIN, "https://wire.example/a/train", t),
            (PLANT, "https://wire.example/a/plant", t + timedelta(minutes=30))]))
        feeds["Herald"] = server.add_file("/herald.xml", rss([
            (TRAIN, "https://herald.example/kim-train", t + timedelta(minutes=10))]))
        feeds["Courier"] = server.add_file("/courier.xml", rss([
            (WORKERS, "https://courier.example/workers", t + timedelta(minutes=20))]))
        config = write_config(tmp_path, feeds, SECTIONS)
        assert await asyncio.to_thread(main, ["once", "--config", str(config)]) == 0
    [_, courier] = slack.top_level("C0ALERTS1")  # only the outlet and story not muted
    assert "workers" in (courier.text or "")
    assert slack.replies_to(parent.ts) == []
    # the story grew (Herald's copy), so its parent was edited: the marks and buttons survive
    assert "Reported by 2 outlet" in json.dumps(parent.blocks)
    assert "story muted by" in feedback_text(parent) and "marked not relevant" in \
        feedback_text(parent)
    assert [b for b in parent.blocks or [] if b["type"] == "actions"]
    store = SqliteStore(tmp_path / "state.db")
    try:
        stored = {a.source: a for a in store.recent_articles(limit=10)}
        assert set(stored) == {"Wire", "Herald", "Courier"}
        plant = next(a for a in store.recent_articles(limit=10) if "Komsomolsk" in a.title)
        assert plant.match and plant.score is not None and plant.score > 0.5  # scored
        assert store.outbox_counts()["pending"] == 0
    finally:
        store.close()
    muted_lines = [r.getMessage() for r in caplog.records if "muted by" in r.getMessage()
                   and r.name == "monitor.pipeline"]
    assert any("outlet 'Wire' muted by U0ALICE01" in x for x in muted_lines), muted_lines
    assert any("its story muted by U0BOB0002" in x for x in muted_lines), muted_lines

    # no token ever reaches a log line (slack-sdk's DEBUG lines included)
    assert caplog.records
    everything = "\n".join(r.getMessage() for r in caplog.records)
    assert APP_TOKEN not in everything and DEFAULT_TOKEN not in everything
    assert "fakeAppLevelSecret" not in everything


def ignored(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "monitor.interact" and "ignored a press" in r.getMessage()]


async def test_a_refused_app_token_turns_the_buttons_off_not_the_daemon(
    tmp_path: Path, slack: FakeSlack, socket: FakeSocketMode,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    wrong = "xapp-1-A0FAKEAPP-999-wrongAppToken"
    monkeypatch.setenv("SLACK_APP_TOKEN", wrong)
    with FeedServer() as server:
        feeds = {"Wire": server.add_file("/wire.xml", rss([
            (TRAIN, "https://wire.example/a/train", NOW - timedelta(hours=1))]))}
        settings = load_settings(write_config(tmp_path, feeds, SECTIONS))
        from monitor.app import run_forever

        stop = asyncio.Event()
        daemon = asyncio.create_task(run_forever(settings, stop))
        try:
            await until(lambda: slack.top_level("C0ALERTS1"), what="the alert")
        finally:
            stop.set()
            await asyncio.wait_for(daemon, 60)
    assert socket.connections == 0
    [line] = [r.getMessage() for r in caplog.records if "Slack buttons are off" in r.getMessage()]
    assert "invalid_auth" in line and "connections:write" in line
    assert wrong not in caplog.text


# --- expiry and the mutes command -----------------------------------------------------------
def test_an_expired_mute_no_longer_applies_and_mutes_list_remove(
    tmp_path: Path, slack: FakeSlack, capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "monitor.toml"
    store = SqliteStore(tmp_path / "state.db")
    store.migrate()
    past = datetime.now(UTC) - timedelta(days=2)
    expired = store.add_mute("outlet", "Wire", created_by=ALICE, at=past,
                             expires_at=past + timedelta(hours=24))
    lifted = store.add_mute("outlet", "Wire", created_by=BOB, at=datetime.now(UTC),
                            expires_at=datetime.now(UTC) + timedelta(hours=24))
    active = store.add_mute("story", "s-elsewhere", created_by=BOB, at=datetime.now(UTC),
                            expires_at=datetime.now(UTC) + timedelta(hours=72))
    store.close()
    with FeedServer() as server:
        feeds = {"Wire": server.add_file("/wire.xml", rss([
            (WORKERS, "https://wire.example/workers", NOW - timedelta(hours=1))]))}
        config = write_config(tmp_path, feeds, SECTIONS)
        assert main(["mutes", "remove", str(lifted.id), "--config", str(config)]) == 0
        assert f"mute {lifted.id} removed" in capsys.readouterr().out
        assert main(["mutes", "remove", str(lifted.id), "--config", str(config)]) == 1
        assert main(["mutes", "remove", "999", "--config", str(config)]) == 1
        capsys.readouterr()
        assert main(["once", "--config", str(config)]) == 0
    [posted] = slack.top_level("C0ALERTS1")  # the expired and the lifted mute do not apply
    assert "workers" in (posted.text or "")
    assert main(["mutes", "list", "--config", str(config)]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = {int(line.split()[0]): line.split() for line in out[1:]}
    assert rows[expired.id][1:4] == ["outlet", "expired", ALICE]
    assert rows[lifted.id][1:4] == ["outlet", "removed", BOB]
    assert rows[active.id][1:4] == ["story", "active", BOB] and rows[active.id][-1] == "s-elsewhere"
    assert main(["mutes", "--config", str(config)]) == 0  # list is the default


def test_label_command_keeps_working_with_the_os_user(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, {})
    store = SqliteStore(tmp_path / "state.db")
    store.migrate()
    store.record_article(article("a1"), verdict("a1"), None)
    store.close()
    assert main(["label", "a1", "relevant", "--config", str(config)]) == 0
    assert main(["label", "a1", "irrelevant", "--config", str(config)]) == 0
    store = SqliteStore(tmp_path / "state.db")
    try:
        history = store.label_history("a1")
        assert [(e.label, e.source) for e in history] == [(1, "cli"), (0, "cli")]
        assert all(e.user_id for e in history)  # the OS user
        assert [(a.id, label) for a, label in store.labelled_articles()] == [("a1", 0)]
    finally:
        store.close()


# --- the store --------------------------------------------------------------------------------
def article(article_id: str, source: str = "Wire") -> Article:
    return Article(article_id, source, source, f"https://{source.lower()}.example/{article_id}",
                   f"Title {article_id}", "summary", NOW, NOW)


def verdict(article_id: str) -> Verdict:
    return Verdict(article_id, 0.9, True, 0.5, "terms", "m1", "arms/military")


def test_label_history_and_latest_label(store: SqliteStore) -> None:
    store.record_article(article("a1"), verdict("a1"), None)
    store.add_label("a1", 1, source="slack", at=NOW, user_id=ALICE)
    store.add_label("a1", 0, source="slack", at=NOW + timedelta(minutes=1), user_id=BOB)
    store.add_label("a1", 1, source="slack", at=NOW + timedelta(minutes=2), user_id=ALICE)
    assert [(e.label, e.user_id) for e in store.label_history("a1")] == [
        (1, ALICE), (0, BOB), (1, ALICE)]
    assert [label for _, label in store.labelled_articles()] == [1]
    marks = store.feedback_marks("a1", story_id=None, outlet="Wire", now=NOW)
    assert [(m.action, m.user_id) for m in marks] == [("relevant", ALICE)]
    with pytest.raises(StoreError):
        store.add_label("missing", 1, source="slack", at=NOW, user_id=ALICE)
    assert store.label_history("missing") == []


def test_mutes_expire_and_can_be_lifted(store: SqliteStore) -> None:
    m = store.add_mute("outlet", "Wire", created_by=ALICE, at=NOW,
                       expires_at=NOW + timedelta(hours=24))
    assert [x.id for x in store.active_mutes(NOW + timedelta(hours=23))] == [m.id]
    assert store.active_mutes(NOW + timedelta(hours=24)) == []
    assert m.status(NOW + timedelta(hours=25)) == "expired"
    assert store.remove_mute(m.id, at=NOW) and not store.remove_mute(m.id, at=NOW)
    assert store.active_mutes(NOW) == []
    [listed] = store.list_mutes()
    assert listed.status(NOW) == "removed" and listed.created_by == ALICE
    for kind, value, until in [("feed", "x", NOW + timedelta(hours=1)),
                               ("outlet", "", NOW + timedelta(hours=1)),
                               ("story", "s-1", NOW)]:
        with pytest.raises(StoreError):
            store.add_mute(kind, value, created_by=ALICE, at=NOW, expires_at=until)


def test_migration_6_keeps_existing_labels_as_history(tmp_path: Path) -> None:
    from monitor.store import sqlite as sqlite_module

    path = tmp_path / "old.db"
    old = SqliteStore(path)
    migrations = sqlite_module.MIGRATIONS
    try:
        sqlite_module.MIGRATIONS = migrations[:5]
        old.migrate()
        old.record_article(article("a1"), verdict("a1"), None)
        old._conn.execute("INSERT INTO labels (article_id, label, source, created_at) "
                          "VALUES ('a1', 1, 'cli', ?)", (NOW.isoformat(),))
    finally:
        sqlite_module.MIGRATIONS = migrations
        old.close()
    store = SqliteStore(path)
    try:
        store.migrate()
        [event] = store.label_history("a1")
        assert (event.label, event.source, event.user_id) == (1, "cli", None)
    finally:
        store.close()


# --- parsing and applying a press, without the network ---------------------------------------
def posted(alert: Alert) -> FakeMessage:
    message = build_slack_message(alert, buttons=True)
    return FakeMessage("C0ALERTS1", "1700000000.000100", message.text, message.blocks, None)


def make_alert(article_id: str = "a1", source: str = "Wire") -> Alert:
    return Alert("al1", article_id, "slack:C0ALERTS1", "Title", "https://w.example/1", source,
                 NOW, 0.9, "terms", "snippet", story_id="s-a1")


def press_payload(action_id: str, **action: Any) -> dict[str, Any]:
    message = posted(make_alert())
    [block] = [b for b in message.blocks or [] if b["type"] == "actions"]
    button = next(e for e in block["elements"] if e["action_id"] == action_id)
    return block_actions(message, [{"action_id": action_id, "block_id": block["block_id"],
                                    "value": button["value"], **action}], user_id=ALICE)


def test_a_press_is_parsed_into_a_typed_command() -> None:
    press = parse_block_actions(press_payload("mute_story"))
    assert (press.action, press.user_id, press.article_id, press.story_id, press.alert_id) == (
        "mute_story", ALICE, "a1", "s-a1", "al1")
    assert (press.channel_id, press.message_ts) == ("C0ALERTS1", "1700000000.000100")
    assert press.blocks and press.text


@pytest.mark.parametrize(("change", "reason"), [
    (lambda p: p.update(type="view_submission"), "not a block_actions payload"),
    (lambda p: p["actions"][0].update(action_id="drop_table"), "unknown action_id"),
    (lambda p: p["actions"][0].pop("value"), "has no value"),
    (lambda p: p["actions"][0].update(value="not json"), "not JSON"),
    (lambda p: p["actions"][0].update(value='{"alert": "x"}'), "article id"),
    (lambda p: p["actions"][0].update(value="[1, 2]"), "not an object"),
    (lambda p: p.update(user={"id": "<!channel>"}), "user.id"),
    (lambda p: p.pop("user"), "user"),
    (lambda p: p.update(actions=[]), "no actions"),
    (lambda p: (p.pop("container"), p.pop("channel")), "channel id"),
    (lambda p: (p["container"].pop("message_ts"), p["message"].pop("ts")), "message ts"),
])
def test_malformed_presses_are_refused_with_a_reason(change: Any, reason: str) -> None:
    payload = press_payload("label_relevant")
    change(payload)
    with pytest.raises(InteractionError, match=reason):
        parse_block_actions(payload)


def test_apply_uses_the_stored_outlet_not_the_buttons(store: SqliteStore) -> None:
    store.record_article(article("a1", source="Real Outlet"), verdict("a1"), None)
    payload = press_payload("mute_outlet")
    payload["actions"][0]["value"] = json.dumps({"article": "a1", "outlet": "Forged"})
    marks = apply_press(store, parse_block_actions(payload), now=NOW)
    [mute] = store.active_mutes(NOW)
    assert (mute.kind, mute.value) == ("outlet", "Real Outlet")
    assert [(m.action, m.subject) for m in marks] == [("mute_outlet", "Real Outlet")]
    story_press = {**payload, "actions": [{**payload["actions"][0], "action_id": "mute_story"}]}
    with pytest.raises(InteractionError, match="names no story"):
        apply_press(store, parse_block_actions(story_press), now=NOW)


# --- the message ---------------------------------------------------------------------------
def test_buttons_only_on_parents_and_only_when_asked() -> None:
    alert = make_alert()
    assert not [b for b in build_slack_message(alert).blocks if b["type"] == "actions"]
    [actions] = [b for b in build_slack_message(alert, buttons=True).blocks
                 if b["type"] == "actions"]
    for button in actions["elements"]:
        assert len(button["text"]["text"]) <= 75 and len(button["value"]) <= 2000
    long = Alert("al" * 500, "ar" * 500, "slack:C0ALERTS1", "T", "https://w.example/1",
                 "O" * 1000, NOW, 0.9, "r", "s", story_id="s" * 500)
    [actions] = [b for b in build_slack_message(long, buttons=True).blocks
                 if b["type"] == "actions"]
    assert all(len(b["value"]) <= 2000 for b in actions["elements"])
    reply = build_slack_reply(Alert("r1", "a2", "slack:C0ALERTS1", "T", "https://h.example/2",
                                    "Herald", NOW, 0.9, "r", "s", kind="reply"))
    assert not [b for b in reply.blocks if b["type"] == "actions"]


async def test_the_fake_accepts_our_buttons_and_refuses_bad_ones(slack: FakeSlack) -> None:
    deliverer = SlackDeliverer(DEFAULT_TOKEN, "C0ALERTS1", base_url=slack.base_url,
                               buttons=True)
    await deliverer.deliver(make_alert())
    [message] = slack.posted()
    assert any(b["type"] == "actions" for b in message.blocks or [])
    client = WebClient(token=DEFAULT_TOKEN, base_url=slack.base_url, retry_handlers=[])
    good = {"type": "button", "action_id": "a", "text": {"type": "plain_text", "text": "A"}}
    for bad in ([{**good, "text": {"type": "plain_text", "text": "x" * 76}}],
                [good, good],  # duplicate action_id
                [{**good, "value": "v" * 2001}],
                [{**good, "style": "loud"}],
                [{**good, "text": {"type": "mrkdwn", "text": "A"}}],
                []):
        with pytest.raises(SlackApiError, match="invalid_blocks"):
            await asyncio.to_thread(client.chat_postMessage, channel="C0ALERTS1", text="t",
                                    blocks=[{"type": "actions", "elements": bad}])
    # an app token cannot post, a bot token cannot open a socket
    with pytest.raises(SlackApiError, match="not_allowed_token_type"):
        await asyncio.to_thread(WebClient(token=APP_TOKEN, base_url=slack.base_url)
                                .chat_postMessage, channel="C0ALERTS1", text="t")
    with pytest.raises(SlackApiError, match="not_allowed_token_type"):
        await asyncio.to_thread(client.apps_connections_open, app_token=DEFAULT_TOKEN)


# --- settings ------------------------------------------------------------------------------
def test_app_token_settings(tmp_path: Path) -> None:
    config = write_config(tmp_path, {})
    env = {"SLACK_BOT_TOKEN": DEFAULT_TOKEN, "SLACK_CHANNEL": "C0ALERTS1"}
    settings = load_settings(config, env={**env, "SLACK_APP_TOKEN": APP_TOKEN})
    assert settings.slack.app_token is not None
    assert APP_TOKEN not in json.dumps(settings.redacted())
    for value, words in [("xoxb-1-2-pastedBotSECRET", "not an app-level token"),
                         ("xapp-bad token SECRET", "not an app-level token")]:
        with pytest.raises(SettingsError, match=words) as info:
            load_settings(config, env={**env, "SLACK_APP_TOKEN": value})
        assert "SECRET" not in str(info.value)
    with pytest.raises(SettingsError, match="SLACK_BOT_TOKEN is not"):
        load_settings(config, env={"SLACK_APP_TOKEN": APP_TOKEN})
    in_file = write_config(tmp_path, {}, f'[slack]\napp_token = "{APP_TOKEN}"\n')
    with pytest.raises(SettingsError, match="SLACK_APP_TOKEN") as info:
        load_settings(in_file, env=env)
    assert "fakeAppLevelSecret" not in str(info.value)
