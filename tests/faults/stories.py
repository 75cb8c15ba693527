"""Made-up news items about North Korea–Russia cooperation, written for these tests.

Every headline is unambiguous (both countries named, a cooperation term between
them), so the shipped classifier matches each one; ``test_stories_match`` in the
suite checks that before any scenario relies on it. Numbering the stories keeps
every title, link and guid unique.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from xml.sax.saxutils import escape

_TEMPLATES: tuple[tuple[str, str], ...] = (
    ("North Korea ships another {n} containers of artillery shells to Russia by rail",
     "Satellite images show trains loaded with North Korean munitions crossing into Russia "
     "at Khasan, the {n}th such shipment this year, officials in Seoul say."),
    ("Russia and North Korea sign agreement on military technology cooperation, round {n}",
     "Moscow and Pyongyang signed a new protocol on defence cooperation under their "
     "strategic partnership treaty, according to state media (report {n})."),
    ("Kim Jong Un receives Russian defence minister in Pyongyang to discuss arms deals ({n})",
     "The Russian delegation and North Korean leader discussed expanding military ties, "
     "including missile technology and ammunition supplies, KCNA said (item {n})."),
    ("North Korean troops deployed to Russia's Kursk region, intelligence report {n} says",
     "South Korean intelligence said thousands more North Korean soldiers have joined "
     "Russian forces fighting near Kursk (briefing {n})."),
    ("Russia supplies North Korea with oil above UN cap in exchange for weapons, memo {n}",
     "Tankers delivered Russian refined petroleum to North Korea in breach of sanctions as "
     "payment for ballistic missiles, a UN panel document ({n}) says."),
    ("Putin and Kim exchange letters pledging deeper Russia-North Korea alliance ({n})",
     "Vladimir Putin thanked Kim Jong Un for North Korea's support and promised closer "
     "military and economic cooperation between Moscow and Pyongyang (letter {n})."),
    ("North Korean workers sent to Russian construction sites despite sanctions, case {n}",
     "Thousands of North Korean labourers arrived in Vladivostok to work for Russian firms, "
     "violating UN Security Council resolutions, researchers found (case {n})."),
    ("Russia helps North Korea with satellite launch technology, officials say ({n})",
     "Russian engineers are assisting Pyongyang's space programme in return for North "
     "Korean artillery and missiles used in Ukraine (account {n})."),
)


def story(n: int) -> tuple[str, str]:
    """The n-th story's (title, summary)."""
    title, summary = _TEMPLATES[n % len(_TEMPLATES)]
    return title.format(n=n), summary.format(n=n)


def story_url(prefix: str, n: int) -> str:
    return f"https://news.example/{prefix}/{n}"


def rss(prefix: str, numbers: list[int], *, published: dict[int, datetime]) -> bytes:
    """An RSS 2.0 document with the given stories, newest first as feeds usually are."""
    items = []
    for n in sorted(numbers, reverse=True):
        title, summary = story(n)
        items.append(
            f"<item><title>{escape(title)}</title><link>{story_url(prefix, n)}</link>"
            f"<guid isPermaLink=\"false\">{prefix}-{n}</guid>"
            f"<pubDate>{format_datetime(published[n], usegmt=True)}</pubDate>"
            f"<description>{escape(summary)}</description></item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>{prefix} desk</title><link>https://news.example/{prefix}</link>"
        "<description>test feed</description>" + "".join(items) + "</channel></rss>"
    ).encode()


def spaced(count: int, *, end: datetime | None = None, step: timedelta = timedelta(minutes=1),
           start_n: int = 0) -> dict[int, datetime]:
    """Publication times ``step`` apart ending at ``end`` (now), oldest first by number."""
    end = end or datetime.now(UTC).replace(microsecond=0)
    return {start_n + i: end - step * (count - 1 - i) for i in range(count)}
