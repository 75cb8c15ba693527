"""Turning an alert into a Slack message or a console block, safely.

Everything in an alert that came from a feed (title, outlet, snippet, URL, and
even the reason, which may quote feed keywords) is hostile input: a headline
such as ``<!channel>`` must not ping a whole channel, ``<https://evil|click>``
must not become a disguised link, and ``\\x1b]...`` must not drive the
analyst's terminal. So every piece of feed text goes through exactly one of
the cleaners below before it is placed into the output, and every length is
cut to Slack's documented limits *after* escaping (escaping makes text longer,
and a cut through ``&amp;`` would leave a broken entity).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from classifiers.text import trim_words
from monitor.language import language_tag, script_language
from monitor.models import Alert, FeedbackMark, StoryEvidence, StoryFacts

__all__ = [
    "ACTION_IDS",
    "FEEDBACK_BLOCK_ID",
    "METADATA_EVENT_TYPE",
    "SlackMessage",
    "build_slack_message",
    "build_slack_reply",
    "clean_text",
    "format_console",
    "format_console_reply",
    "language_label",
    "safe_link_url",
    "shorten_words",
    "slack_escape",
    "with_feedback",
]

METADATA_EVENT_TYPE = "news_monitor_alert"
"""The Slack message-metadata event type that marks our posts (the crash lookup matches it)."""

# Slack's documented limits (Block Kit reference).
HEADER_MAX = 150
SECTION_TEXT_MAX = 3000
FIELD_TEXT_MAX = 2000
FALLBACK_TEXT_MAX = 3000  # Slack truncates at 40,000; notifications show far less
SNIPPET_MAX = 300
WHY_MAX = 200  # the quoted clause: one or two lines
TITLE_MAX = 250
URL_MAX = 2000  # beyond this a link is almost certainly junk; show the title without it

# C0 and C1 controls (ESC, BEL, CSI ...), DEL, and the Unicode bidi controls that
# can make text read differently from what it is ("trojan source").
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# Characters that act as line breaks; in one-line fields they become spaces.
_BREAKS = re.compile("[\t\n\v\f\r\x1c-\x1e\x85\u2028\u2029]+")
_SPACES = re.compile(r"\s+")
_PLAIN_UNSAFE = re.compile("[<>&]")


@dataclass(frozen=True, slots=True)
class SlackMessage:
    """What chat.postMessage needs: fallback text, Block Kit blocks, and metadata."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


def slack_escape(text: str) -> str:
    """Escape the three characters Slack treats as markup: ``&``, ``<``, ``>``.

    Slack decodes exactly these entities and nothing else, so ``&`` goes first
    (otherwise the ``&`` of ``&lt;`` would be escaped again) and no other HTML
    entities are produced. Literal ``&amp;`` in a feed therefore becomes
    ``&amp;amp;`` and is shown to the analyst as it was written.
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clean_text(text: str | None) -> str:
    """One line of plain text: control characters removed, whitespace collapsed."""
    if not text:
        return ""
    text = _BREAKS.sub(" ", text)
    text = _CONTROLS.sub("", text)
    return _SPACES.sub(" ", text).strip()


def shorten(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters, marking the cut with an ellipsis."""
    if len(text) <= limit:
        return text
    if limit <= 1:
        return "…"[:limit]
    return text[: limit - 1].rstrip() + "…"


def shorten_words(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters on a word boundary, with an ellipsis.

    The classifier's own rule (:func:`classifiers.text.trim_words`), so a quote in
    an alert is cut the same way as the model's ``why`` clause.
    """
    return trim_words(text, limit)


def language_label(alert: Alert) -> str:
    """The item's language tag ("KO"): recorded with the alert, else read from its script."""
    return language_tag(alert.lang or script_language(f"{alert.title} {alert.snippet}"))


def _outlet(alert: Alert) -> str:
    """The outlet with the language tag next to it, as plain (unescaped) text."""
    source = clean_text(alert.source) or "unknown outlet"
    tag = language_label(alert)
    return f"{source} · {tag}" if tag else source


def _quote(why: str | None) -> str:
    """A why clause as plain text in quotation marks ("" when there is none)."""
    text = shorten_words(clean_text(why), WHY_MAX)
    return f"“{text}”" if text else ""


def _same_text(a: str | None, b: str | None) -> bool:
    """Whether two texts say the same (the quoted clause is the headline on screen)."""
    def norm(value: str | None) -> str:
        return clean_text(value).rstrip(" .!?…").casefold()
    return bool(norm(a)) and norm(a) == norm(b)


def safe_link_url(url: str | None) -> str | None:
    """The URL ready to sit inside Slack's ``<url|label>`` syntax, or ``None`` if unsafe.

    Only absolute http(s) URLs with a host are allowed (no ``javascript:``,
    ``data:``, ``file:`` or Slack's own ``<!…>``/``<@…>`` forms). The characters
    that would end or split the link (``<``, ``>``, ``|``) and whitespace are
    percent-encoded, which browsers treat as the same URL, and ``&`` is escaped
    as Slack requires so query strings survive.
    """
    if not url:
        return None
    cleaned = _CONTROLS.sub("", _BREAKS.sub("", url)).strip()
    if not cleaned or len(cleaned) > URL_MAX:
        return None
    try:
        parts = urlsplit(cleaned)
        host = parts.hostname
    except ValueError:  # e.g. a malformed IPv6 literal or port
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    encoded = (
        cleaned.replace("|", "%7C")
        .replace("<", "%3C")
        .replace(">", "%3E")
        .replace(" ", "%20")
        .replace('"', "%22")
    )
    encoded = encoded.replace("&", "&amp;")
    # Re-check the length after encoding: it must leave room for the label in a section.
    return encoded if len(encoded) <= URL_MAX else None


def _fit(raw: str, limit: int) -> str:
    """Escape ``raw`` and cut it so the *escaped* text is at most ``limit`` characters.

    Cutting before escaping guarantees no half entity (``&am``) ends up in the output.
    """
    escaped = slack_escape(raw)
    if len(escaped) <= limit:
        return escaped
    cut = min(len(raw), limit - 1)
    while cut > 0:
        candidate = slack_escape(raw[:cut].rstrip()) + "…"
        overshoot = len(candidate) - limit
        if overshoot <= 0:
            return candidate
        cut -= overshoot  # each raw character removed shortens the output by >= 1
    return "…"


def format_time(value: datetime) -> str:
    """UTC, minute precision, unambiguous for analysts in any time zone."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _event_label(alert: Alert, evidence: StoryEvidence | None = None) -> str:
    if evidence is not None and evidence.event_type:
        return clean_text(evidence.event_type)
    return clean_text(alert.event_type) or "unspecified"


def _story_evidence(story: StoryFacts | None) -> StoryEvidence | None:
    """The story's evidence when the parent speaks for several reports, else None."""
    if story is None or story.member_count <= 1:
        return None
    return story.evidence


def _why_line(alert: Alert, evidence: StoryEvidence | None) -> str:
    """The quoted clause as plain text: the story's strongest (with its outlet when
    another report's), else this report's unless it only repeats the headline."""
    if evidence is not None and evidence.why:
        quote = _quote(evidence.why)
        if evidence.why_source and (evidence.why_source != alert.source
                                    or not _same_text(evidence.why, alert.why)):
            return f"{quote} ({clean_text(evidence.why_source)}, strongest report)"
        if not _same_text(evidence.why, alert.title):
            return quote
    if _same_text(alert.why, alert.title):
        return ""
    return _quote(alert.why)


def _score_text(alert: Alert, evidence: StoryEvidence | None) -> tuple[str, str]:
    """(label, value) of the score field: the story's score once the story has grown."""
    if evidence is None:
        return "Score", f"{alert.score:.2f}"
    value = f"{evidence.score:.2f}"
    if f"{alert.score:.2f}" != value:
        value += f" (this report {alert.score:.2f})"
    return "Story score", value


def _mrkdwn(text: str) -> dict[str, Any]:
    # verbatim: no automatic linking of bare URLs, #channels or @mentions in feed text;
    # our own explicit <url|label> link still works.
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _headline(alert: Alert) -> str:
    """The title as a link when the URL is safe, else as plain escaped text."""
    title = shorten(clean_text(alert.title) or "(untitled)", TITLE_MAX)
    url = safe_link_url(alert.url)
    if url is None:
        return _fit(title, SECTION_TEXT_MAX - 40) + " _(link omitted: not an http(s) URL)_"
    label = _fit(title, SECTION_TEXT_MAX - len(url) - 3)
    return f"<{url}|{label}>"


ACTION_IDS = ("label_relevant", "label_not_relevant", "mute_outlet", "mute_story")
"""The analysts' buttons on a parent alert (handled by ``monitor.interact``)."""
BUTTON_TEXT = {
    "label_relevant": "Relevant",
    "label_not_relevant": "Not relevant",
    "mute_outlet": "Mute this outlet for 24 h",
    "mute_story": "Mute this story",
}
BUTTONS_BLOCK_ID = "feedback_buttons"
FEEDBACK_BLOCK_ID = "feedback"
"""The context block under a parent that says who labelled or muted it; replaced on
every press so the message shows the latest (the store keeps the history)."""
BUTTON_VALUE_MAX = 2000  # Block Kit: a button's value
BUTTON_TEXT_MAX = 75
_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")


def button_value(alert: Alert) -> str:
    """What every button carries back: which alert, article, story and outlet.

    Compact JSON well under Slack's 2,000 characters; the outlet is only a hint (the
    handler reads the stored article's), so it is left out rather than cut if long.
    """
    value: dict[str, str] = {"alert": alert.id, "article": alert.article_id}
    if alert.story_id:
        value["story"] = alert.story_id
    if len(alert.source) <= 200:
        value["outlet"] = alert.source
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if len(text) > BUTTON_VALUE_MAX:
        text = json.dumps({"alert": alert.id[:500], "article": alert.article_id[:500]},
                          separators=(",", ":"))
    return text


def actions_block(alert: Alert) -> dict[str, Any]:
    value = button_value(alert)
    elements: list[dict[str, Any]] = []
    for action_id in ACTION_IDS:
        button: dict[str, Any] = {
            "type": "button",
            "action_id": action_id,
            "text": {"type": "plain_text", "text": BUTTON_TEXT[action_id][:BUTTON_TEXT_MAX],
                     "emoji": False},
            "value": value,
        }
        if action_id == "label_relevant":
            button["style"] = "primary"
        elements.append(button)
    return {"type": "actions", "block_id": BUTTONS_BLOCK_ID, "elements": elements}


def _who(user_id: str | None) -> str:
    """A Slack user as a mention (Slack shows the name); anything else as plain text."""
    if user_id and _SLACK_USER.match(user_id):
        return f"<@{user_id}>"
    return _fit(clean_text(user_id) or "someone", 100)


def describe_mark(mark: FeedbackMark) -> str:
    """One line of mrkdwn, e.g. "marked relevant by <@U123> at 14:05 UTC"."""
    who = _who(mark.user_id)
    at = mark.at if mark.at.tzinfo is not None else mark.at.replace(tzinfo=UTC)
    until = format_time(mark.until) if mark.until is not None else "further notice"
    if mark.action == "relevant":
        return f":white_check_mark: marked relevant by {who} at {at.astimezone(UTC):%H:%M} UTC"
    if mark.action == "not_relevant":
        return f":x: marked not relevant by {who} at {at.astimezone(UTC):%H:%M} UTC"
    if mark.action == "mute_outlet":
        outlet = _fit(clean_text(mark.subject) or "this outlet", 200)
        return f":mute: outlet *{outlet}* muted by {who} until {until}"
    if mark.action == "mute_story":
        return f":mute: story muted by {who} until {until} (no more replies)"
    return _fit(clean_text(mark.action), 200) + f" by {who}"


def feedback_block(marks: tuple[FeedbackMark, ...] | list[FeedbackMark]) -> dict[str, Any] | None:
    if not marks:
        return None
    return {"type": "context", "block_id": FEEDBACK_BLOCK_ID,
            "elements": [_mrkdwn(describe_mark(m)) for m in marks[:MAX_MARKS]]}


MAX_MARKS = 10  # elements in one context block


def with_feedback(blocks: list[dict[str, Any]],
                  marks: tuple[FeedbackMark, ...] | list[FeedbackMark]) -> list[dict[str, Any]]:
    """The posted message's blocks with the feedback line replaced (or added above the
    buttons); everything else, buttons included, kept as it is so an analyst can relabel."""
    kept = [b for b in blocks if not (isinstance(b, dict)
                                      and b.get("block_id") == FEEDBACK_BLOCK_ID)]
    block = feedback_block(marks)
    if block is None:
        return kept
    at = next((i for i, b in enumerate(kept)
               if isinstance(b, dict) and b.get("type") == "actions"), len(kept))
    return [*kept[:at], block, *kept[at:]]


def build_slack_message(alert: Alert, story: StoryFacts | None = None, *,
                        buttons: bool = False) -> SlackMessage:
    """Block Kit message for one alert, with our alert id in the message metadata.

    The metadata is what makes "none posted twice" possible: after a crash or an
    ambiguous timeout the drainer searches the channel history for this id
    before posting again. ``story`` (when the parent is edited as its story grows)
    adds how many outlets reported it and when the latest report came.
    ``buttons`` adds the analysts' actions (label, mute), for a destination whose
    presses are handled; the story's marks (who labelled or muted it) are kept.
    """
    evidence = _story_evidence(story)
    event = _event_label(alert, evidence)
    source = _outlet(alert)
    score_label, score_value = _score_text(alert, evidence)
    why = _why_line(alert, evidence)
    reason = clean_text(alert.reason)
    snippet = shorten(clean_text(alert.snippet), SNIPPET_MAX)
    title = clean_text(alert.title) or "(untitled)"

    # plain_text has no escaping rules of its own, so keep markup characters out of it.
    header = shorten(f"DPRK–Russia alert: {_PLAIN_UNSAFE.sub('', event)}", HEADER_MAX)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": False}},
        {"type": "section", "text": _mrkdwn(_headline(alert))},
        {
            "type": "section",
            "fields": [
                _mrkdwn("*Outlet*\n" + _fit(source, FIELD_TEXT_MAX - 12)),
                _mrkdwn("*Published*\n" + format_time(alert.published_at)),
                _mrkdwn(f"*{score_label}*\n{score_value}"),
                _mrkdwn("*Event type*\n" + _fit(event, FIELD_TEXT_MAX - 16)),
            ],
        },
    ]
    if why:
        blocks.append({"type": "section", "text": _mrkdwn("*Why:* " + _fit(why, 2900))})
    if reason:
        blocks.append({"type": "section",
                       "text": _mrkdwn("*Evidence:* " + _fit(reason, 2900))})
    if snippet:
        blocks.append({"type": "section", "text": _mrkdwn("> " + _fit(snippet, 2900))})
    if story is not None and story.member_count > 1:
        outlets = ", ".join(clean_text(s) for s in story.sources) or "several outlets"
        more = story.source_count - len(story.sources)
        more_text = f" and {more} more" if more > 0 else ""
        blocks.append({"type": "context", "elements": [_mrkdwn(_fit(
            f"*Reported by {story.source_count} outlet(s)* in {story.member_count} reports "
            f"(latest {format_time(story.last_seen_at)}): {outlets}{more_text}; "
            "see the thread", 2900))]})
    blocks.append(
        {
            "type": "context",
            "elements": [
                _mrkdwn(
                    "alert " + _fit(clean_text(alert.id), 200)
                    + " · article " + _fit(clean_text(alert.article_id), 200)
                )
            ],
        }
    )
    marks = feedback_block(story.marks) if story is not None else None
    if marks is not None:
        blocks.append(marks)
    if buttons:
        blocks.append(actions_block(alert))
    score = evidence.score if evidence is not None else alert.score
    fallback = _fit(f"DPRK–Russia alert ({score:.2f}): {title} — {source}", FALLBACK_TEXT_MAX)
    metadata = {
        "event_type": METADATA_EVENT_TYPE,
        "event_payload": {"alert_id": alert.id, "article_id": alert.article_id},
    }
    return SlackMessage(text=fallback, blocks=blocks, metadata=metadata)


MAX_FOLDED_LINES = 20
"""Reports listed in one thread reply; more are counted, not listed (Slack's text limits)."""


def _reported_line(alert: Alert) -> str:
    return f"*{_fit(_outlet(alert), 200)}*: {_headline(alert)} ({format_time(alert.published_at)})"


def build_slack_reply(alert: Alert) -> SlackMessage:
    """A thread reply naming the other outlets that reported the story.

    One drain's replies for a story come folded into one message; its metadata
    lists every alert id, so the duplicate look-up finds any of them.
    """
    reports = [alert, *alert.folded]
    if len(reports) == 1:
        body = "Also reported by " + _reported_line(alert)
    else:
        # Lines are already escaped mrkdwn (with links): drop whole lines to fit, never cut.
        body = f"Also reported by {len(reports)} more reports:"
        shown = 0
        for report in reports[:MAX_FOLDED_LINES]:
            line = "\n• " + _reported_line(report)
            if len(body) + len(line) > SECTION_TEXT_MAX - 100:
                break
            body += line
            shown += 1
        if shown < len(reports):
            body += f"\n…and {len(reports) - shown} more report(s)"
    blocks: list[dict[str, Any]] = [{"type": "section", "text": _mrkdwn(body)}]
    shown_sources = reports[:MAX_FOLDED_LINES]
    fallback = _fit("Also reported by " + ", ".join(_outlet(a) for a in shown_sources),
                    FALLBACK_TEXT_MAX)
    metadata = {
        "event_type": METADATA_EVENT_TYPE,
        "event_payload": {"alert_id": alert.id, "article_id": alert.article_id,
                          "alert_ids": list(alert.ids)},
    }
    return SlackMessage(text=fallback, blocks=blocks, metadata=metadata)


def format_console_reply(alert: Alert) -> str:
    """"↳ also reported by" lines under a story's alert printed earlier."""
    lines = []
    for report in (alert, *alert.folded):
        url = safe_link_url(report.url)
        link = url.replace("&amp;", "&") if url else "(link omitted)"
        lines.append(
            f"  ↳ also reported by {_outlet(report)}: "
            f"{shorten(clean_text(report.title), TITLE_MAX) or '(untitled)'} — {link}"
        )
    return "\n".join(lines)


def format_console(alert: Alert) -> str:
    """A readable multi-line block for a terminal, with no way for feed text to emit escapes."""
    url = safe_link_url(alert.url)
    link = url.replace("&amp;", "&") if url else "(omitted: not an http(s) URL)"
    lines = [
        f"=== DPRK–Russia alert · score {alert.score:.2f} · {_event_label(alert)}",
        f"  Title:     {shorten(clean_text(alert.title), TITLE_MAX) or '(untitled)'}",
        f"  Outlet:    {_outlet(alert)}",
        f"  Published: {format_time(alert.published_at)}",
        f"  Link:      {link}",
    ]
    why = _why_line(alert, None)
    if why:
        lines.append(f"  Why:       {why}")
    reason = clean_text(alert.reason)
    if reason:
        lines.append(f"  Evidence:  {reason}")
    snippet = shorten(clean_text(alert.snippet), SNIPPET_MAX)
    if snippet:
        lines.append(f"  Snippet:   {snippet}")
    lines.append(f"  Alert:     {clean_text(alert.id)} (article {clean_text(alert.article_id)})")
    return "\n".join(lines)
