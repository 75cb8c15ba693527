"""Shared pieces of the web-endpoint tests: a free port, feeds with matching stories and
one hostile item, and a config that turns the daemon's HTTP endpoints on.

The stories are written for these tests (in the style of wire copy); the hostile
item's title is markup that would run script if any page printed it unescaped.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

from tests.support.configs import write_config
from tests.support.feed_server import FeedServer

HOSTILE_TITLE = "<script>alert(1)</script><img src=x onerror=alert(2)>"
NOW = datetime.now(UTC).replace(microsecond=0)

Item = tuple[str, str, str, datetime]

WIRE: list[Item] = [
    ("North Korea shipped artillery shells to Russia by rail, Seoul says",
     "South Korea's intelligence service said North Korea had sent millions of artillery "
     "shells to Russia through the Rajin port and the Tumen River rail bridge for use in "
     "Ukraine, in return for food, oil and military technology.",
     "https://wire.example/world/dprk-russia-shells", NOW - timedelta(hours=5)),
    ("Putin and Kim sign mutual defence treaty in Pyongyang",
     "Russian President Vladimir Putin and North Korean leader Kim Jong Un signed a "
     "comprehensive strategic partnership treaty that obliges each side to give military "
     "assistance if the other is attacked.",
     "https://wire.example/world/putin-kim-treaty", NOW - timedelta(hours=3)),
    ("Monsoon rains flood rice fields in southern Thailand",
     "Heavy rains flooded thousands of hectares of rice paddies in southern Thailand, the "
     "agriculture ministry said, and more rain is expected this week.",
     "https://wire.example/asia/thai-floods", NOW - timedelta(hours=2)),
]
HERALD: list[Item] = [
    ("Seoul: North Korean artillery shells reached Russia by rail via Tumen bridge",
     "North Korea has sent millions of artillery shells to Russia over the Tumen River rail "
     "bridge and through Rajin, South Korea's spy agency told lawmakers, in exchange for "
     "food, oil and military technology.",
     "https://herald.example/news/shells-by-rail", NOW - timedelta(hours=4)),
    (HOSTILE_TITLE,
     "North Korean workers were sent to Russian construction sites in Vladivostok under a "
     "new labour agreement between Pyongyang and Moscow, in breach of UN sanctions.",
     "https://herald.example/news/hostile", NOW - timedelta(hours=1)),
]


def rss(items: list[Item]) -> bytes:
    """RSS 2.0. Titles are escaped twice: a feed's title is HTML, so markup meant as text
    must reach the parser as entities (which is how real feeds carry a literal ``<``)."""
    body = "".join(
        f"<item><title>{escape(escape(t))}</title><link>{escape(u)}</link>"
        f"<guid>{escape(u)}</guid><description>{escape(s)}</description>"
        f"<pubDate>{format_datetime(p)}</pubDate></item>"
        for t, s, u, p in items
    )
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>feed</title><link>https://example.org/</link>{body}</channel></rss>").encode()


def free_port() -> int:
    """A port nobody listens on right now (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_feeds(server: FeedServer) -> dict[str, str]:
    """Two working outlets and one broken feed (HTTP 500 every time)."""
    return {
        "Wire": server.add_file("/wire.xml", rss(WIRE)),
        "Herald": server.add_file("/herald.xml", rss(HERALD)),
        "Broken": server.add_status("/broken.xml", 500),
    }


def web_config(tmp_path: Path, feeds: dict[str, str], port: int) -> Path:
    """The daemon on its HTTP endpoints, polling at once, draining every second."""
    return write_config(tmp_path, feeds, sections=f"""
[http]
listen = "127.0.0.1:{port}"
[schedule]
jitter_seconds = 0
drain_interval_seconds = 1
[fetch]
unconditional_probability = 0
min_host_gap_seconds = 0
""")
