"""Scale-out benchmark: feeds per second with 1, 2 and 4 daemon processes on one
PostgreSQL database, and one daemon on SQLite, with the bottleneck named.

    python bench/scale.py             # 1,000 feeds, 3 repeats: about 20 minutes on 2 cores
    python bench/scale.py --quick     # 300 feeds, 1 repeat: about 8 minutes

Each run is the real thing: ``python -m monitor run`` processes (the default layout:
parser and classifier worker processes) against ``bench/server.py`` (aiohttp, its own
process, 20-100 items per feed, ETags and 304s), on a fresh PostgreSQL schema or
SQLite file. Two cycles per run:

* **cold**: every feed a 200 (parse, classify, stories, record);
* **all-304**: every feed due again, nothing changed (the conditional poll, the
  claim, the state save: where coordination costs show).

On PostgreSQL all daemons are started and idle first; then every feed is made due at
one instant a few seconds ahead (they sleep until exactly then), so no daemon gets a
head start. SQLite has one daemon (the flock allows no second one); its cycles start
as it starts. Feeds per second = feeds / (last poll's time - first poll's time), from
the stored ``last_attempt_at``. CPU during the cycle is read with psutil for the
daemons (with their workers), the PostgreSQL server processes and the feed server;
the bottleneck is whichever of them the 2 cores went to, or the wait when they idle.

PostgreSQL: ``MONITOR_BENCH_DATABASE_URL``, else ``MONITOR_TEST_DATABASE_URL``, else
``postgresql://postgres@127.0.0.1:5432/test``; each run uses a schema of its own and
drops it. Needs aiohttp and psutil.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from monitor.models import FeedState  # noqa: E402
from monitor.store import open_store  # noqa: E402

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
DUE_AHEAD = 6.0
"""Seconds between making every feed due and the due time: longer than the claim
loop's longest sleep, so every daemon is awake for it."""


@dataclass
class Cycle:
    feeds_per_s: float
    wall_s: float
    """The watched window: from when the feeds were due until the last one was polled."""
    daemon_cpu: float
    """CPU seconds of the daemons and their workers during the cycle."""
    postgres_cpu: float
    server_cpu: float
    machine_cpu: float
    """Every process's, ours and anyone else's on this shared machine."""

    feeds: int = 0

    def per_feed_ms(self, cpu: float) -> float:
        return cpu * 1e3 / self.feeds if self.feeds else 0.0

    @property
    def ceiling(self) -> float:
        """Feeds/s if the daemons and PostgreSQL had every core to themselves: what the
        CPU cost per feed allows, whatever else the machine was doing."""
        ms = self.per_feed_ms(self.daemon_cpu + self.postgres_cpu + self.server_cpu)
        return (psutil.cpu_count() or 1) * 1e3 / ms if ms else 0.0

    def share(self, cpu: float) -> float:
        """Cores used on average (1.0 = one core busy all the cycle)."""
        return cpu / self.wall_s if self.wall_s else 0.0


# --- processes ------------------------------------------------------------------------

def start_server(feeds: int) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, "-m", "bench.server", "--feeds", str(feeds)],
                            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if not line or line[0] != "READY":
        raise SystemExit("the benchmark feed server did not start")
    return proc, int(line[1])


def write_config(folder: Path, url: str, port: int, feeds: int) -> Path:
    body = f"""
[schedule]
default_interval_seconds = 3600
min_interval_seconds = 3600
jitter_seconds = 0
drain_interval_seconds = 5
[fetch]
unconditional_probability = 0
min_host_gap_seconds = 0
per_host_concurrency = 20
[storage]
database_url = "{url}"
[classifier]
keywords_path = "{REPO / 'config' / 'keywords.toml'}"
[stories]
enabled = true
[http]
listen = "off"
"""
    body += "".join(f'\n[[feeds]]\nname = "f{i:05d}"\nurl = "http://127.0.0.1:{port}/feed/{i}.xml"\n'
                    for i in range(feeds))
    path = folder / "monitor.toml"
    path.write_text(body)
    return path


def start_daemons(config: Path, count: int, folder: Path) -> list[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLACK_", "MONITOR_DATABASE_URL"))}
    procs = []
    for i in range(count):
        log = open(folder / f"daemon{i}.log", "wb")  # noqa: SIM115
        procs.append(subprocess.Popen([sys.executable, "-m", "monitor", "run", "--config",
                                       str(config)], cwd=REPO, env=env,
                                      stdout=subprocess.DEVNULL, stderr=log))
        log.close()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        logs = [(folder / f"daemon{i}.log").read_text(errors="replace") for i in range(count)]
        if all("scheduler started" in text for text in logs):
            return procs
        if any(p.poll() is not None for p in procs):
            break
        time.sleep(0.2)
    stop_daemons(procs)
    raise SystemExit("a daemon did not start: see " + str(folder))


def stop_daemons(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def cpu_of(pids: list[int], *, with_children: bool = True) -> float:
    total = 0.0
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            procs = [proc, *proc.children(recursive=True)] if with_children else [proc]
        except psutil.Error:
            continue
        for p in procs:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
    return total


def cpu_by_pid(pids: set[int]) -> dict[int, float]:
    found = {}
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            found[pid] = t.user + t.system
        except psutil.Error:
            pass
    return found


def machine_busy() -> float:
    """CPU seconds the whole machine spent not idle (other users of it included)."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


# --- the store, read from the outside ------------------------------------------------------

class Db:
    """Reads (and, on PostgreSQL, schedules) the feeds table of one run."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pg = not url.startswith("sqlite:///")

    def _connect(self):  # type: ignore[no-untyped-def]
        if self.pg:
            import psycopg

            base, _, query = self.url.partition("?")
            schema = dict(p.split("=", 1) for p in query.split("&"))["schema"]
            conn = psycopg.connect(base, autocommit=True)
            conn.execute(f'SET search_path TO "{schema}"')
            return conn
        import sqlite3

        return sqlite3.connect(self.url.removeprefix("sqlite:///"), timeout=30)

    def _one(self, sql: str, args: tuple[object, ...] = ()) -> tuple[object, ...]:
        conn = self._connect()
        try:
            if not self.pg:
                sql = sql.replace("%s", "?")
            return tuple(conn.execute(sql, args).fetchone())
        finally:
            conn.close()

    def make_due(self, at: datetime) -> None:
        conn = self._connect()
        try:
            conn.execute("UPDATE feeds SET next_poll_at = %s", (at,))
        finally:
            conn.close()

    def make_due_sqlite(self, at: datetime) -> None:
        conn = self._connect()
        try:
            conn.execute("UPDATE feeds SET next_poll_at = ?", (at.isoformat(),))
            conn.commit()
        finally:
            conn.close()

    def polled_since(self, since: datetime) -> int:
        value = since if self.pg else since.isoformat()
        return int(self._one("SELECT COUNT(*) FROM feeds WHERE last_attempt_at >= %s",
                             (value,))[0])

    def span_since(self, since: datetime) -> float:
        value = since if self.pg else since.isoformat()
        first, last = self._one("SELECT MIN(last_attempt_at), MAX(last_attempt_at) FROM feeds "
                                "WHERE last_attempt_at >= %s", (value,))
        if not self.pg:
            first, last = datetime.fromisoformat(first), datetime.fromisoformat(last)
        return (last - first).total_seconds()

    def server_pids(self) -> set[int]:
        """PostgreSQL processes working for this run: the daemons' sessions (their
        application_name names the schema) and the server's own background processes."""
        if not self.pg:
            return set()
        conn = self._connect()
        try:
            schema = self.url.rsplit("schema=", 1)[1]
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s "
                "OR backend_type <> 'client backend'", (f"monitor:{schema}",)).fetchall()
            return {row[0] for row in rows}
        finally:
            conn.close()

    def drop(self) -> None:
        if self.pg:
            import psycopg

            base, _, query = self.url.partition("?")
            schema = dict(p.split("=", 1) for p in query.split("&"))["schema"]
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# --- one run ------------------------------------------------------------------------------

def measure_cycle(db: Db, feeds: int, since: datetime, watched: list[int],
                  server_pid: int, timeout: float) -> Cycle:
    """Wait for every feed's poll after ``since`` (the daemons idle until then); CPU is
    what the cycle added, spread over its polling span."""
    pg0 = cpu_by_pid(db.server_pids())
    d0, s0, m0 = cpu_of(watched), cpu_of([server_pid], with_children=False), machine_busy()
    wall0 = time.monotonic()
    deadline = wall0 + timeout
    while db.polled_since(since) < feeds:
        if time.monotonic() > deadline:
            raise SystemExit(f"cycle incomplete: {db.polled_since(since)}/{feeds} feeds")
        time.sleep(0.1)
    d1, s1, m1 = cpu_of(watched), cpu_of([server_pid], with_children=False), machine_busy()
    window = time.monotonic() - wall0
    pg1 = cpu_by_pid(db.server_pids() | set(pg0))
    pg = sum(v - pg0.get(pid, 0.0) for pid, v in pg1.items())
    span = max(db.span_since(since), 1e-3)
    return Cycle(feeds / span, window, d1 - d0, pg, s1 - s0, m1 - m0, feeds)


def sleep_until(when: datetime) -> None:
    """Until just before ``when``: the measured window starts with the cycle."""
    time.sleep(max(0.0, (when - datetime.now(UTC)).total_seconds() - 0.05))


def seed(url: str, port: int, feeds: int, due: datetime) -> None:
    """Every feed's row, due at ``due`` (after the daemons are up)."""
    store = open_store(url)
    try:
        store.save_feed_states([
            FeedState(name=f"f{i:05d}", url=f"http://127.0.0.1:{port}/feed/{i}.xml",
                      next_poll_at=due) for i in range(feeds)])
    finally:
        store.close()


def run_postgres(base_url: str, daemons: int, feeds: int, port: int, server_pid: int,
                 folder: Path) -> dict[str, Cycle]:
    url = f"{base_url}?schema=scale_{uuid.uuid4().hex[:10]}"
    db = Db(url)
    seed(url, port, feeds, datetime.now(UTC) + timedelta(days=1))
    config = write_config(folder, url, port, feeds)
    procs = start_daemons(config, daemons, folder)
    cycles = {}
    try:
        for name in ("cold", "all-304"):
            due = datetime.now(UTC) + timedelta(seconds=DUE_AHEAD)
            db.make_due(due)
            sleep_until(due)
            cycles[name] = measure_cycle(db, feeds, due - timedelta(seconds=1),
                                         [p.pid for p in procs], server_pid, 600)
    finally:
        stop_daemons(procs)
        db.drop()
    return cycles


SQLITE_START = 30.0
"""SQLite's daemon arms its jobs at start from the stored times: each cycle's feeds are
made due this far ahead of a (re)start, so they fire after the start-up."""


def run_sqlite(feeds: int, port: int, server_pid: int, folder: Path) -> dict[str, Cycle]:
    url = f"sqlite:///{folder / 'state.db'}"
    db = Db(url)
    config = write_config(folder, url, port, feeds)
    cycles = {}
    for name in ("cold", "all-304"):
        due = datetime.now(UTC) + timedelta(seconds=SQLITE_START)
        if name == "cold":
            seed(url, port, feeds, due)
        else:
            db.make_due_sqlite(due)
        procs = start_daemons(config, 1, folder)
        try:
            sleep_until(due)
            cycles[name] = measure_cycle(db, feeds, due - timedelta(seconds=1),
                                         [p.pid for p in procs], server_pid, 600)
        finally:
            stop_daemons(procs)
    return cycles


# --- report -------------------------------------------------------------------------------

def bottleneck(c: Cycle, cores: int) -> str:
    """Which resource limits the cycle: the CPU when the cores were busy (then whose CPU
    per feed is the larger part), else waiting (locks, round trips, the fixed concurrency)."""
    d, p, s = c.share(c.daemon_cpu), c.share(c.postgres_cpu), c.share(c.server_cpu)
    machine = c.share(c.machine_cpu)
    ours = d + p + s
    parts = (f"daemons {d:.2f}, postgres {p:.2f}, feed server {s:.2f}, "
             f"whole machine {machine:.2f} cores")
    if machine < 0.85 * cores:
        return f"waiting (CPU not saturated): {parts}"
    top = "PostgreSQL" if p > d else "the daemons"
    if machine - ours > ours:
        return (f"CPU, taken mostly by other processes on the machine; of ours, {top}: "
                f"{parts}")
    return f"CPU, mostly {top}: {parts}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--daemons", default="1,2,4", help="PostgreSQL daemon counts")
    parser.add_argument("--quick", action="store_true", help="300 feeds, 1 repeat")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the medians here")
    args = parser.parse_args(argv)
    if args.quick:
        args.feeds, args.repeats = 300, 1
    base = (os.environ.get("MONITOR_BENCH_DATABASE_URL")
            or os.environ.get("MONITOR_TEST_DATABASE_URL") or DEFAULT_PG).split("?")[0]
    setups = [(f"PostgreSQL, {n} daemon{'s' if n > 1 else ''}", n)
              for n in (int(x) for x in args.daemons.split(","))]
    if not args.no_sqlite:
        setups.append(("SQLite, 1 daemon", 0))
    cores = psutil.cpu_count() or 1
    server, port = start_server(args.feeds)
    results: dict[str, dict[str, list[Cycle]]] = {}
    try:
        for repeat in range(args.repeats):
            for label, n in setups:
                with tempfile.TemporaryDirectory(prefix="scale-") as tmp:
                    folder = Path(tmp)
                    cycles = (run_postgres(base, n, args.feeds, port, server.pid, folder) if n
                              else run_sqlite(args.feeds, port, server.pid, folder))
                for name, cycle in cycles.items():
                    results.setdefault(label, {}).setdefault(name, []).append(cycle)
                    print(f"[{repeat + 1}/{args.repeats}] {label:24} {name:8} "
                          f"{cycle.feeds_per_s:8.1f} feeds/s  "
                          f"(daemons {cycle.per_feed_ms(cycle.daemon_cpu):.2f} + postgres "
                          f"{cycle.per_feed_ms(cycle.postgres_cpu):.2f} ms CPU/feed)  "
                          f"{bottleneck(cycle, cores)}", flush=True)
    finally:
        if server.stdin:
            server.stdin.close()
        server.wait(10)
    print(f"\n{args.feeds} feeds, medians of {args.repeats}, {cores} cores\n")
    print("Cores busy on average during the cycle; CPU ms per feed; the ceiling is the feeds/s "
          "that CPU cost allows on all cores of an otherwise idle machine.\n")
    print("| setup | cycle | feeds/s | daemons cores | postgres cores | whole machine cores "
          "| daemon ms/feed | postgres ms/feed | ceiling feeds/s | bottleneck |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    summary = []
    for label, by_cycle in results.items():
        for name, runs in by_cycle.items():
            med = sorted(runs, key=lambda c: c.feeds_per_s)[len(runs) // 2]
            fps = statistics.median(c.feeds_per_s for c in runs)
            verdict = bottleneck(med, cores).split(":")[0]
            print(f"| {label} | {name} | {fps:.1f} | {med.share(med.daemon_cpu):.2f} | "
                  f"{med.share(med.postgres_cpu):.2f} | {med.share(med.machine_cpu):.2f} | "
                  f"{med.per_feed_ms(med.daemon_cpu):.2f} | "
                  f"{med.per_feed_ms(med.postgres_cpu):.2f} | {med.ceiling:.0f} | {verdict} |")
            summary.append({"setup": label, "cycle": name, "feeds_per_s": fps,
                            "daemon_cores": med.share(med.daemon_cpu),
                            "postgres_cores": med.share(med.postgres_cpu),
                            "server_cores": med.share(med.server_cpu),
                            "machine_cores": med.share(med.machine_cpu),
                            "daemon_ms_per_feed": med.per_feed_ms(med.daemon_cpu),
                            "postgres_ms_per_feed": med.per_feed_ms(med.postgres_cpu),
                            "ceiling_feeds_per_s": med.ceiling})
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
