"""Alert formatting: hostile feed text cannot ping, inject links or drive a terminal.

Every test builds an alert from text an attacker could put in a feed and checks
the message that would go to Slack (or the console), including Slack's length
limits, which apply to the escaped text.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from monitor.alerts.format import (
    build_slack_message,
    build_slack_reply,
    format_console,
    format_console_reply,
    safe_link_url,
    slack_escape,
)
from monitor.models import Alert, StoryEvidence, StoryFacts

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
        "*Outlet*\nExample Wire · EN",
        "*Published*\n2025-06-01 12:00 UTC",
        "*Score*\n0.91",
        "*Event type*\narms/military",
    ]
    assert msg.blocks[3]["text"]["text"].startswith("*Evidence:* cooperation terms")
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
    assert "  Outlet:    Example Wire · EN" in lines
    assert "  Evidence:  cooperation terms: ammunition, delivery; both countries named" in lines
    assert "  Published: 2025-06-01 12:00 UTC" in lines
    assert "  Link:      https://news.example/world/2025/06/01/shells?ref=rss&lang=en" in lines
    assert any(line.startswith("  Alert:     al-001") for line in lines)


# --- language and the quoted "why" clause (issue 12) ------------------------------------
KO_TITLE = "북한, 러시아에 포탄 수백만 발 제공"
RU_TITLE = "КНДР и Россия подписали договор о партнёрстве"


@pytest.mark.parametrize(
    ("changes", "tag"),
    [
        ({}, "EN"),
        ({"title": KO_TITLE, "snippet": "국정원은 ICBM 관련 기술 이전 가능성도 제기했다."}, "KO"),
        ({"title": RU_TITLE, "snippet": "Договор ратифицирован Госдумой (TASS)."}, "RU"),
        ({"title": KO_TITLE, "lang": "ru"}, "RU"),  # a recorded language wins over the script
    ],
)
def test_every_alert_shows_its_language_next_to_the_outlet(changes: dict[str, Any],
                                                           tag: str) -> None:
    alert = make_alert(**changes)
    msg = build_slack_message(alert)
    assert msg.blocks[2]["fields"][0]["text"] == f"*Outlet*\nExample Wire · {tag}"
    assert msg.text.endswith(f"Example Wire · {tag}")
    assert f"  Outlet:    Example Wire · {tag}" in format_console(alert).splitlines()
    reply = replace(alert, kind="reply")
    assert f"*Example Wire · {tag}*:" in build_slack_reply(reply).blocks[0]["text"]["text"]
    assert f"also reported by Example Wire · {tag}:" in format_console_reply(reply)


def test_an_item_without_letters_gets_no_language_tag() -> None:
    msg = build_slack_message(make_alert(title="2025 — 12:00", snippet="", source="Wire"))
    assert msg.blocks[2]["fields"][0]["text"] == "*Outlet*\nWire"


WHY = ("Containers of North Korean artillery shells crossed into Russia by rail from Rajin, "
       "satellite images show.")


def test_the_why_clause_is_quoted_above_the_evidence() -> None:
    msg = build_slack_message(make_alert(why=WHY))
    kinds = [b["type"] for b in msg.blocks]
    assert kinds == ["header", "section", "section", "section", "section", "section", "context"]
    assert msg.blocks[3]["text"]["text"] == f"*Why:* “{WHY}”"
    assert msg.blocks[4]["text"]["text"].startswith("*Evidence:* cooperation terms")
    assert f"  Why:       “{WHY}”" in format_console(make_alert(why=WHY)).splitlines()


def test_a_why_clause_that_only_repeats_the_headline_is_left_out() -> None:
    alert = make_alert(why="North Korean shells reach Russian front, officials say.")
    assert not any(t.startswith("*Why:*") for t in all_texts(alert))
    assert "  Why:" not in format_console(alert)


def test_hostile_why_clause_is_escaped_and_cut_on_a_word_boundary() -> None:
    hostile = ("<!channel> North Korea sends <https://evil.example|troops> & shells to Russia "
               + "again and again " * 30 + "\x1b[31m")
    msg = build_slack_message(make_alert(why=hostile))
    [why] = [t for t in all_texts(make_alert(why=hostile)) if t.startswith("*Why:*")]
    assert "<!channel>" not in why and "&lt;!channel&gt;" in why
    assert "<https://evil" not in why and "\x1b" not in why
    assert not ENTITY.search(why)
    quoted = why.removeprefix("*Why:* “").removesuffix("”")
    plain = quoted.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    assert len(plain) <= 200 and plain.endswith("…")
    assert plain[:-1] == plain[:-1].rstrip() and hostile.startswith(plain[:-1])
    assert hostile[len(plain) - 1] == " ", "cut between words"
    assert msg.metadata["event_payload"] == {"alert_id": "al-001", "article_id": "art-001"}


def story(members: int, evidence: StoryEvidence | None) -> StoryFacts:
    return StoryFacts(story_id="s-1", source_count=members, member_count=members,
                      first_seen_at=T0, last_seen_at=T0 + timedelta(hours=1),
                      sources=("Example Wire", "Herald"), evidence=evidence)


def test_a_grown_story_parent_shows_the_story_score_type_and_strongest_quote() -> None:
    parent = make_alert(score=0.71, event_type="diplomacy/summit",
                        why="Kim may visit Russia soon, Seoul says.")
    evidence = StoryEvidence(score=0.985, best_score=0.98, event_type="arms/military",
                             outlets=2, why=WHY, why_source="Herald")
    msg = build_slack_message(parent, story(2, evidence))
    assert msg.blocks[0]["text"]["text"] == "DPRK–Russia alert: arms/military"
    fields = [f["text"] for f in msg.blocks[2]["fields"]]
    assert fields[2] == "*Story score*\n0.98 (this report 0.71)"
    assert fields[3] == "*Event type*\narms/military"
    assert msg.blocks[3]["text"]["text"] == f"*Why:* “{WHY}” (Herald, strongest report)"
    assert msg.text.startswith("DPRK–Russia alert (0.98):")
    # A single report, or a story without stored verdicts, shows the report's own.
    for facts in (story(1, evidence), story(2, None)):
        single = build_slack_message(parent, facts)
        assert single.blocks[2]["fields"][2]["text"] == "*Score*\n0.71"
        assert single.blocks[3]["text"]["text"] == ("*Why:* “Kim may visit Russia soon, "
                                                    "Seoul says.”")
