"""The daily digest: yesterday's stories by event type, and a weekly line, posted once a day.

Analysts who muted the channel, or were off shift, get one message that says what
happened: each story once, with how many outlets reported it and the lead headline,
grouped by event type; plus how the monitor did this week (alerts sent, labels given,
precision from those labels). It reads the store only; posting goes through the
same deliverer as the alerts, and the ``digests`` table (plus a look-up by the
digest id in the message metadata) makes each day's digest go out once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from monitor.alerts.format import (
    METADATA_EVENT_TYPE,
    SlackMessage,
    clean_text,
    format_time,
    safe_link_url,
    shorten,
    slack_escape,
)
from monitor.errors import DeliveryError
from monitor.store.base import DigestStory, Store, WeekStats

__all__ = ["Digest", "build_digest", "digest_console", "digest_message", "post_digest"]

log = logging.getLogger("monitor.digest")

MAX_PER_GROUP = 10
"""Stories listed per event type; the rest are counted (Slack's block limits)."""


@dataclass(frozen=True, slots=True)
class Digest:
    digest_id: str
    """One per local day: what makes the digest go out once."""
    since: datetime
    until: datetime
    groups: tuple[tuple[str, tuple[DigestStory, ...]], ...]
    week: WeekStats

    @property
    def story_count(self) -> int:
        return sum(len(stories) for _, stories in self.groups)


def build_digest(store: Store, *, now: datetime, timezone: str, hours: float = 24,
                 max_stories: int = 60) -> Digest:
    """The digest for the ``hours`` before ``now`` (the id is the day in ``timezone``)."""
    since = now - timedelta(hours=hours)
    stories = store.digest_stories(since=since, limit=max_stories)
    by_type: dict[str, list[DigestStory]] = defaultdict(list)
    for story in stories:
        by_type[story.event_type].append(story)
    groups = sorted(by_type.items(), key=lambda kv: (-sum(s.source_count for s in kv[1]),
                                                     kv[0]))
    local_day = now.astimezone(ZoneInfo(timezone)).date().isoformat()
    return Digest(
        digest_id=f"digest-{local_day}", since=since, until=now,
        groups=tuple((etype, tuple(items)) for etype, items in groups),
        week=store.week_stats(since=now - timedelta(days=7)),
    )


def _week_line(week: WeekStats) -> str:
    precision = ("no labels on alerts yet" if week.precision is None else
                 f"precision from labels {week.precision:.0%} "
                 f"({week.relevant_alerts} of {week.judged_alerts} labelled alerts relevant)")
    return (f"This week: {week.alerts_sent} alert message(s) sent, {week.labels_given} "
            f"label(s) given, {precision}.")


def _story_line(story: DigestStory) -> str:
    title = slack_escape(shorten(clean_text(story.title) or "(untitled)", 200))
    url = safe_link_url(story.url)
    headline = f"<{url}|{title}>" if url else title
    outlets = f"{story.source_count} outlet{'s' if story.source_count != 1 else ''}"
    return f"• {headline} — {slack_escape(clean_text(story.source))}, {outlets}"


def digest_message(digest: Digest) -> SlackMessage:
    """Block Kit digest; feed text is escaped like every alert's."""
    period = f"{format_time(digest.since)} – {format_time(digest.until)}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text",
                                    "text": "DPRK–Russia daily digest", "emoji": False}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": period}]},
    ]
    if not digest.groups:
        blocks.append({"type": "section", "text": {
            "type": "mrkdwn", "text": "No story was alerted in this period."}})
    for event_type, stories in digest.groups[:20]:
        lines = [_story_line(s) for s in stories[:MAX_PER_GROUP]]
        if len(stories) > MAX_PER_GROUP:
            lines.append(f"…and {len(stories) - MAX_PER_GROUP} more")
        text = f"*{slack_escape(clean_text(event_type))}* ({len(stories)})\n" + "\n".join(lines)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:2900],
                                                   "verbatim": True}})
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": _week_line(digest.week)}]})
    fallback = (f"DPRK–Russia daily digest: {digest.story_count} stories in "
                f"{len(digest.groups)} event types. {_week_line(digest.week)}")
    metadata = {"event_type": METADATA_EVENT_TYPE,
                "event_payload": {"alert_id": digest.digest_id, "kind": "digest"}}
    return SlackMessage(text=fallback, blocks=blocks[:50], metadata=metadata)


def digest_console(digest: Digest) -> str:
    lines = [f"=== DPRK–Russia daily digest · {format_time(digest.since)} – "
             f"{format_time(digest.until)}"]
    if not digest.groups:
        lines.append("  No story was alerted in this period.")
    for event_type, stories in digest.groups:
        lines.append(f"  {clean_text(event_type)} ({len(stories)})")
        for story in stories:
            url = safe_link_url(story.url)
            link = url.replace("&amp;", "&") if url else "(link omitted)"
            lines.append(f"    - {shorten(clean_text(story.title), 160)} — "
                         f"{clean_text(story.source)}, {story.source_count} outlet(s) {link}")
    lines.append(f"  {_week_line(digest.week)}")
    return "\n".join(lines)


async def post_digest(store: Store, deliverer: Any, digest: Digest, *, destination: str,
                      now: datetime) -> bool:
    """Post the digest unless this day's went out already; returns whether it was posted."""
    if await asyncio.to_thread(store.digest_posted, digest.digest_id) is not None:
        log.info("digest %s was already posted; not again", digest.digest_id)
        return False
    post = getattr(deliverer, "post_digest", None)
    if post is None:
        log.warning("destination %s cannot post a digest", destination)
        return False
    try:
        message_id = await post(digest)
    except DeliveryError as exc:
        log.error("digest %s not posted: %s; the next scheduled run tries again",
                  digest.digest_id, exc)
        return False
    await asyncio.to_thread(store.mark_digest_posted, digest.digest_id,
                            destination=destination, message_id=message_id, at=now)
    log.info("digest %s posted to %s (%d stories)", digest.digest_id, destination,
             digest.story_count)
    return True
