"""Fault injection against the real daemon (``python -m monitor run`` in a subprocess).

Each scenario injects one fault while the daemon runs against the local feed
server and the fake Slack, clears it, and then checks the end state: every
story posted once (nothing lost, nothing twice), every feed polled again within
its interval plus back-off after the fault cleared, and the fault reported in
the log by clear lines, not tracebacks. Each prints and saves its row of the
reliability table (``python -m tests.faults.report``).

Run: ``python -m pytest -q -m slow tests/faults`` (``MONITOR_SHORT_SLOW=1`` for the
short form that ``.ci/run`` uses).
"""

from __future__ import annotations

import itertools
import signal
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from tests.faults import fsfaults
from tests.faults.conftest import Bench
from tests.faults.harness import (
    INTERVAL,
    Clock,
    Daemon,
    FeedEntry,
    Result,
    StoryFeed,
    allowed_gap,
    db_alerts,
    db_article_urls,
    db_feed,
    free_port,
    log_excerpt,
    log_lines,
    longest_gap,
    scaled,
    slack_env,
    slack_posts,
    start_slack,
    tally,
    tracebacks,
    unfinished,
    wait_for,
    write_config,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

HOLD = 4.0
"""How long the feed server holds the healthy feed's first answer: the fault goes on
while the poll waits, so it is that poll's writes that fail."""
STORAGE_FAULT = (r"(?i) (WARNING|ERROR|CRITICAL) .*(locked|disk is full|no space|read-?only|"
                 r"i/o error|sqlite|store ?error|database|could not record|storage)")

SKIPPED = r" WARNING .*skipped: maximum number of running instances"


def _problem_tracebacks(res: Result, daemon: Daemon, start: int = 0) -> None:
    text = daemon.log(start)
    count = tracebacks(text)
    if count:
        res.problem(f"{count} traceback(s) in the daemon's stderr (first: "
                    f"{log_excerpt(text, 2)})")


def _settle(bench: Bench, db: Path, feeds: list[StoryFeed], since: float, timeout: float) -> bool:
    """Every feed polled after ``since``, every story it served posted, nothing pending."""
    assert bench.slack is not None
    slack = bench.slack

    def done() -> bool:
        if any(not [t for t in f.polls() if t > since] for f in feeds):
            return False
        wanted = set().union(*(f.seen_urls() for f in feeds))
        try:
            t = tally(wanted, db_alerts(db), slack_posts(slack), db_article_urls(db))
        except Exception:
            return False
        return t.lost == 0 and unfinished(db) == 0
    return wait_for(done, timeout, interval=0.5)


def _finish(res: Result, bench: Bench, daemon: Daemon, db: Path, feeds: list[StoryFeed],
            *, cleared: float, failed: dict[str, int], fault_lines: int, clock: Clock) -> None:
    """Stop the daemon and fill in the row; ``failed`` is polls hit by the fault, per feed."""
    assert bench.slack is not None
    end = time.monotonic()
    if daemon.alive():
        offset = daemon.offset()
        rc = daemon.stop(signal.SIGTERM, timeout=30)
        res.check(rc == 0, f"daemon exited {rc} after SIGTERM (expected 0)")
        res.check("Traceback" not in daemon.log(offset),
                  "traceback in stderr after SIGTERM: " + log_excerpt(daemon.log(offset)))
    else:
        code = daemon.proc.returncode if daemon.proc else None
        res.problem(f"daemon was not running at the end (exit {code}): "
                    f"{log_excerpt(daemon.log())}")
    wanted = set().union(*(f.seen_urls() for f in feeds))
    res.apply(tally(wanted, db_alerts(db), slack_posts(bench.slack),
                    db_article_urls(db)))
    gaps = {}
    for feed in feeds:
        gap = longest_gap(feed.polls(), cleared, end)
        allowed = allowed_gap(failed.get(feed.prefix, 0))
        gaps[feed.prefix] = round(gap, 1)
        if gap > allowed:
            res.problem(
                f"feed {feed.prefix!r} not polled for {gap:.0f} s after the fault cleared "
                f"(allowed {allowed:.0f} s: interval {INTERVAL:.0f} s + back-off after "
                f"{failed.get(feed.prefix, 0)} failed poll(s)); polls after the fault: "
                f"{len([t for t in feed.polls() if t > cleared])}")
    res.longest_gap = gaps.get("healthy", max(gaps.values(), default=None))
    res.notes["gaps"] = gaps
    res.fault_log_lines = fault_lines
    res.seconds = round(clock(), 1)
    _problem_tracebacks(res, daemon)


def _storage_scenario(bench: Bench, name: str, db: Path, *, inject: Callable[[], None],
                      clear: Callable[[], None], hold_after: float, busy_timeout: float = 5.0
                      ) -> None:
    """The shared shape of the disk-full and lock scenarios: the healthy feed's first
    poll is held by the server, the fault goes on, the answer is released, the poll's
    writes fail, the fault clears ``hold_after`` s later."""
    assert bench.slack is not None
    res, clock = Result(name), Clock()
    feeds = [bench.healthy, bench.wire]
    config = write_config(bench.workdir, db, [FeedEntry("Healthy", bench.healthy.url),
                                              FeedEntry("Wire", bench.wire.url)],
                          busy_timeout=busy_timeout)
    daemon = Daemon(bench.workdir, config, slack_env(bench.slack.base_url),
                    jail_log=bench.jail_log())
    bench.daemons.append(daemon)
    bench.healthy.hold_next(HOLD)
    daemon.start()
    try:
        assert wait_for(lambda: bool(bench.healthy.polls()) or not daemon.alive(), 90), \
            "the healthy feed was never polled"
        assert daemon.alive(), f"daemon died at start: {log_excerpt(daemon.log())}"
        first = bench.healthy.polls()[0]
        bench.healthy.release()
        fault_start = daemon.offset()
        inject()
        wait_for(lambda: time.monotonic() >= first + HOLD + hold_after, HOLD + hold_after + 5)
        clear()
        cleared = time.monotonic()
        res.notes["fault_seconds"] = round(cleared - first, 1)
        failed = {f.prefix: len([t for t in f.polls() if first - 1 <= t <= cleared])
                  for f in feeds}
        timeout = max(allowed_gap(n) for n in failed.values()) + 15
        _settle(bench, db, feeds, cleared, timeout)
        text = daemon.log(fault_start)
        lines = log_lines(text, STORAGE_FAULT)
        res.check(bool(lines), "no WARNING/ERROR line names the storage fault")
        skipped = log_lines(text, SKIPPED)
        limit = 3 + 2 * sum(failed.values())
        res.check(len(lines) + len(skipped) <= limit,
                  f"{len(lines) + len(skipped)} WARNING/ERROR lines for one storage fault "
                  f"(more than {limit}; {len(skipped)} of them APScheduler 'skipped: maximum "
                  "number of running instances' for the stuck drain): repeated, not once")
        lines += skipped
        _finish(res, bench, daemon, db, feeds, cleared=cleared, failed=failed,
                fault_lines=len(lines), clock=clock)
    except BaseException as exc:
        res.aborted(exc)
        raise
    finally:
        daemon.kill()
        res.save()
    res.verdict()


# --- a. read-only database ---------------------------------------------------------------


def test_a_read_only_database(bench: Bench) -> None:
    reason = fsfaults.ext4_unavailable()
    if reason:
        pytest.skip(reason)
    assert bench.slack is not None
    res, clock = Result("read-only database"), Clock()
    image = fsfaults.Ext4Image(bench.workdir / "state.img", bench.workdir / "state")
    image.create()
    image.mount()
    bench.extra.append(type("_U", (), {"close": lambda self: image.umount()})())
    db = image.mountpoint / "monitor.db"
    feeds = [bench.healthy, bench.wire]
    config = write_config(bench.workdir, db, [FeedEntry("Healthy", bench.healthy.url),
                                              FeedEntry("Wire", bench.wire.url)], lease=15)
    env = slack_env(bench.slack.base_url)
    daemon = Daemon(bench.workdir, config, env, jail_log=bench.jail_log())
    bench.daemons.append(daemon)
    bench.healthy.hold_next(HOLD)
    daemon.start()
    try:
        assert wait_for(lambda: bool(bench.healthy.polls()) or not daemon.alive(), 90)
        assert daemon.alive(), f"daemon died at start: {log_excerpt(daemon.log())}"
        first = bench.healthy.polls()[0]
        bench.healthy.release()
        # 1. the file system turns read-only under the running daemon
        fault_start = daemon.offset()
        image.fail_read_only()
        res.notes["mount_options_after_error"] = image.options()
        window = scaled(10.0, 30.0)
        wait_for(lambda: time.monotonic() >= first + HOLD + window or not daemon.alive(),
                 HOLD + window + 5)
        during = daemon.log(fault_start)
        count = tracebacks(during)
        res.check(count == 0, f"{count} traceback(s) while the database was read-only "
                              f"({window:.0f} s; drain every 1 s): {log_excerpt(during, 2)}")
        lines = log_lines(during, STORAGE_FAULT)
        res.check(bool(lines), "no WARNING/ERROR line named the read-only database")
        res.notes["exited_by_itself"] = not daemon.alive()
        rc = daemon.stop(signal.SIGTERM, timeout=30)
        res.notes["exit_during_fault"] = rc
        # 2. starting on a read-only database must be refused, with one clear line
        image.umount()
        image.repair()
        image.mount(read_only=True)
        offset = daemon.offset()
        rc_once = daemon.run_to_end("once", timeout=120)
        once_log = daemon.log(offset)
        res.notes["once_exit_on_read_only"] = rc_once
        res.check(rc_once not in (0, None),
                  f"`once` on a read-only database exited {rc_once} (expected non-zero): "
                  f"{log_excerpt(once_log) or 'no error logged'}")
        res.check(tracebacks(once_log) == 0, "`once` on a read-only database printed a "
                                             "traceback instead of one clear line")
        offset = daemon.offset()
        daemon.start("run")
        refused = wait_for(lambda: not daemon.alive(), 25)
        run_log = daemon.log(offset)
        res.notes["run_exit_on_read_only"] = daemon.proc.returncode if refused else "kept running"
        if not refused:
            res.problem("`run` started on a read-only database and was still running after "
                        "25 s (expected a one-line error and a non-zero exit)")
            daemon.stop(signal.SIGTERM, timeout=30)
        else:
            res.check(daemon.proc is not None and daemon.proc.returncode != 0,
                      "`run` on a read-only database exited 0")
            res.check(tracebacks(run_log) == 0, "`run` on a read-only database printed a "
                                                "traceback instead of one clear line")
        # 3. recovery: writable again, restart, everything catches up
        image.umount()
        image.mount()
        cleared = time.monotonic()
        daemon.start("run")
        _settle(bench, db, feeds, cleared, allowed_gap(1) + 15)
        failed = {f.prefix: len([t for t in f.polls() if first - 1 <= t <= cleared])
                  for f in feeds}
        _finish(res, bench, daemon, db, feeds, cleared=cleared, failed=failed,
                fault_lines=len(lines), clock=clock)
    except BaseException as exc:
        res.aborted(exc)
        raise
    finally:
        daemon.kill()
        res.save()
        image.umount()
    res.verdict()


# --- b. full file system -----------------------------------------------------------------


def test_b_full_filesystem(bench: Bench) -> None:
    reason = fsfaults.mount_unavailable()
    if reason:
        pytest.skip(reason)
    state = bench.workdir / "state"
    with fsfaults.tmpfs(state, "16m"):
        filler: list[Path] = []

        def inject() -> None:
            filler.append(fsfaults.fill(state))

        def clear() -> None:
            for path in filler:
                path.unlink()

        _storage_scenario(bench, "full filesystem", state / "monitor.db", inject=inject,
                          clear=clear, hold_after=scaled(4.0, 15.0))


# --- c. write lock held longer than the busy timeout -------------------------------------


def test_c_write_lock_beyond_busy_timeout(bench: Bench) -> None:
    db = bench.workdir / "monitor.db"
    hold = HOLD + scaled(4.0, 15.0)
    holder: list[fsfaults.WriteLock] = []

    def inject() -> None:
        holder.append(fsfaults.WriteLock(db, hold))
        bench.extra.append(holder[-1])

    def clear() -> None:
        holder[-1].wait_released(timeout=hold + 10)

    _storage_scenario(bench, "write lock > busy timeout", db, inject=inject, clear=clear,
                      hold_after=scaled(4.0, 15.0) - 0.5, busy_timeout=1.0)


# --- d/e. SIGTERM / SIGINT mid-drain with a backlog beyond the look-up window -----------


def _signal_mid_drain(bench: Bench, sig: signal.Signals) -> None:
    assert bench.slack is not None
    slack = bench.slack
    name = f"{sig.name} mid-drain, backlog > look-up window"
    res, clock = Result(name), Clock()
    backlog_size = int(scaled(240, 320))  # the deliverer scans the newest 200 messages
    backlog = StoryFeed(bench.server, "/backlog.xml", "backlog", initial=backlog_size,
                        tick=None, step=timedelta(seconds=20))
    feeds = [backlog, bench.healthy]
    db = bench.workdir / "monitor.db"
    lease = 40.0
    config = write_config(bench.workdir, db, [FeedEntry("Backlog", backlog.url),
                                              FeedEntry("Healthy", bench.healthy.url)],
                          lease=lease, extra="batch_size = 50")
    daemon = Daemon(bench.workdir, config, slack_env(slack.base_url), jail_log=bench.jail_log())
    bench.daemons.append(daemon)
    daemon.start()
    try:
        assert wait_for(lambda: len(slack.posted()) >= 10 or not daemon.alive(), 120), \
            f"the drain never started: {log_excerpt(daemon.log())}"
        slack.stall_next(3.0)  # the next post is accepted at once but answered 3 s later
        assert wait_for(lambda: slack.pending_failures() == 0, 30), "no post after the stall"
        time.sleep(0.3)  # the post is in flight: Slack has it, the daemon has no answer yet
        offset = daemon.offset()
        signalled = time.monotonic()
        daemon.send(sig)
        rc = daemon.wait(40)
        stop_log = daemon.log(offset)
        res.notes["posted_before_signal_restart"] = len(slack.posted())
        res.notes["stop_seconds"] = round(time.monotonic() - signalled, 1)
        if rc is None:
            res.problem(f"daemon still running 40 s after {sig.name}")
            daemon.kill()
        else:
            res.check(rc in (0, 130) if sig == signal.SIGINT else rc == 0,
                      f"exit code {rc} after {sig.name}")
        res.check(tracebacks(stop_log) == 0,
                  f"traceback(s) in stderr after {sig.name}: {log_excerpt(stop_log, 2)}")
        in_flight = [a for a in db_alerts(db) if a.status == "in_flight"]
        res.notes["in_flight_after_stop"] = len(in_flight)
        # restart and let it finish, including the look-up of whatever was in flight
        restarted = time.monotonic()
        daemon.start()
        _settle(bench, db, feeds, restarted, lease + backlog_size / 5 + 60)
        wait_for(lambda: False, 2.0)  # two more drains: nothing further may be posted
        _finish(res, bench, daemon, db, feeds, cleared=restarted, failed={}, fault_lines=0,
                clock=clock)
        res.notes["backlog"] = backlog_size
    except BaseException as exc:
        res.aborted(exc)
        raise
    finally:
        daemon.kill()
        res.save()
    res.verdict()


def test_d_sigterm_mid_drain(bench: Bench) -> None:
    _signal_mid_drain(bench, signal.SIGTERM)


def test_e_sigint_mid_drain(bench: Bench) -> None:
    _signal_mid_drain(bench, signal.SIGINT)


# --- f. Slack refusing connections, then answering 500, then recovering ------------------


SLACK_FAULT = r"(?i) (WARNING|ERROR|CRITICAL) .*(slack|alert .* failed|deliver)"
SLACK_RECOVERED = r"(?i)(slack.*(recover|reachable|again|back))|((recover|reachable|again).*slack)"
def prompt_after_recovery(waiting: int) -> float:
    """Seconds from Slack's recovery to the last waiting alert delivered: at most one
    probe interval (``alerts.max_backoff_seconds``, default 30 s), then the backlog at
    the paced rate (1 message/s after a burst of 10), plus a drain interval and slack."""
    from monitor.settings import AlertSettings

    defaults = AlertSettings()
    paced = max(0, waiting - defaults.pace_burst) / defaults.pace_per_second
    return defaults.max_backoff_seconds + paced + 5.0


def test_f_slack_outage(bench: Bench) -> None:
    assert bench.slack is not None
    bench.slack.close()
    bench.slack = None
    res, clock = Result("Slack refused, 500, recovered"), Clock()
    port = free_port()
    db = bench.workdir / "monitor.db"
    feeds = [bench.healthy, bench.wire]
    config = write_config(bench.workdir, db, [FeedEntry("Healthy", bench.healthy.url),
                                              FeedEntry("Wire", bench.wire.url)])
    daemon = Daemon(bench.workdir, config, slack_env(f"http://127.0.0.1:{port}/api/"),
                    jail_log=bench.jail_log())
    bench.daemons.append(daemon)
    phase = scaled(10.0, 30.0)
    daemon.start()
    try:
        assert daemon.wait_for_log(r"scheduler started", 90), log_excerpt(daemon.log())
        outage_start = daemon.offset()
        wait_for(lambda: not daemon.alive(), phase)  # 1. nothing listens: refused
        slack = start_slack(port)  # 2. Slack answers, but only 500
        bench.slack = slack
        slack.fail_next(1_000_000, status=500)
        wait_for(lambda: not daemon.alive(), phase)
        waiting = {a.id: a for a in db_alerts(db) if a.status != "sent"}
        slack.clear_failures()  # 3. recovered
        recovered_wall, recovered = time.time(), time.monotonic()
        outage_end = daemon.offset()
        _settle(bench, db, feeds, recovered, 120)
        posts = slack_posts(slack)
        waited = [p for p in posts if p.alert_id in waiting]
        res.notes["waiting_at_recovery"] = len(waiting)
        if waited:
            lag = max(p.ts for p in waited) - recovered_wall
            res.notes["recovery_to_last_delivery_s"] = round(lag, 1)
            allowed = prompt_after_recovery(len(waiting))
            res.check(lag <= allowed, f"the {len(waiting)} waiting alerts took {lag:.0f} s after "
                                      f"Slack recovered (allowed {allowed:.0f} s)")
            # Parents go out oldest first; a story's replies follow their parent by design.
            order = [waiting[p.alert_id].published_at
                     for p in sorted(waited, key=lambda p: p.ts) if not p.reply]
            inversions = sum(1 for a, b in itertools.pairwise(order) if b < a)
            res.notes["order_inversions"] = inversions
            res.check(inversions == 0, f"waiting stories not posted in publication order "
                                       f"({inversions} inversion(s))")
        else:
            res.problem("no alert was waiting when Slack recovered: the outage did not bite")
        text = daemon.log(outage_start, outage_end)
        lines = log_lines(text, SLACK_FAULT)
        res.check(bool(lines), "no log line said Slack was unreachable")
        res.check(len(lines) <= 4, f"{len(lines)} WARNING/ERROR lines about one Slack outage "
                                   f"for {len(waiting)} alerts (expected one when it becomes "
                                   f"unreachable, not one per alert per attempt)")
        recovered_lines = log_lines(daemon.log(outage_end), SLACK_RECOVERED)
        res.check(bool(recovered_lines), "no log line said Slack was reachable again")
        _finish(res, bench, daemon, db, feeds, cleared=recovered, failed={},
                fault_lines=len(lines) + len(recovered_lines), clock=clock)
    except BaseException as exc:
        res.aborted(exc)
        raise
    finally:
        daemon.kill()
        res.save()
    res.verdict()


# --- g. redirects to internal addresses ---------------------------------------------------


def test_g_redirect_to_internal_addresses(bench: Bench) -> None:
    """No packet leaves loopback: the daemon runs in the suite's net jail, which hands
    connections to 169.254.169.254:80 and 10.0.0.1:80 to a loopback stand-in (so an
    unfixed daemon fetches *something*, and the test sees it) and refuses the rest."""
    assert bench.slack is not None
    from tests.support.feed_server import TimedServer

    res, clock = Result("redirects to internal addresses"), Clock()
    trap = TimedServer().start()
    bench.extra.append(trap)
    trap.add_file("/latest/meta-data/iam/security-credentials/", b"AKIA-not-a-real-secret",
                  content_type="text/plain")
    trap.add_file("/feed.xml", b'<?xml version="1.0"?><rss version="2.0"><channel><title>'
                  b"intranet</title><item><title>Canteen menu</title><link>"
                  b"https://intranet.example/menu</link></item></channel></rss>")
    trap.add_file("/admin/feed.xml", b'<?xml version="1.0"?><rss version="2.0"><channel>'
                  b"<title>admin</title></channel></rss>")
    trap_port = int(trap.base_url.rsplit(":", 1)[1])
    server = bench.server
    meta_target = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
    intranet_target = "http://10.0.0.1/feed.xml"
    admin_target = f"http://127.0.0.1:{trap_port}/admin/feed.xml"
    moved = StoryFeed(server, "/new-home.xml", "moved", initial=2, tick=None)
    urls = {
        "Metadata": server.add_redirect("/meta.xml", meta_target, 302),
        "Intranet": server.add_redirect("/intranet.xml", intranet_target, 301),
        "LocalAdmin": server.add_redirect("/admin.xml", admin_target, 302),
        "Moved": server.add_redirect("/old-home.xml", "/new-home.xml", 301),
    }
    db = bench.workdir / "monitor.db"
    feeds = [bench.healthy, moved]
    config = write_config(bench.workdir, db, [
        FeedEntry("Healthy", bench.healthy.url),
        *(FeedEntry(name, url) for name, url in urls.items()),
    ])
    jail_map = f"169.254.169.254:80=127.0.0.1:{trap_port},10.0.0.1:80=127.0.0.1:{trap_port}"
    daemon = Daemon(bench.workdir, config, slack_env(bench.slack.base_url),
                    jail_log=bench.jail_log(), connect_map=jail_map)
    bench.daemons.append(daemon)
    daemon.start()
    try:
        bad = ("/meta.xml", "/intranet.xml", "/admin.xml")
        assert wait_for(lambda: all(server.hits(p) for p in bad) or not daemon.alive(), 90), \
            f"the redirecting feeds were not polled: {log_excerpt(daemon.log())}"
        started = bench.healthy.polls()[0] if bench.healthy.polls() else time.monotonic()
        # the healthy feed keeps its schedule meanwhile: two more polls
        wait_for(lambda: len(bench.healthy.polls()) >= 3 or not daemon.alive(),
                 2 * INTERVAL * 1.1 + 20)
        _settle(bench, db, feeds, started, 30)
        attempts = daemon.jail_attempts()
        res.notes["non_loopback_connects"] = attempts
        res.check(not attempts, f"the daemon tried to connect beyond loopback "
                                f"({len(attempts)} attempt(s), stopped by the test's net jail): "
                                + "; ".join(a.split(" ", 2)[-1] for a in attempts[:4]))
        trap_hits = [p for _, p in trap.arrivals]
        res.check(not trap_hits, f"the internal stand-in servers were fetched: {trap_hits[:4]}")
        intranet = db_feed(db, "Intranet") or {}
        res.notes["intranet_moved_to"] = intranet.get("moved_to")
        res.check("10.0.0.1" not in str(intranet.get("moved_to") or ""),
                  f"the 301 to the private address was saved as the feed's new home "
                  f"(moved_to={intranet.get('moved_to')})")
        lines = []
        for name, target in (("Metadata", "169.254.169.254"), ("Intranet", "10.0.0.1"),
                             ("LocalAdmin", f"127.0.0.1:{trap_port}")):
            named = [ln for ln in daemon.log().splitlines() if name in ln and target in ln]
            lines += named
            res.check(bool(named), f"no log line says why feed {name!r} was refused "
                                   f"(one naming {target} expected)")
        _finish(res, bench, daemon, db, feeds, cleared=started, failed={},
                fault_lines=len(lines), clock=clock)
        res.check((db_feed(db, "Moved") or {}).get("moved_to") == server.url("/new-home.xml"),
                  "the same-host 301 was not followed and saved")
    except BaseException as exc:
        res.aborted(exc)
        raise
    finally:
        daemon.kill()
        res.save()
    res.verdict()

