"""Routing: arms alerts also go to a second channel, each channel with one thread per story;
other alerts only to the main channel (the real CLI, local feed server, fake Slack)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from monitor.cli import main
from tests.support.fake_slack import DEFAULT_TOKEN, FakeSlack
from tests.support.feed_server import FeedServer
from tests.test_story_threads import (
    NOW,
    PLANT_SUMMARY,
    PLANT_TITLE,
    TRAIN_SUMMARY,
    TRAIN_TITLE,
    config,
    rss,
)

SHELLS_TITLE = ("North Korea ships millions of artillery shells to Russia by rail, "
                "satellite images show")
SHELLS_SUMMARY = ("Trains loaded with North Korean munitions crossed into Russia at Khasan, "
                  "as Moscow buys rockets and artillery ammunition from Pyongyang for its war.")


def test_arms_alerts_also_go_to_the_arms_channel_with_their_own_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    t = NOW - timedelta(hours=2)
    with FakeSlack() as slack, FeedServer() as server:
        for key, value in {"SLACK_BOT_TOKEN": DEFAULT_TOKEN, "SLACK_CHANNEL": "C0ALERTS1",
                           "SLACK_API_URL": slack.base_url}.items():
            monkeypatch.setenv(key, value)
        feeds = {
            "Wire": server.add_file("/w.xml", rss([
                (SHELLS_TITLE, SHELLS_SUMMARY, "https://wire.example/shells", t),
                (TRAIN_TITLE, TRAIN_SUMMARY, "https://wire.example/train", t)])),
            "Herald": server.add_file("/h.xml", rss([
                (SHELLS_TITLE, SHELLS_SUMMARY, "https://herald.example/shells",
                 t + timedelta(minutes=15)),
                (PLANT_TITLE, PLANT_SUMMARY, "https://herald.example/plant", t)])),
        }
        path = config(tmp_path, feeds)
        path.write_text(path.read_text().replace("[alerts]\n", "[alerts]\npace_burst = 50\n")
                        + """
[[alerts.routes]]
name = "arms"
channel = "C0OTHER22"
event_types = ["arms/military"]
keywords = ["shell", "munition", "missile"]
""")
        assert main(["once", "--config", str(path)]) == 0
        main_parents = slack.top_level("C0ALERTS1")
        arms_parents = slack.top_level("C0OTHER22")
    assert len(arms_parents) == 1 and "artillery shells" in (arms_parents[0].text or "")
    assert len(slack.replies_to(arms_parents[0].ts)) == 1  # the second outlet, in its thread
    texts = [m.text or "" for m in main_parents]
    assert any("artillery shells" in t for t in texts)  # the main channel gets everything
    assert len(main_parents) >= 2
    assert not any("Komsomolsk" in (m.text or "") for m in arms_parents)


def test_routes_without_slack_are_ignored_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key in ("SLACK_BOT_TOKEN", "SLACK_CHANNEL", "SLACK_WEBHOOK_URL"):
        monkeypatch.delenv(key, raising=False)
    path = config(tmp_path, {})
    path.write_text(path.read_text() + """
[[alerts.routes]]
name = "arms"
channel = "C0OTHER22"
""")
    assert main(["once", "--config", str(path)]) == 0
    assert "alerts.routes are ignored" in capsys.readouterr().err


def test_a_token_pasted_as_a_route_channel_is_refused(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = config(tmp_path, {})
    path.write_text(path.read_text() + """
[[alerts.routes]]
name = "arms"
channel = "xoxb-1111-2222-secretvalue"
""")
    assert main(["check-config", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "looks like a Slack token" in err and "secretvalue" not in err
