"""Several daemons on one PostgreSQL database, as separate processes, on feeds served
locally and the fake Slack: work is shared, nothing is done twice, nothing is lost.

* three daemons on 300 feeds (120 with ``MONITOR_SHORT_SLOW=1``), one killed with
  SIGKILL mid-cycle: every feed polled, no feed polled by two at once (the feed server's
  own request intervals), every matching story alerted once with each reply once, in
  its thread;
* two drainers (two stores, two connection pools) against one outbox: each alert once;
* every daemon connection dropped (``pg_terminate_backend``) again and again during a
  cycle: every article recorded, every feed's poll saved, every alert sent once.

Skipped, with a how-to, when ``MONITOR_TEST_DATABASE_URL`` is unset; each test has a
schema of its own (``tests/support/pg.py``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest

from monitor.alerts.outbox import drain_outbox
from monitor.alerts.slack import SlackDeliverer
from monitor.decide import decide
from monitor.models import Article, StoryLink, Verdict
from monitor.store import open_store
from tests.faults.stories import story, story_url
from tests.support.defaults import alert_rules, drain_options
from tests.support.fake_slack import DEFAULT_TOKEN, FakeSlack
from tests.support.interval_server import IntervalServer
from tests.support.pg import pg_schema, require_base_url, server_url
from tests.support.processes import wait_until

REPO = Path(__file__).resolve().parent.parent
SHORT = os.environ.get("MONITOR_SHORT_SLOW") == "1"
CHANNEL = "C0ALERTS1"
STORY_NUMBERS = (0, 1, 3, 6)
"""Templates of tests/faults/stories that the story index keeps apart in any order
(checked: 4 and 7 join 1 and 0 as later developments)."""
OUTLETS = 3
"""Each story is carried word for word by three feeds (syndicated wire copy)."""

pytestmark = pytest.mark.slow


# --- the world: feeds, config, daemons, witnesses ------------------------------------------

def _rss(items: list[tuple[str, str, str]], published: datetime) -> bytes:
    body = "".join(
        f"<item><title>{escape(t)}</title><link>{escape(u)}</link><guid>{escape(u)}</guid>"
        f"<description>{escape(s)}</description>"
        f"<pubDate>{published:%a, %d %b %Y %H:%M:%S} +0000</pubDate></item>"
        for t, s, u in items)
    return ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>desk</title><link>https://news.example/</link>{body}</channel></rss>"
            ).encode()


def story_feeds(count: int) -> dict[int, int]:
    """Feed index → story number: copies a third of the list apart, so that they tend to
    fall in different daemons' batches (the deterministic cross-daemon case is
    ``test_two_daemons_seeing_one_story_at_once_start_one_thread``)."""
    carried: dict[int, int] = {}
    for k, n in enumerate(STORY_NUMBERS):
        for i in (2 * k, 2 * k + 1 + count // 3, 2 * k + 2 * count // 3)[:OUTLETS]:
            carried[i] = n
    return carried


def serve_feeds(server: IntervalServer, count: int) -> dict[str, str]:
    """``count`` feeds with one unrelated item each, some with a story copy too."""
    published = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    carried = story_feeds(count)
    feeds = {}
    for i in range(count):
        items = [(f"Harbour authority posts tide tables for week {i}",
                  f"The port office published its tide and berth schedule, edition {i}.",
                  f"https://port{i}.example/tides/{i}")]
        if i in carried:
            title, summary = story(carried[i])
            items.append((title, summary, story_url(f"outlet{i}", carried[i])))
        feeds[f"f{i:03d}"] = server.add(f"/f{i:03d}.xml", _rss(items, published))
    return feeds


def write_config(tmp_path: Path, url: str, feeds: dict[str, str], *,
                 lease_seconds: float = 8) -> Path:
    body = f"""
[schedule]
default_interval_seconds = 600
jitter_seconds = 0
drain_interval_seconds = 1
max_concurrent_feeds = 20
feed_lease_seconds = {lease_seconds}
[fetch]
unconditional_probability = 0
min_host_gap_seconds = 0
per_host_concurrency = 20
[parse]
workers = 1
[storage]
database_url = "{url}"
[classifier]
keywords_path = "{REPO / 'config' / 'keywords.toml'}"
workers = 0
[alerts]
max_article_age_hours = 0
lease_seconds = 5
[http]
listen = "off"
"""
    body += "".join(f'\n[[feeds]]\nname = "{n}"\nurl = "{u}"\n' for n, u in feeds.items())
    path = tmp_path / "monitor.toml"
    path.write_text(body)
    return path


class Daemons:
    """``python -m monitor run`` processes sharing one config (and so one database)."""

    def __init__(self, tmp_path: Path, config: Path, slack: FakeSlack) -> None:
        self.tmp_path = tmp_path
        self.config = config
        self.env = {**os.environ, "SLACK_BOT_TOKEN": DEFAULT_TOKEN, "SLACK_CHANNEL": CHANNEL,
                    "SLACK_API_URL": slack.base_url, "PYTHONUNBUFFERED": "1"}
        for name in ("SLACK_APP_TOKEN", "MONITOR_DATABASE_URL"):
            self.env.pop(name, None)
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = open(self.tmp_path / f"daemon{len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, "-m", "monitor", "run", "--config",
                                 str(self.config)], cwd=REPO, env=self.env,
                                stdout=subprocess.DEVNULL, stderr=log)
        log.close()
        self.procs.append(proc)
        return proc

    def stop(self) -> list[int | None]:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = []
        for proc in self.procs:
            try:
                codes.append(proc.wait(40))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
                codes.append(None)
        return codes

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:]
                         for p in sorted(self.tmp_path.glob("daemon*.log")))


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    schema = dict(p.split("=", 1) for p in url.split("?", 1)[1].split("&"))["schema"]
    with psycopg.connect(server_url(url), autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        return list(conn.execute(sql).fetchall())


def saved_polls(url: str) -> int:
    """Feeds whose successful poll is stored (with its next time)."""
    return query(url, "SELECT COUNT(*) FROM feeds WHERE next_poll_at IS NOT NULL "
                      "AND last_success_at IS NOT NULL")[0][0]


def migrate(url: str) -> None:
    """One migration before the daemons start (each would also migrate, one at a time)."""
    open_store(url).close()


def posted_alert_ids(slack: FakeSlack) -> dict[str, list[tuple[str, str | None]]]:
    """Alert id → every (message ts, thread ts) that carried it."""
    found: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
    for message in slack.posted(CHANNEL):
        payload = (message.metadata or {}).get("event_payload") or {}
        for alert_id in payload.get("alert_ids") or [payload.get("alert_id")]:
            if isinstance(alert_id, str):
                found[alert_id].append((message.ts, message.thread_ts))
    return found


def check_threads(url: str, slack: FakeSlack) -> list[str]:
    """Problems with "each story alerted once, each reply once and in its thread"."""
    alerts = query(url, "SELECT id, kind, story_id, status FROM alerts")
    posted = posted_alert_ids(slack)
    problems = [f"alert {a} posted {len(m)} times" for a, m in posted.items() if len(m) > 1]
    problems += [f"alert {a} ({kind}) never posted" for a, kind, _, _ in alerts
                 if a not in posted]
    parents = {story_id: posted[a][0][0] for a, kind, story_id, _ in alerts
               if kind == "parent" and a in posted}
    for alert_id, kind, story_id, _ in alerts:
        if alert_id not in posted:
            continue
        thread = posted[alert_id][0][1]
        if kind == "parent" and thread is not None:
            problems.append(f"parent {alert_id} posted inside a thread")
        if kind == "reply" and thread != parents.get(story_id):
            problems.append(f"reply {alert_id} not in its story's thread")
    return problems


# --- three daemons, one killed ----------------------------------------------------------

def test_three_daemons_share_the_feeds_and_survive_a_kill_9(tmp_path: Path) -> None:
    count = 120 if SHORT else 300
    with IntervalServer(hold=0.15) as server, FakeSlack() as slack, \
            pg_schema("daemons") as url:
        feeds = serve_feeds(server, count)
        config = write_config(tmp_path, url, feeds)
        migrate(url)
        daemons = Daemons(tmp_path, config, slack)
        try:
            victim = daemons.start()
            daemons.start()
            daemons.start()
            assert wait_until(lambda: len(server.polled_paths()) >= count // 4, 120, 0.05), \
                daemons.logs()
            victim.send_signal(signal.SIGKILL)  # mid-cycle: it holds leases and alerts
            victim.wait(10)
            killed_at = len(server.polled_paths())
            # Polled *and saved*: the victim's last polls count only once a survivor
            # has taken them over after its leases ran out.
            all_polled = wait_until(lambda: saved_polls(url) == count, 180, 0.3)
            expected_alerts = len(STORY_NUMBERS) * OUTLETS
            stored = wait_until(lambda: query(url, "SELECT COUNT(*) FROM alerts")[0][0]
                                >= expected_alerts, 60, 0.5)
            sent = wait_until(lambda: query(
                url, "SELECT COUNT(*) FROM alerts WHERE status = 'sent'")[0][0]
                >= expected_alerts and len(posted_alert_ids(slack)) >= expected_alerts, 120, 0.5)
        finally:
            codes = daemons.stop()
        assert all_polled, (f"{count - saved_polls(url)} feeds never polled and saved",
                            daemons.logs())
        assert stored and sent, daemons.logs()
        overlaps = server.overlaps()
        assert overlaps == [], f"polled concurrently: {overlaps[:5]}"
        assert server.polled_paths() == {f"/f{i:03d}.xml" for i in range(count)}
        parents = query(url, "SELECT COUNT(*) FROM alerts WHERE kind = 'parent'")[0][0]
        assert parents == len(STORY_NUMBERS), "one parent (one Slack thread) per story"
        assert check_threads(url, slack) == []
        assert codes[1:] == [0, 0], daemons.logs()
        print(f"\n{count} feeds, 3 daemons, one killed after {killed_at} feeds were polled: "
              f"all polled, no overlap, {expected_alerts} alerts in {parents} threads, each once")



def test_once_beside_daemons_polls_only_the_due_feeds_nobody_holds(tmp_path: Path) -> None:
    """A cron ``once`` on a shared database claims like a daemon: feeds another daemon
    holds are left to it, and a feed just polled is not polled again until it is due."""
    with IntervalServer() as server, pg_schema("once") as url:
        feeds = serve_feeds(server, 20)
        config = write_config(tmp_path, url, feeds)
        migrate(url)
        other = open_store(url)
        try:
            held = other.claim_feeds(sorted(feeds)[:5], owner="elsewhere:1:abc",
                                     now=datetime.now(UTC), lease_seconds=120, limit=5)
        finally:
            other.close()
        assert len(held) == 5
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("SLACK_") and k != "MONITOR_DATABASE_URL"}

        def once() -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "monitor", "once", "--config",
                                   str(config)], cwd=REPO, env=env, capture_output=True,
                                  text=True, timeout=180)

        first = once()
        assert first.returncode == 0, first.stderr[-3000:]
        assert "claimed 15 of 20 feeds" in first.stderr
        assert server.polled_paths() == {f"/{name}.xml" for name in sorted(feeds)[5:]}
        assert server.overlaps() == []
        assert saved_polls(url) == 15
        leases = query(url, "SELECT COUNT(*) FROM feeds WHERE lease_owner IS NOT NULL")[0][0]
        assert leases == 5, "once hands its leases back; the other daemon's stay"
        second = once()
        assert second.returncode == 0, second.stderr[-3000:]
        assert "claimed 0 of 20 feeds" in second.stderr
        assert all(len(server.intervals(f"/{name}.xml")) == 1 for name in sorted(feeds)[5:])


# --- two drainers ---------------------------------------------------------------------------

def test_two_drainers_send_each_alert_of_one_outbox_once() -> None:
    require_base_url()
    count = 20 if SHORT else 60
    now = datetime.now(UTC).replace(microsecond=0)
    rules = alert_rules(f"slack:{CHANNEL}", max_article_age_hours=0)
    with pg_schema("drainers") as url, FakeSlack() as slack:
        stores = [open_store(url), open_store(url)]
        try:
            records = []
            for i in range(count):
                title, summary = story(STORY_NUMBERS[i % len(STORY_NUMBERS)])
                article = Article(id=f"a{i:03d}", feed_name="wire", source="wire",
                                  url=f"https://wire.example/{i}", title=f"{title} #{i}",
                                  summary=summary, published_at=now - timedelta(minutes=i),
                                  first_seen_at=now)
                verdict = Verdict(article.id, 0.9, True, 0.5, "test", "m", "arms")
                records.append((article, verdict, decide(article, verdict, rules, now=now).alerts))
            stores[0].record_articles(records)

            async def drain_all(i: int) -> int:
                deliverer = SlackDeliverer(DEFAULT_TOKEN, CHANNEL, base_url=slack.base_url)
                sent = 0
                try:
                    for _ in range(count):
                        report = await drain_outbox(
                            stores[i], deliverer, now=lambda: datetime.now(UTC),
                            options=drain_options(batch_size=3, max_batches=1),
                            logger=logging.getLogger(f"drainer{i}"))
                        sent += report.sent
                        if not report.sent and not report.retried:
                            break
                finally:
                    await deliverer.aclose()
                return sent

            async def both() -> list[int]:
                return list(await asyncio.gather(drain_all(0), drain_all(1)))

            sent = asyncio.run(both())
        finally:
            for store in stores:
                store.close()
        posted = Counter({a: len(m) for a, m in posted_alert_ids(slack).items()})
    assert sum(sent) == count and len(posted) == count
    assert [a for a, n in posted.items() if n > 1] == []
    assert min(sent) > 0, f"one drainer did everything: {sent}"


# --- two daemons, one story, the same moment ----------------------------------------------

def test_two_daemons_seeing_one_story_at_once_start_one_thread() -> None:
    """Copies of one report reach two daemons at the same moment, many times over: each
    story still gets exactly one parent, because assignment waits for the advisory lock
    and then sees what the other daemon recorded."""
    from monitor.stories import StoryIndex, StorySettings, load_names
    from monitor.stories.stage import SharedStories, StoryStage

    require_base_url()
    rules = alert_rules(f"slack:{CHANNEL}", max_article_age_hours=0)
    names = load_names(REPO / "config" / "keywords.toml")
    rounds = 4 if SHORT else 12
    now = datetime.now(UTC).replace(microsecond=0)
    with pg_schema("storylock") as url:
        stores = [open_store(url), open_store(url)]
        try:
            daemons = [SharedStories(StoryStage(StoryIndex(StorySettings(), names), rules=rules,
                                                now=lambda: datetime.now(UTC)),
                                     store, window=timedelta(hours=36)) for store in stores]
            for daemon in daemons:
                daemon.start()

            def copy(i: int, outlet: int) -> tuple[Article, Verdict]:
                title, summary = story(STORY_NUMBERS[i % len(STORY_NUMBERS)])
                article = Article(id=f"r{i}-o{outlet}", feed_name=f"o{outlet}",
                                  source=f"o{outlet}", url=f"https://o{outlet}.example/{i}",
                                  title=f"{title} (round {i})", summary=summary,
                                  published_at=now + timedelta(hours=i), first_seen_at=now)
                return article, Verdict(article.id, 0.9, True, 0.5, "test", "m", "arms")

            async def both(i: int) -> None:
                async def one(d: int) -> None:
                    article, verdict = copy(i, d)

                    def record(arts: list[Article], verds: list[Verdict],
                               links: list[StoryLink]) -> int:
                        return sum(stores[d].record_articles(
                            [(a, v, decide(a, v, rules, now=now).alerts, link)
                             for a, v, link in zip(arts, verds, links, strict=True)]))

                    await daemons[d].link_and_record([article], [verdict], record)

                await asyncio.gather(one(0), one(1))

            for i in range(rounds):
                asyncio.run(both(i))
        finally:
            for store in stores:
                store.close()
        parents = dict(query(url, "SELECT story_id, COUNT(*) FROM alerts "
                                  "WHERE kind = 'parent' GROUP BY story_id"))
        stories = dict(query(url, "SELECT id, story_id FROM articles"))
    split = [i for i in range(rounds) if stories[f"r{i}-o0"] != stories[f"r{i}-o1"]]
    assert split == [], f"rounds whose two copies started two stories: {split}"
    assert set(parents) == set(stories.values()) and set(parents.values()) == {1}, parents


# --- connections dropped during a cycle -----------------------------------------------------

def test_dropped_database_connections_during_a_cycle_lose_nothing(tmp_path: Path) -> None:
    count = 40 if SHORT else 100
    with IntervalServer(hold=0.05) as server, FakeSlack() as slack, \
            pg_schema("dropped") as url:
        feeds = serve_feeds(server, count)
        config = write_config(tmp_path, url, feeds)
        migrate(url)
        schema = url.rsplit("schema=", 1)[1]
        stop_killing = threading.Event()
        killed: list[int] = []

        def drop_connections() -> None:
            import psycopg

            with psycopg.connect(server_url(url), autocommit=True) as conn:
                while not stop_killing.wait(0.7):
                    rows = conn.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = %s", (f"monitor:{schema}",)).fetchall()
                    killed.append(len(rows))

        daemons = Daemons(tmp_path, config, slack)
        killer = threading.Thread(target=drop_connections, daemon=True)
        try:
            daemons.start()
            daemons.start()
            assert wait_until(lambda: len(server.polled_paths()) >= 1, 120, 0.05), daemons.logs()
            killer.start()
            wait_until(lambda: len(server.polled_paths()) >= count // 2, 60, 0.1)
            time.sleep(3)  # keep dropping them while polls record and alerts go out
            stop_killing.set()
            killer.join(10)
            expected_alerts = len(STORY_NUMBERS) * OUTLETS
            # After failures the feeds come back on their back-off (half a minute or so).
            done = wait_until(lambda: saved_polls(url) == count
                              and len(posted_alert_ids(slack)) >= expected_alerts, 240, 0.5)
        finally:
            stop_killing.set()
            codes = daemons.stop()
        assert sum(killed) > 0, "no connection was dropped: the test proved nothing"
        assert done, daemons.logs()
        articles = query(url, "SELECT COUNT(*) FROM articles")[0][0]
        assert articles == count + expected_alerts, "every served item recorded once"
        assert check_threads(url, slack) == []
        assert server.overlaps() == []
        assert codes == [0, 0], daemons.logs()
        print(f"\n{sum(killed)} connections dropped during the cycle; nothing lost")
