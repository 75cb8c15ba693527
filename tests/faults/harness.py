"""The fault suite's harness: the real daemon as a subprocess, a feed server, a fake Slack.

Everything is on loopback. The daemon runs ``python -m monitor run`` with its
stderr in a file and ``tests/faults/netjail`` first on its PYTHONPATH (a
``sitecustomize`` that refuses, and records, every connection beyond loopback).
A scenario injects its fault, clears it, and then reads three witnesses:

* the feed server's request log: when each feed was actually polled;
* the fake Slack's messages: which alert ids were posted, how often, and when;
* the SQLite file: the alerts and their status.

``Result`` turns them into the row the README's reliability table shows:
expected / delivered / duplicates / lost / longest gap between polls of the
healthy feed after the fault cleared / log lines about the fault. Problems are
collected rather than asserted one by one, so a failing scenario still reports
its whole row and every reason at once.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.faults.stories import rss, spaced, story_url
from tests.support.fake_slack import DEFAULT_TOKEN, FakeSlack
from tests.support.feed_server import TimedServer

REPO = Path(__file__).resolve().parents[2]
NETJAIL = Path(__file__).resolve().parent / "netjail"
RESULTS = Path(__file__).resolve().parent / "results" / "results.json"

SHORT = os.environ.get("MONITOR_SHORT_SLOW") == "1"
SOURCE = Path(os.environ.get("FAULTS_MONITOR_SOURCE") or REPO)
"""Where the daemon's code is imported from: this checkout, or another tree (e.g. an
export of an older commit, to show that the suite fails on it)."""
INTERVAL = 30.0
"""The healthy feed's fixed interval: the smallest the settings accept (30 s)."""
GAP_MARGIN = 10.0
"""Slack on top of interval + back-off (start-up, scheduler latency, the ±10 % jitter)."""
CHANNEL = "C0ALERTS1"
TRACEBACK = "Traceback (most recent call last)"


def scaled(short: float, full: float) -> float:
    return short if SHORT else full


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    """Poll ``condition`` until true or ``timeout`` seconds passed (never a blind sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def free_port() -> int:
    """A loopback port nobody listens on right now (connections to it are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- feeds ---------------------------------------------------------------------------


class StoryFeed:
    """A feed on the server whose content grows: a new matching story every ``tick`` s."""

    def __init__(self, server: TimedServer, path: str, prefix: str, *, initial: int,
                 tick: float | None, step: timedelta = timedelta(minutes=1)) -> None:
        self.server = server
        self.path = path
        self.prefix = prefix
        self.tick = tick
        self.published: dict[int, datetime] = spaced(initial, step=step)
        self.added: dict[int, float] = dict.fromkeys(self.published, time.monotonic())
        """Monotonic time each story appeared in the document."""
        self.url = server.url(path)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._delay = 0.0
        self._publish()

    def _publish(self) -> None:
        with self._lock:
            numbers = sorted(self.published)
            body = rss(self.prefix, numbers, published=self.published)
            self.server.add_file(self.path, body, delay_seconds=self._delay)

    def hold_next(self, seconds: float) -> None:
        """Answer the next request(s) only after ``seconds``, until ``release``."""
        self._delay = seconds
        self._publish()

    def release(self) -> None:
        self._delay = 0.0
        self._publish()

    def add_story(self) -> None:
        with self._lock:
            n = max(self.published, default=-1) + 1
            self.published[n] = datetime.now(UTC).replace(microsecond=0)
            self.added[n] = time.monotonic()
        self._publish()

    def start(self) -> StoryFeed:
        if self.tick:
            self._thread = threading.Thread(target=self._run, name=f"ticker-{self.prefix}",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        assert self.tick
        while not self._stop.wait(self.tick):
            self.add_story()

    def urls(self) -> dict[str, datetime]:
        with self._lock:
            return {story_url(self.prefix, n): at for n, at in self.published.items()}

    def seen_urls(self) -> dict[str, datetime]:
        """Stories that were in the document when the feed was last requested: the ones
        the daemon can know about."""
        polls = self.polls()
        if not polls:
            return {}
        last = polls[-1]
        with self._lock:
            return {story_url(self.prefix, n): at for n, at in self.published.items()
                    if self.added[n] <= last - 0.5}

    def polls(self) -> list[float]:
        return self.server.arrival_times(self.path)


# --- configuration -------------------------------------------------------------------


@dataclass
class FeedEntry:
    name: str
    url: str
    interval: float | None = INTERVAL


def write_config(workdir: Path, db_path: Path, feeds: Iterable[FeedEntry], *,
                 busy_timeout: float = 5.0, lease: float = 30.0, extra: str = "") -> Path:
    """A config for the daemon under test. Intervals and back-offs are the production
    ones wherever the scenario does not need them shorter (the alerts' back-off and
    pacing are the daemon's defaults); the safety-net interval (``max_interval_seconds``)
    stays at its default of 6 h on purpose."""
    body = f"""
[schedule]
default_interval_seconds = 60
jitter_seconds = 0
drain_interval_seconds = 1

[fetch]
connect_timeout = 2
read_timeout = 5
total_timeout = 10
per_host_concurrency = 10
min_host_gap_seconds = 0
unconditional_probability = 0

[parse]
workers = 1

[storage]
database_url = "sqlite:///{db_path}"
busy_timeout_seconds = {busy_timeout}

[classifier]
keywords_path = "{REPO / 'config' / 'keywords.toml'}"
workers = 0

[alerts]
max_article_age_hours = 0
lease_seconds = {lease}
{extra}
"""
    for feed in feeds:
        body += f'\n[[feeds]]\nname = "{feed.name}"\nurl = "{feed.url}"\n'
        if feed.interval is not None:
            body += f"interval_seconds = {feed.interval:g}\n"
    path = workdir / "monitor.toml"
    path.write_text(body)
    return path


def slack_env(api_url: str) -> dict[str, str]:
    return {"SLACK_BOT_TOKEN": DEFAULT_TOKEN, "SLACK_CHANNEL": CHANNEL, "SLACK_API_URL": api_url}


# --- the daemon ----------------------------------------------------------------------


class Daemon:
    """``python -m monitor COMMAND --config CFG`` in its own process group, stderr to a file."""

    def __init__(self, workdir: Path, config: Path, env: dict[str, str], *,
                 jail_log: Path, connect_map: str = "") -> None:
        self.workdir = workdir
        self.config = config
        self.env = env
        self.jail_log = jail_log
        self.connect_map = connect_map
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self.stderr_path = workdir / "daemon.stderr"
        self.stderr_path.touch()

    def _env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("SLACK_", "MONITOR_"))}
        path = os.pathsep.join([str(NETJAIL), str(SOURCE), base.get("PYTHONPATH", "")])
        return {**base, **self.env, "PYTHONPATH": path.rstrip(os.pathsep),
                "PYTHONUNBUFFERED": "1", "FAULTS_CONNECT_LOG": str(self.jail_log),
                "FAULTS_CONNECT_MAP": self.connect_map}

    def start(self, command: str = "run") -> Daemon:
        assert self.proc is None or self.proc.poll() is not None, "daemon already running"
        self.runs += 1
        with self.stderr_path.open("ab") as err:
            err.write(f"\n=== harness: start #{self.runs} ({command}) ===\n".encode())
            err.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "monitor", command, "--config", str(self.config)],
                cwd=self.workdir, env=self._env(), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
            )
        return self

    def run_to_end(self, command: str, timeout: float) -> int | None:
        """Run a one-shot command (``once``); None if it was still running at ``timeout``."""
        self.start(command)
        rc = self.wait(timeout)
        if rc is None:
            self.kill()
        return rc

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout: float) -> int | None:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def send(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        """Signal and wait; kills the process group if it does not exit in ``timeout``."""
        if not self.alive():
            return None if self.proc is None else self.proc.returncode
        self.send(sig)
        rc = self.wait(timeout)
        if rc is None:
            self.kill()
        return rc

    def kill(self) -> None:
        """SIGKILL the daemon's whole process group (parser/classifier workers too)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    # -- its log --------------------------------------------------------------------
    def offset(self) -> int:
        return self.stderr_path.stat().st_size

    def log(self, start: int = 0, end: int | None = None) -> str:
        data = self.stderr_path.read_bytes()
        return data[start:end].decode("utf-8", "replace")

    def wait_for_log(self, pattern: str, timeout: float, start: int = 0) -> bool:
        rx = re.compile(pattern)
        return wait_for(lambda: bool(rx.search(self.log(start))) or not self.alive(), timeout) \
            and bool(rx.search(self.log(start)))

    def jail_attempts(self) -> list[str]:
        if not self.jail_log.exists():
            return []
        return [line for line in self.jail_log.read_text().splitlines() if line.strip()]


def log_lines(text: str, pattern: str) -> list[str]:
    rx = re.compile(pattern)
    return [line for line in text.splitlines() if rx.search(line)]


def tracebacks(text: str) -> int:
    return text.count(TRACEBACK)


def log_excerpt(text: str, limit: int = 3) -> str:
    """The first lines of the first ``limit`` tracebacks/errors, for assertion messages."""
    lines = [ln for ln in text.splitlines()
             if " ERROR " in ln or ln.startswith("Traceback") or "Error:" in ln]
    return " | ".join(ln.strip()[:200] for ln in lines[:limit])


# --- the witnesses ---------------------------------------------------------------------


@dataclass
class AlertRow:
    id: str
    status: str
    url: str
    published_at: str
    attempts: int


def db_alerts(db_path: Path) -> list[AlertRow]:
    """Every alert with its article's URL, read through a read-only connection."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute(
            "SELECT alerts.id, alerts.status, articles.url, articles.published_at, "
            "alerts.attempts FROM alerts JOIN articles ON articles.id = alerts.article_id"
        ).fetchall()
    finally:
        conn.close()
    return [AlertRow(*row) for row in rows]


def db_feed(db_path: Path, name: str) -> dict[str, object] | None:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        row = conn.execute("SELECT * FROM feeds WHERE name = ?", (name,)).fetchone()
    finally:
        conn.close()
    return dict(row) if row is not None else None


def unfinished(db_path: Path) -> int:
    """Alerts not yet sent (pending or in flight); -1 when the file cannot be read."""
    try:
        return sum(1 for a in db_alerts(db_path) if a.status in ("pending", "in_flight"))
    except sqlite3.Error:
        return -1


@dataclass
class Post:
    alert_id: str | None
    ts: float
    reply: bool = False
    """A thread reply: it follows its story's parent by design, whatever its own time."""


def slack_posts(slack: FakeSlack) -> list[Post]:
    """One post per alert carried: a story's thread reply folds several alerts into one
    message (``alert_ids`` in its metadata); parents and replies both count."""
    posts = []
    for message in slack.posted(CHANNEL):
        payload = (message.metadata or {}).get("event_payload") or {}
        reply = bool(message.thread_ts)
        if not isinstance(payload, dict):
            posts.append(Post(None, float(message.ts), reply))
            continue
        ids = payload.get("alert_ids") or [payload.get("alert_id")]
        for alert_id in ids:
            posts.append(Post(alert_id if isinstance(alert_id, str) else None,
                              float(message.ts), reply))
    return posts


@dataclass
class Tally:
    expected: int
    delivered: int
    duplicates: int
    lost: int
    duplicated: list[str]
    missing: list[str]
    unexpected: list[str]
    by_url: dict[str, list[float]]


def db_article_urls(db_path: Path) -> set[str]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        return {row[0] for row in conn.execute("SELECT url FROM articles")}
    finally:
        conn.close()


def tally(served_urls: Iterable[str], alerts: list[AlertRow], posts: list[Post],
          stored_urls: set[str] | None = None) -> Tally:
    """Expected: every alert in the database (each must be posted once) plus every
    served story the database never stored (the daemon can only alert what it
    stored; a story that never got there is lost). Posts are matched to alerts by
    the alert id in the message metadata."""
    stored = {a.url for a in alerts} | (stored_urls or set())
    never_stored = sorted(set(served_urls) - stored)
    per_alert = Counter(p.alert_id for p in posts)
    url_of = {a.id: a.url for a in alerts}
    by_url: dict[str, list[float]] = {}
    for post in posts:
        key = url_of.get(post.alert_id or "", f"<unknown alert {post.alert_id}>")
        by_url.setdefault(key, []).append(post.ts)
    unposted = sorted(a.url for a in alerts if per_alert.get(a.id, 0) == 0)
    duplicated = sorted(f"alert {a} ({url_of.get(a, '?')}) x{n}"
                        for a, n in per_alert.items() if n > 1)
    return Tally(
        expected=len(alerts) + len(never_stored),
        delivered=sum(1 for a in alerts if per_alert.get(a.id, 0) > 0),
        duplicates=sum(n - 1 for n in per_alert.values() if n > 1),
        lost=len(unposted) + len(never_stored),
        duplicated=duplicated,
        missing=[f"{u} (never stored)" for u in never_stored] + unposted,
        unexpected=sorted(k for k in by_url if k.startswith("<unknown")),
        by_url=by_url,
    )


def longest_gap(polls: list[float], since: float, until: float) -> float:
    """Longest stretch without a poll between ``since`` (the fault cleared) and the
    last poll (or ``until`` when there was none after ``since``)."""
    after = sorted(t for t in polls if since <= t <= until)
    if not after:
        return until - since
    points = [since, *after]
    return max(b - a for a, b in itertools.pairwise(points))


def allowed_gap(failed_polls: int, interval: float = INTERVAL) -> float:
    """Interval plus the failure back-off of ``failed_polls`` consecutive failures
    (interval × 2^failures at most, see monitor.cadence) plus a margin."""
    return interval * (2 ** min(max(failed_polls, 0), 8)) + GAP_MARGIN


# --- the result row ----------------------------------------------------------------------


@dataclass
class Result:
    scenario: str
    expected: int = 0
    delivered: int = 0
    duplicates: int = 0
    lost: int = 0
    longest_gap: float | None = None
    fault_log_lines: int = 0
    seconds: float = 0.0
    form: str = "short" if SHORT else "full"
    notes: dict[str, object] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def aborted(self, exc: BaseException) -> None:
        """The scenario stopped early: the row must not read as a pass."""
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        self.problem(f"scenario aborted: {type(exc).__name__}: {first[:300]}")

    def check(self, ok: bool, text: str) -> None:
        if not ok:
            self.problem(text)

    def apply(self, t: Tally) -> None:
        self.expected, self.delivered = t.expected, t.delivered
        self.duplicates, self.lost = t.duplicates, t.lost
        if t.duplicates:
            self.problem(f"{t.duplicates} duplicate post(s): " + ", ".join(t.duplicated[:5]))
        if t.lost:
            self.problem(f"{t.lost} of {t.expected} stories never posted: "
                         + ", ".join(t.missing[:5]))
        if t.unexpected:
            self.problem("posted without being expected: " + ", ".join(t.unexpected[:5]))

    def row(self) -> str:
        gap = "-" if self.longest_gap is None else f"{self.longest_gap:.1f}"
        verdict = "PASS" if not self.problems else "FAIL"
        return (f"{self.scenario} | {self.expected} | {self.delivered} | {self.duplicates} | "
                f"{self.lost} | {gap} | {self.fault_log_lines} | {verdict}")

    def save(self) -> None:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        try:
            data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        except ValueError:
            data = {}
        entry = asdict(self)
        entry["passed"] = not self.problems
        entry["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        data[self.scenario] = entry
        RESULTS.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
        print(f"\nscenario | expected | delivered | duplicates | lost | longest gap (s) | "
              f"fault log lines | verdict\n{self.row()}")
        for text in self.problems:
            print(f"  - {text}")

    def verdict(self) -> None:
        """Fail the test with every problem found (called after ``save``)."""
        assert not self.problems, f"{self.scenario}: " + "; ".join(self.problems)


class Clock:
    """Monotonic seconds since the scenario began, for notes."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def __call__(self) -> float:
        return time.monotonic() - self.start


def start_slack(port: int = 0) -> FakeSlack:
    return FakeSlack(port=port).start()
