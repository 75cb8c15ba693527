"""Operations through the real CLI: `feeds` and `status` show every condition, `feeds add` /
`feeds disable` edit the config safely, read-only commands never create a database and never
import scikit-learn, usage errors exit 2, bad input never loses good output, one line per
error unless --debug, and `check-config` runs the checks `run` does.

Commands run in-process through ``main`` where only the output matters, and as real
subprocesses where the process itself is the point (imports, closed pipes, tracebacks).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor import feedview
from monitor.cli import main
from monitor.feeds import FAILURE_FLAG_PREFIX, STALE_FLAG_PREFIX
from monitor.models import FeedState
from monitor.settings import load_settings
from monitor.store.sqlite import SqliteStore
from tests.support.configs import write_config

REPO = Path(__file__).resolve().parent.parent
REPLAY = REPO / "examples" / "replay" / "world_desk.xml"
NOW = datetime.now(UTC).replace(microsecond=0)

FEEDS = {
    "Healthy": "https://healthy.example/rss",
    "Stale": "https://stale.example/rss",
    "Failing": "https://failing.example/rss",
    "Moved": "https://moved.example/rss",
    "Gone": "https://gone.example/rss",
    "Fresh": "https://fresh.example/rss",
}


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m monitor ARGS`` as a real process, with the HTTP endpoints off."""
    full_env = {**os.environ, "MONITOR_HTTP_LISTEN": "off", **(env or {})}
    for key in ("MONITOR_CONFIG", "SLACK_BOT_TOKEN", "SLACK_CHANNEL", "SLACK_APP_TOKEN",
                "SLACK_WEBHOOK_URL", "MONITOR_LOG_FORMAT"):
        if key not in (env or {}):
            full_env.pop(key, None)
    return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True,
                          text=True, env=full_env, cwd=cwd or REPO, input=stdin, timeout=120)


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    """A config of six feeds and a database where each is in a different condition."""
    config = write_config(tmp_path, FEEDS, sections="")
    text = config.read_text().replace('name = "Fresh"', 'name = "Fresh"\nenabled = false')
    config.write_text(text)
    store = SqliteStore(tmp_path / "state.db")
    store.migrate()
    base = dict(polls=5, last_success_at=NOW - timedelta(hours=1),
                last_attempt_at=NOW - timedelta(minutes=5), next_poll_at=NOW + timedelta(minutes=5))
    store.save_feed_states([
        FeedState(name="Healthy", url=FEEDS["Healthy"], **base),
        FeedState(name="Stale", url=FEEDS["Stale"], flagged=f"{STALE_FLAG_PREFIX} no new item "
                  "for 20 days", **base),
        FeedState(name="Failing", url=FEEDS["Failing"], consecutive_errors=12, error_count=12,
                  last_error="http_status: HTTP 500", flagged=f"{FAILURE_FLAG_PREFIX} 12 "
                  "consecutive failures", **base),
        FeedState(name="Moved", url=FEEDS["Moved"], moved_to="https://new.example/rss", **base),
        FeedState(name="Gone", url=FEEDS["Gone"], disabled="410 Gone at 2025-01-01 10:00 UTC",
                  consecutive_errors=1, error_count=1, last_error="http_status: HTTP 410",
                  **{**base, "last_attempt_at": NOW - timedelta(minutes=1)}),
    ])
    store.close()
    return config


def test_flag_prefixes_match_the_lifecycle() -> None:
    """feedview keeps its own copy (importing lifecycle would pull httpx into `feeds`)."""
    assert (feedview.FAILURE_FLAG_PREFIX, feedview.STALE_FLAG_PREFIX) == (
        FAILURE_FLAG_PREFIX, STALE_FLAG_PREFIX)


def test_feeds_shows_every_condition(fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["feeds", "--config", str(fleet)]) == 0
    lines = {line.split(":", 1)[0]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["Healthy"].startswith("Healthy: healthy polls=5")
    assert "Stale: stale " in lines["Stale"] and "no new item for 20 days" in lines["Stale"]
    assert "Failing: failing " in lines["Failing"] and "last_error=http_status" in lines["Failing"]
    assert "Moved: moved " in lines["Moved"]
    assert "moved_to=https://new.example/rss" in lines["Moved"]
    assert "Gone: gone" in lines["Gone"] and "next_poll=never" in lines["Gone"]
    assert "410 Gone" in lines["Gone"]
    assert lines["Fresh"].startswith("Fresh: off")
    for name, url in FEEDS.items():
        assert f"url={url}" in lines[name]


def test_feeds_table_on_a_terminal(fleet: Path) -> None:
    """The rich table (what a person at a terminal sees) names every condition too."""
    import io

    settings = load_settings(fleet, env={})
    store = SqliteStore(fleet.parent / "state.db")
    states = {s.name: s for s in store.all_feed_states()}
    store.close()
    out = io.StringIO()
    feedview.print_feeds(feedview.feed_health(settings.feeds, states), out, rich_table=True,
                         width=200)
    table = out.getvalue()
    for word in ("healthy", "stale", "failing", "moved", "gone", "off", "new.example",
                 "never (410)"):
        assert word in table


def test_status_counts_feeds_alerts_model_and_last_cycle(fleet: Path) -> None:
    done = run_cli("status", "--config", str(fleet))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "feeds: 6 configured, 5 enabled" in out
    for condition in ("healthy", "stale", "failing", "moved", "gone", "off"):
        assert f"  {condition}: 1" in out
    assert "alerts: 0 pending, 0 in flight, 0 failed, 0 sent" in out
    meta = json.loads((REPO / "classifiers" / "models" / "default.json").read_text())
    assert f"model: {meta['model_version']}, threshold {meta['threshold']:.3f}" in out
    assert f"last_cycle: {(NOW - timedelta(minutes=1)).isoformat()}" in out


def test_status_table_on_a_terminal(fleet: Path) -> None:
    import io

    settings = load_settings(fleet, env={})
    store = SqliteStore(fleet.parent / "state.db")
    states = {s.name: s for s in store.all_feed_states()}
    store.close()
    view = feedview.status_view(feedview.feed_health(settings.feeds, states),
                                {"pending": 2, "failed": 1}, model_version="m-1",
                                threshold=0.5, threshold_source="classifier.threshold",
                                database="state.db")
    out = io.StringIO()
    feedview.print_status(view, out, rich_table=True)
    table = out.getvalue()
    for text in ("2 pending", "1 failed", "m-1, threshold 0.500 (classifier.threshold)",
                 "gone", "stale", "failing"):
        assert text in table


def test_read_only_commands_never_create_a_database(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"Desk": REPLAY.as_uri()})
    for command in (["articles"], ["stories"], ["outbox"], ["mutes"], ["feeds"], ["status"]):
        done = run_cli(*command, "--config", str(config))
        assert done.returncode == 0, (command, done.stderr)
        assert done.stderr == "", (command, done.stderr)
    assert "no database at" in run_cli("articles", "--config", str(config)).stdout
    assert not (tmp_path / "state.db").exists()
    assert list(tmp_path.iterdir()) == [config]


def test_articles_says_so_on_an_empty_database(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, {"Desk": REPLAY.as_uri()})
    SqliteStore(tmp_path / "state.db").migrate()
    assert main(["articles", "--config", str(config)]) == 0
    assert "no articles stored yet" in capsys.readouterr().out


def test_read_only_commands_do_not_import_scikit_learn(fleet: Path) -> None:
    probe = (
        "import sys\n"
        "from monitor.cli import main\n"
        "for command in ('articles', 'stories', 'feeds', 'status', 'outbox', 'mutes'):\n"
        "    assert main([command, '--config', sys.argv[1]]) == 0\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'sklearn', 'scipy', 'numpy', 'skops', 'aiohttp', 'httpx', 'apscheduler'})\n"
        "heavy += [m for m in ('monitor.app',) if m in sys.modules]\n"
        "print(heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, str(fleet)], capture_output=True,
                          text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_feeds_add_and_disable_edit_the_config_safely(tmp_path: Path) -> None:
    for name in ("monitor.toml", "keywords.toml"):
        shutil.copy(REPO / "config" / name, tmp_path / name)
    config = tmp_path / "monitor.toml"
    before = load_settings(config, env={})
    done = run_cli("feeds", "add", "https://www.new-outlet.example/feed.xml", "--config",
                   str(config))
    assert done.returncode == 0, done.stderr
    after = load_settings(config, env={})
    assert len(after.feeds) == len(before.feeds) + 1
    added = after.feeds[-1]
    assert (added.name, added.url) == ("new-outlet.example",
                                       "https://www.new-outlet.example/feed.xml")
    assert "# Default configuration" in config.read_text()  # comments kept
    again = run_cli("feeds", "add", "https://www.new-outlet.example/feed.xml", "--name", "X",
                    "--config", str(config))
    assert again.returncode == 0 and "already" in again.stdout
    assert len(load_settings(config, env={}).feeds) == len(after.feeds)

    target = before.feeds[0].name
    assert run_cli("feeds", "disable", target, "--config", str(config)).returncode == 0
    disabled = {f.name: f for f in load_settings(config, env={}).feeds}
    assert disabled[target].enabled is False
    assert all(f.enabled == disabled[f.name].enabled for f in after.feeds if f.name != target)
    assert "already disabled" in run_cli("feeds", "disable", target, "--config",
                                         str(config)).stdout


def test_feeds_add_refuses_a_bad_url_and_leaves_the_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"Desk": REPLAY.as_uri()})
    before = config.read_bytes()
    done = run_cli("feeds", "add", "ftp://x.example/feed", "--config", str(config))
    assert done.returncode == 2 and "not a feed URL" in done.stderr
    missing = run_cli("feeds", "disable", "Nope", "--config", str(config))
    assert missing.returncode == 2 and "no feed named 'Nope'" in missing.stderr
    assert config.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["monitor.toml"]  # no temp file left


def test_disable_existing_enabled_key_in_place(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"A": "https://a.example/rss", "B": "https://b.example/rss"})
    config.write_text(config.read_text().replace('name = "B"', 'name = "B"\nenabled = true  # x'))
    assert run_cli("feeds", "disable", "B", "--config", str(config)).returncode == 0
    text = config.read_text()
    assert text.count("\nenabled =") == 1 and "\nenabled = false  # disabled with" in text
    feeds = {f.name: f.enabled for f in load_settings(config, env={}).feeds}
    assert feeds == {"A": True, "B": False}


@pytest.mark.parametrize("argv", [
    ["score", "--threshold", "5"],
    ["score", "--threshold", "-0.1"],
    ["eval", "--data", "x.jsonl", "--threshold", "1.5"],
    ["mutes", "remove"],
    ["feeds", "import-opml"],
    ["feeds", "add"],
    ["no-such-command"],
])
def test_usage_errors_exit_2(argv: list[str], tmp_path: Path) -> None:
    config = write_config(tmp_path, {"Desk": REPLAY.as_uri()})
    done = run_cli(*argv, "--config", str(config))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr


def test_score_keeps_every_valid_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"Desk": REPLAY.as_uri()})
    lines = [json.dumps({"id": "a", "title": "North Korea ships shells to Russia"}),
             "{not json",
             json.dumps({"id": "c"}),
             json.dumps({"id": "d", "title": "Typhoon hits Okinawa"})]
    stdin = "\n".join(lines) + "\n"
    done = run_cli("score", "--config", str(config), stdin=stdin)
    assert done.returncode == 1
    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert [o.get("id") for o in out] == ["a", None, None, "d"]
    assert out[0]["match"] is True and out[3]["match"] is False
    assert out[1]["line"] == 2 and "not valid JSON" in out[1]["error"]
    assert out[2]["line"] == 3 and "'title'" in out[2]["error"]
    assert "2 unusable line(s)" in done.stderr

    skipped = run_cli("score", "--skip-invalid", "--config", str(config), stdin=stdin)
    assert skipped.returncode == 0
    assert [json.loads(line)["id"] for line in skipped.stdout.splitlines()] == ["a", "d"]


@pytest.mark.skipif(shutil.which("head") is None, reason="needs head(1)")
def test_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`check-config | head -1`: no BrokenPipeError traceback, exit 0."""
    env = {**os.environ, "MONITOR_HTTP_LISTEN": "off"}
    env.pop("MONITOR_CONFIG", None)
    done = subprocess.run(
        f"'{sys.executable}' -m monitor check-config | head -c 10 >/dev/null; "
        "echo \"rc=${PIPESTATUS[0]}\"",
        shell=True, executable="/bin/bash", capture_output=True, text=True, cwd=tmp_path,
        env=env, timeout=120)
    assert "rc=0" in done.stdout
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


def test_errors_are_one_line_and_debug_shows_the_traceback(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"Desk": REPLAY.as_uri()})
    missing = str(tmp_path / "absent.jsonl")
    plain = run_cli("eval", "--data", missing, "--config", str(config))
    assert plain.returncode == 1
    assert plain.stderr.strip().count("\n") == 0 and "cannot read" in plain.stderr
    debug = run_cli("--debug", "eval", "--data", missing, "--config", str(config))
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_eval_plot_without_matplotlib_is_one_line(tmp_path: Path) -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("matplotlib is installed here; the message is for installs without it")
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"title": "North Korea ships shells to Russia", "label": 1}) + "\n")
    config = write_config(tmp_path, {"Desk": REPLAY.as_uri()})
    done = run_cli("eval", "--data", str(data), "--plot", str(tmp_path / "pr.png"),
                   "--config", str(config))
    assert done.returncode == 2
    assert "matplotlib" in done.stderr and "Traceback" not in done.stderr


# --- check-config runs the checks `run` does ------------------------------------------------
def test_check_config_passes_a_good_config(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"Desk": REPLAY.as_uri()})
    done = run_cli("check-config", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert "ok: `run` would start" in done.stdout
    assert not (tmp_path / "state.db").exists()


def test_check_config_refuses_what_run_would_refuse(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"Desk": (tmp_path / "missing.xml").as_uri()})
    model = tmp_path / "nope.skops"
    config.write_text(config.read_text().replace(
        "[classifier]\n", f'[classifier]\nmodel_path = "{model}"\n'))
    done = run_cli("check-config", "--config", str(config))
    assert done.returncode == 2
    assert "model:" in done.stderr and "nope" in done.stderr
    assert "missing.xml does not exist" in done.stderr
    once = run_cli("once", "--config", str(config))
    assert once.returncode == 2 and "model:" in once.stderr


def test_check_config_and_run_refuse_fulltext_without_trafilatura(tmp_path: Path) -> None:
    """An install without the [fulltext] extra: a module that fails to import stands in."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "trafilatura.py").write_text("raise ImportError('No module named trafilatura')\n")
    config = write_config(tmp_path, {"Desk": REPLAY.as_uri()},
                          sections="[fulltext]\nenabled = true\n")
    env = {"PYTHONPATH": f"{shadow}{os.pathsep}{REPO}"}
    done = run_cli("check-config", "--config", str(config), env=env)
    assert done.returncode == 2 and "trafilatura" in done.stderr
    once = run_cli("once", "--config", str(config), env=env)
    assert once.returncode == 2 and "trafilatura" in once.stderr


def test_check_config_refuses_an_invalid_keyword_file(tmp_path: Path) -> None:
    keywords = tmp_path / "keywords.toml"
    keywords.write_text("[dprk]\naliases = 3\n")
    config = write_config(tmp_path, {"Desk": REPLAY.as_uri()})
    config.write_text(config.read_text().replace(
        str(REPO / "config" / "keywords.toml"), str(keywords)))
    done = run_cli("check-config", "--config", str(config))
    assert done.returncode == 2 and "keyword file" in done.stderr


def test_edited_keywords_are_flagged_by_check_config_and_once(tmp_path: Path) -> None:
    keywords = tmp_path / "keywords.toml"
    keywords.write_text((REPO / "config" / "keywords.toml").read_text()
                        + "\n# an analyst's edit\n")
    config = write_config(tmp_path, {"Desk": REPLAY.as_uri()})
    config.write_text(config.read_text().replace(
        str(REPO / "config" / "keywords.toml"), str(keywords)))
    done = run_cli("check-config", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert "warning:" in done.stderr and "changed since model" in done.stderr
    once = run_cli("once", "--config", str(config))
    assert once.returncode == 0, once.stderr
    assert "changed since model" in once.stderr
    keywords.write_bytes((REPO / "config" / "keywords.toml").read_bytes())
    unchanged = run_cli("check-config", "--config", str(config))
    assert unchanged.returncode == 0 and "changed since model" not in unchanged.stderr


def test_once_exit_codes_are_documented() -> None:
    """Exit 3 (storage) and 4 (every feed failed) are tested in test_store_faults.py and
    test_daemon_politeness.py; the README must name both for cron users."""
    readme = " ".join((REPO / "README.md").read_text().split())
    assert "3 (`once`) some of the cycle could not be stored" in readme
    assert "4 (`once`) every enabled feed failed" in readme


def test_once_exits_3_when_the_database_refuses_the_cycle(tmp_path: Path) -> None:
    """The feed server takes SQLite's write lock while it answers (after `once` proved the
    database writable at start-up), so the poll's records cannot be written: exit 3."""
    import sqlite3
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    database = tmp_path / "state.db"
    holder: list[sqlite3.Connection] = []
    body = REPLAY.read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if not holder:
                conn = sqlite3.connect(database, isolation_level=None,
                                       check_same_thread=False)
                conn.execute("BEGIN EXCLUSIVE")
                holder.append(conn)
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        config = write_config(tmp_path, {"Desk": f"http://127.0.0.1:{server.server_port}/rss"},
                              sections="[fetch]\nallow_internal_hosts = [\"127.0.0.1\"]\n")
        config.write_text(config.read_text().replace(
            "[storage]\n", "[storage]\nbusy_timeout_seconds = 0.5\n"))
        done = run_cli("once", "--config", str(config))
    finally:
        server.shutdown()
        server.server_close()
        for conn in holder:
            conn.close()  # rolls the exclusive transaction back
    assert holder, done.stderr  # the lock was really taken during the poll
    assert done.returncode == 3, done.stderr
    assert "storage operation(s) failed" in done.stderr
