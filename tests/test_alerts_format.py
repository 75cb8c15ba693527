"""Alert formatting: hostile feed text cannot ping, inject links or drive a terminal.

Every test builds an alert from text an attacker could put in a feed and checks
the message that would go to Slack (or the console), including Slack's length
limits, which apply to the escaped text.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from monitor.alerts.format import (
    build_slack_message,
    format_console,
    safe_link_url,
    slack_escape,
)
from monitor.models import Alert

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
ENTITY = re.compile(r"&(?!amp;|lt;|gt;)")  # an & that does not start one of Slack's entities


def make_alert(**changes: Any) -> Alert:
    base: dict[str, Any] = dict(
        id="al-001",
        article_id="art-001",
        destination="slack:alerts",
        title="North Korean shells reach Russian front, officials say",
        url="https://news.example/world/2025/06/01/shells?ref=rss&lang=en",
        source="Example Wire",
        published_at=T0,
        score=0.912,
        reason="cooperation terms: ammunition, delivery; both countries named",
        snippet="Officials said rail cars loaded with artillery rounds crossed the border.",
        event_type="arms/military",
    )
    base.update(changes)
    return Alert(**base)


def text_objects(blocks: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every Block Kit text object in the message, wherever it sits."""
    for block in blocks:
        if isinstance(block.get("text"), dict):
            yield block["text"]
        yield from block.get("fields", [])
        yield from block.get("elements", [])


def headline(blocks: list[dict[str, Any]]) -> str:
    return blocks[1]["text"]["text"]


def all_texts(alert: Alert) -> list[str]:
    msg = build_slack_message(alert)
    return [t["text"] for t in text_objects(msg.blocks)] + [msg.text]


# --- slack_escape ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("<!channel>", "&lt;!channel&gt;"),
        ("<@U123>", "&lt;@U123&gt;"),
        ("<https://evil.example|click>", "&lt;https://evil.example|click&gt;"),
        ("&amp;", "&amp;amp;"),
        ("Tom & Jerry", "Tom &amp; Jerry"),
        ("a < b > c", "a &lt; b &gt; c"),
        ("&lt;", "&amp;lt;"),
        ("plain *bold* _it_ \"q\" 'q'", "plain *bold* _it_ \"q\" 'q'"),  # only &, <, > change
    ],
)
def test_slack_escape_is_exactly_slacks_three_entities(raw: str, escaped: str) -> None:
    assert slack_escape(raw) == escaped


# --- hostile titles ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "title",
    [
        "<!channel> Kim meets Putin",
        "<!here|here> urgent",
        "<@U123> see this",
        "<#C999|general> crosspost",
        "Breaking <https://evil.example|click here> now",
        "<!subteam^S123> please",
    ],
)
def test_hostile_title_cannot_ping_or_inject_links(title: str) -> None:
    alert = make_alert(title=title, source=title, reason=title, snippet=title, event_type=title)
    msg = build_slack_message(alert)
    head = headline(msg.blocks)
    # The only '<' in the headline opens our own link to the article.
    assert head.count("<") == 1 and head.startswith("<https://news.example/")
    assert head.count(">") == 1 and head.endswith(">")
    for text in all_texts(alert):
        if text == head:
            continue
        # Without an unescaped '<' nothing can open a mention or link ('> ' quotes our snippet).
        assert "<" not in text and ">" not in text.removeprefix("> "), text
    assert "&lt;" in head


def test_entities_in_feed_text_are_shown_literally() -> None:
    msg = build_slack_message(make_alert(title="Seoul &amp; Tokyo react", snippet="x &lt; y"))
    assert "|Seoul &amp;amp; Tokyo react>" in headline(msg.blocks)
    assert "x &amp;lt; y" in msg.blocks[4]["text"]["text"]
    assert "Seoul &amp;amp; Tokyo react" in msg.text


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JavaScript:alert(document.cookie)",
        " javascript:alert(1)",
        "java\tscript:alert(1)",
        "\x01javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "file:///etc/passwd",
        "vbscript:msgbox(1)",
        "//evil.example/scheme-relative",
        "https:///no-host",
        "http://[::1",  # malformed IPv6 literal
        "",
        "https://news.example/" + "a" * 3000,
    ],
)
def test_unsafe_urls_are_not_linked(url: str) -> None:
    assert safe_link_url(url) is None
    msg = build_slack_message(make_alert(url=url))
    head = headline(msg.blocks)
    assert "<" not in head and "|" not in head
    assert "link omitted" in head
    assert "(omitted" in format_console(make_alert(url=url))


def test_url_cannot_break_out_of_the_link_syntax() -> None:
    url = "https://news.example/a|b>c<d e?x=1&y=2"
    safe = safe_link_url(url)
    assert safe == "https://news.example/a%7Cb%3Ec%3Cd%20e?x=1&amp;y=2"
    head = headline(build_slack_message(make_alert(url=url, title="T")).blocks)
    assert head == f"<{safe}|T>"


def test_http_and_https_urls_keep_their_meaning() -> None:
    assert safe_link_url("HTTPS://News.Example/path?q=1") == "HTTPS://News.Example/path?q=1"
    assert safe_link_url("http://news.example:8080/x#frag") == "http://news.example:8080/x#frag"


def test_control_characters_and_bidi_overrides_are_removed() -> None:
    nasty = "\x1b[31mRED\x1b[0m\x07 title\u202eevil\x9b2J\x00 \r\nsecond line\x7f"
    alert = make_alert(title=nasty, source=nasty, snippet=nasty, reason=nasty)
    bad = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
    for text in all_texts(alert):
        assert not bad.search(text), repr(text)
    console = format_console(alert)
    assert not bad.search(console), repr(console)
    assert "[31mRED[0m title" in console  # visible but inert
    assert "second line" in console and "\r" not in console


# --- structure and limits ------------------------------------------------------------------
def test_block_structure_and_fields() -> None:
    msg = build_slack_message(make_alert())
    kinds = [b["type"] for b in msg.blocks]
    assert kinds == ["header", "section", "section", "section", "section", "context"]
    header = msg.blocks[0]["text"]
    assert header["type"] == "plain_text" and "arms/military" in header["text"]
    assert headline(msg.blocks) == (
        "<https://news.example/world/2025/06/01/shells?ref=rss&amp;lang=en|"
        "North Korean shells reach Russian front, officials say>"
    )
    fields = [f["text"] for f in msg.blocks[2]["fields"]]
    assert fields == [
        "*Outlet*\nExample Wire",
        "*Published*\n2025-06-01 12:00 UTC",
        "*Score*\n0.91",
        "*Event type*\narms/military",
    ]
    assert msg.blocks[3]["text"]["text"].startswith("*Why:* cooperation terms")
    assert msg.blocks[4]["text"]["text"].startswith("> Officials said")
    assert "al-001" in msg.blocks[5]["elements"][0]["text"]
    for obj in text_objects(msg.blocks[1:]):
        assert obj["type"] == "mrkdwn" and obj["verbatim"] is True
    assert msg.text.startswith("DPRK–Russia alert (0.91): North Korean shells")


def test_metadata_carries_the_alert_id() -> None:
    msg = build_slack_message(make_alert())
    assert msg.metadata == {
        "event_type": "news_monitor_alert",
        "event_payload": {"alert_id": "al-001", "article_id": "art-001"},
    }


def test_published_time_is_shown_in_utc() -> None:
    seoul = timezone(timedelta(hours=9))
    aware = build_slack_message(make_alert(published_at=datetime(2025, 6, 1, 21, 30, tzinfo=seoul)))
    assert aware.blocks[2]["fields"][1]["text"] == "*Published*\n2025-06-01 12:30 UTC"
    naive = build_slack_message(make_alert(published_at=datetime(2025, 6, 1, 12, 30)))
    assert naive.blocks[2]["fields"][1]["text"] == "*Published*\n2025-06-01 12:30 UTC"


def test_empty_optional_parts_are_left_out() -> None:
    msg = build_slack_message(make_alert(reason="", snippet="  ", event_type=None, title=""))
    assert [b["type"] for b in msg.blocks] == ["header", "section", "section", "context"]
    assert "unspecified" in msg.blocks[0]["text"]["text"]
    assert "(untitled)" in headline(msg.blocks)


@pytest.mark.parametrize("filler", ["&", "<", "a", "&<>x", "é"])
def test_slack_limits_hold_after_escaping(filler: str) -> None:
    huge = filler * 20_000
    msg = build_slack_message(
        make_alert(title=huge, source=huge, reason=huge, snippet=huge, event_type=huge)
    )
    assert len(msg.blocks[0]["text"]["text"]) <= 150
    for block in msg.blocks[1:]:
        if "text" in block:
            assert len(block["text"]["text"]) <= 3000
        for f in block.get("fields", []):
            assert len(f["text"]) <= 2000
    assert len(msg.text) <= 3000
    for text in all_texts(make_alert(title=huge, source=huge, reason=huge, snippet=huge)):
        assert not ENTITY.search(text), "an entity was cut in half"
    snippet = msg.blocks[4]["text"]["text"][2:]
    unescaped = snippet.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    assert len(unescaped) <= 300 and unescaped.endswith("…")


def test_limits_hold_for_random_mixtures() -> None:
    rng = random.Random(7)
    alphabet = "&<>|*_~`ab \n\x1b"
    for _ in range(200):
        raw = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 4000)))
        msg = build_slack_message(make_alert(title=raw, snippet=raw, reason=raw, source=raw))
        for obj in text_objects(msg.blocks):
            assert len(obj["text"]) <= 3000
            assert not ENTITY.search(obj["text"])
        assert headline(msg.blocks).count("<") == 1


# --- console -----------------------------------------------------------------------------
def test_console_format_is_readable() -> None:
    text = format_console(make_alert())
    lines = text.splitlines()
    assert lines[0] == "=== DPRK–Russia alert · score 0.91 · arms/military"
    assert "  Title:     North Korean shells reach Russian front, officials say" in lines
    assert "  Outlet:    Example Wire" in lines
    assert "  Published: 2025-06-01 12:00 UTC" in lines
    assert "  Link:      https://news.example/world/2025/06/01/shells?ref=rss&lang=en" in lines
    assert any(line.startswith("  Alert:     al-001") for line in lines)
