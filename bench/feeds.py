"""Deterministic synthetic news feeds for the poll benchmark.

The feeds look like ordinary wire-service RSS (20–100 items, a few hundred
characters of HTML summary each) so parse, normalise, store and classify costs
resemble real polling; a small share of items mention both countries so the
classifier and the alert path do real work too. Everything is generated from a
seed, so every run and every process sees byte-identical feeds.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from xml.sax.saxutils import escape

_PLACES = [
    "Pyongyang", "Moscow", "Vladivostok", "Seoul", "Tokyo", "Beijing", "Kyiv", "Berlin",
    "Nairobi", "Lima", "Jakarta", "Ottawa", "Cairo", "Hanoi", "Warsaw", "Manila",
]
_TOPICS = [
    "port upgrade", "grain harvest", "rail link", "budget vote", "energy deal", "flood relief",
    "trade talks", "naval drill", "satellite launch", "labour dispute", "bank merger",
    "election count", "heat wave", "vaccine rollout", "fishing rights", "border crossing",
]
_VERBS = [
    "announced", "delayed", "approved", "criticised", "expanded", "suspended", "reviewed",
    "confirmed", "questioned", "welcomed",
]
_FILLER = (
    "Officials said the plan would be reviewed again next month. "
    "Local reporters described long queues outside the ministry on Tuesday. "
    "Analysts cautioned that early figures are often revised. "
    "The statement gave no timetable for the next round of meetings. "
    "Opposition members asked for the full text to be published. "
)
_COOPERATION = [
    "North Korea and Russia signed a new agreement on {topic} in {place}, state media said.",
    "A Russian delegation arrived in Pyongyang to discuss {topic} with North Korean officials.",
    "Moscow and Pyongyang pledged closer military cooperation after talks on {topic}.",
]


def recent_epoch(now: datetime | None = None) -> datetime:
    """Two days before the current hour, so the newest items are recent enough to alert on."""
    now = now or datetime.now(UTC)
    return now.replace(minute=0, second=0, microsecond=0) - timedelta(days=2)


def _item(rng: random.Random, feed: int, serial: int, published: datetime) -> str:
    place, topic = rng.choice(_PLACES), rng.choice(_TOPICS)
    if rng.random() < 0.04:
        lead = rng.choice(_COOPERATION).format(topic=topic, place=place)
        title = f"{place}: North Korea and Russia discuss {topic}"
    else:
        lead = f"Authorities in {place} {rng.choice(_VERBS)} the {topic} on Monday."
        title = f"{place} {rng.choice(_VERBS)} {topic}"
    words = _FILLER.split(" ")
    body = " ".join(rng.sample(words, k=min(len(words), rng.randint(25, 60))))
    summary = f"<p>{escape(lead)}</p><p>{escape(body)}</p>"
    link = f"https://news.example.org/{feed}/{serial}-{topic.replace(' ', '-')}"
    return (
        "<item>"
        f"<title>{escape(title)}</title>"
        f"<link>{link}</link>"
        f'<guid isPermaLink="false">bench-{feed}-{serial}</guid>'
        f"<pubDate>{format_datetime(published, usegmt=True)}</pubDate>"
        f"<description>{escape(summary)}</description>"
        "</item>"
    )


def feed_xml(
    index: int, *, items_min: int, items_max: int, epoch: datetime, generation: int = 0
) -> bytes:
    """Feed number ``index``; each ``generation`` adds one newer item at the top."""
    rng = random.Random(index * 7919 + 17)
    count = rng.randint(items_min, items_max)
    start = epoch + timedelta(minutes=rng.randint(0, 600))
    serials = list(range(generation, generation + count))[::-1]  # newest first
    parts = []
    for serial in serials:
        item_rng = random.Random(index * 1_000_003 + serial)
        parts.append(_item(item_rng, index, serial, start + timedelta(minutes=17 * serial)))
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<rss version="2.0"><channel>'
        f"<title>Bench desk {index}</title>"
        f"<link>https://news.example.org/{index}/</link>"
        "<description>Synthetic feed for the poll benchmark</description>"
        + "".join(parts)
        + "</channel></rss>\n"
    ).encode()
