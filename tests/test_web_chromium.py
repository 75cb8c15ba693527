"""The web view in a real headless Chromium, against the real daemon.

``python -m monitor run`` (a subprocess, as in production) polls a local feed server
(two outlets, one broken feed, one item whose title is markup) and alerts the fake
Slack; Chromium loads the pages from the daemon's HTTP address and dumps the DOM it
built, which is checked as a browser sees it: the hostile title is text (in the
page title and the body), and no ``<script>`` or ``<img>`` element came from feed
text. A screenshot of the stories page is taken every run (into the test's folder);
``MONITOR_UPDATE_SCREENSHOT=1`` also writes it to ``docs/web-view.png`` for the README.

Without Chromium the test is skipped, unless ``MONITOR_REQUIRE_CHROMIUM=1`` (set by
``.ci/run``, which installs the Debian ``chromium`` package), where it fails instead.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from monitor.store.sqlite import SqliteStore
from tests.support.fake_slack import DEFAULT_TOKEN, FakeSlack
from tests.support.feed_server import FeedServer
from tests.support.web import HOSTILE_TITLE, free_port, serve_feeds, web_config

REPO = Path(__file__).resolve().parent.parent
SCREENSHOT = REPO / "docs" / "web-view.png"


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    message = ("Chromium is not installed (Debian: apt-get install chromium chromium-driver); "
               "the web view's browser test needs it")
    if os.environ.get("MONITOR_REQUIRE_CHROMIUM") == "1":
        pytest.fail(message + " and MONITOR_REQUIRE_CHROMIUM=1 requires it")
    pytest.skip(message)


class Dom(HTMLParser):
    """The element names and visible text of a dumped DOM, and its <title>."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.title = ""
        self._in_title = False
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        else:
            self.text.append(data)

    @property
    def body_text(self) -> str:
        return " ".join(" ".join(self.text).split())


def run_chromium(binary: str, profile: Path, *args: str) -> str:
    done = subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[str]:
    """The daemon as ``python -m monitor run``; yields its base URL once it alerted."""
    with FeedServer() as server, FakeSlack() as slack:
        port = free_port()
        config = web_config(tmp_path, serve_feeds(server), port)
        env = {**os.environ, "SLACK_BOT_TOKEN": DEFAULT_TOKEN, "SLACK_CHANNEL": "C0ALERTS1",
               "SLACK_API_URL": slack.base_url, "MONITOR_LOG_LEVEL": "INFO"}
        env.pop("MONITOR_HTTP_LISTEN", None)
        log = (tmp_path / "daemon.log").open("w")
        process = subprocess.Popen([sys.executable, "-m", "monitor", "run", "--config",
                                    str(config)], cwd=REPO, env=env, stdout=log, stderr=log)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                assert process.poll() is None, (tmp_path / "daemon.log").read_text()[-3000:]
                try:
                    metrics = httpx.get(f"{base}/metrics", timeout=5).text
                    if (re.search(r'^monitor_outbox_alerts\{status="sent"\} ([4-9]|\d\d)',
                                  metrics, re.M)
                            and httpx.get(f"{base}/readyz", timeout=5).status_code == 200):
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, (tmp_path / "daemon.log").read_text()[-3000:]
                time.sleep(0.3)
            yield base
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            finally:
                if process.poll() is None:
                    process.kill()
                log.close()


def test_the_web_view_in_chromium(daemon: str, tmp_path: Path) -> None:
    binary = chromium()
    store = SqliteStore(tmp_path / "state.db")  # an analyst's label, as the buttons give
    try:
        [treaty] = store.search_articles("defence treaty")
        store.add_label(treaty.article_id, 1, source="slack", at=datetime.now(UTC),
                        user_id="U0ANALYST")
    finally:
        store.close()
    profile = tmp_path / "chromium-profile"

    stories = Dom(run_chromium(binary, profile, "--dump-dom", f"{daemon}/"))
    feeds = Dom(run_chromium(binary, profile, "--dump-dom", f"{daemon}/feeds"))
    query = urlencode({"q": HOSTILE_TITLE})
    search = Dom(run_chromium(binary, profile, "--dump-dom", f"{daemon}/search?{query}"))

    for page in (stories, feeds, search):
        tags = [tag for tag, _ in page.tags]
        assert "script" not in tags and "img" not in tags and "iframe" not in tags
        assert not any(name.startswith("on") for _, attrs in page.tags for name in attrs)
    # The stories page: every alerted story, with score, event type, reason and label.
    assert stories.title.startswith("Stories")
    text = stories.body_text
    assert HOSTILE_TITLE in text  # shown as the text it is
    assert "Putin and Kim sign mutual defence treaty in Pyongyang" in text
    assert "North Korea shipped artillery shells to Russia by rail, Seoul says" in text
    assert "Seoul: North Korean artillery shells reached Russia by rail via Tumen bridge" in text
    assert "Thailand" not in text  # no alert, so not on the board
    assert "relevant by U0ANALYST" in text and "slack:C0ALERTS1" in text and "sent" in text
    assert "reply" in text  # the second outlet's report joined the shells story
    links = [attrs.get("href") for tag, attrs in stories.tags if tag == "a"]
    assert "https://wire.example/world/putin-kim-treaty" in links
    # Feed health.
    assert "Broken" in feeds.body_text and "500" in feeds.body_text
    assert "Wire" in feeds.body_text and "Herald" in feeds.body_text
    # Search for the hostile title itself: the page title and the results carry it as text.
    assert HOSTILE_TITLE in search.title
    assert search.body_text.count(HOSTILE_TITLE) >= 2  # the heading and the hit

    shot = tmp_path / "web-view.png"
    run_chromium(binary, profile, f"--screenshot={shot}", "--window-size=1280,900",
                 "--hide-scrollbars", f"{daemon}/")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    if os.environ.get("MONITOR_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        SCREENSHOT.write_bytes(data)
