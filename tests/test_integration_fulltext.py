"""Full text end to end: a short feed item that names North Korea gets its article page
fetched (from a loopback host explicitly allowed), and the extracted story is stored and
classified; an item pointing at a disallowed address is left as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.cli import main
from monitor.store.sqlite import SqliteStore
from tests.support.configs import write_config
from tests.support.feed_server import FeedServer

REPO = Path(__file__).resolve().parent.parent
PAGE = REPO / "tests" / "fixtures" / "articles" / "rail_link_boilerplate.html"

FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Short Items</title><link>https://short.example/</link>
<item><title>North Korea transport talks continue</title><link>{page}</link>
<guid>ft-1</guid><description>Officials met in Pyongyang.</description></item>
<item><title>North Korea statement on transport</title><link>http://10.1.2.3/private</link>
<guid>ft-2</guid><description>A short item.</description></item>
</channel></rss>"""


@pytest.mark.parametrize("enabled", [True, False])
def test_full_text_enrichment(tmp_path: Path, enabled: bool,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("SLACK_BOT_TOKEN", "SLACK_CHANNEL", "SLACK_WEBHOOK_URL"):
        monkeypatch.delenv(key, raising=False)
    with FeedServer() as server:
        page_url = server.add_file("/story.html", PAGE.read_bytes(),
                                   content_type="text/html; charset=utf-8")
        feed_url = server.add_file("/short.xml", FEED.format(page=page_url).encode())
        config = write_config(tmp_path, {"Short": feed_url}, f"""
[fulltext]
enabled = {str(enabled).lower()}
allow_hosts = ["127.0.0.1"]
""")
        assert main(["once", "--config", str(config)]) == 0
        assert server.hits("/story.html") == (1 if enabled else 0)
    store = SqliteStore(tmp_path / "state.db")
    rows = store.recent_articles(limit=10)
    by_title = {row.title: row.article_id for row in rows}
    enriched, _ = store.get_article(by_title["North Korea transport talks continue"])
    blocked, _ = store.get_article(by_title["North Korea statement on transport"])
    store.close()
    assert ("Tumen River" in enriched.summary) is enabled
    assert "Refinance your yacht" not in enriched.summary  # boilerplate left out
    assert blocked.summary == "A short item."
