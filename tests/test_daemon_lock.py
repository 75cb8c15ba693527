"""One daemon per SQLite database, with real processes: a second `run` (or `once`) on the same
file refuses to start and names the first; the lock dies with its process, so after
``kill -9`` the next start succeeds; read-only commands never take it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.daemonlock import DaemonLock, DaemonLockedError, lock_path_for
from tests.support.configs import write_config
from tests.support.processes import alive, wait_until

REPO = Path(__file__).resolve().parent.parent
REPLAY = REPO / "examples" / "replay" / "world_desk.xml"


def _env() -> dict[str, str]:
    env = {**os.environ, "MONITOR_HTTP_LISTEN": "off"}
    for key in ("MONITOR_CONFIG", "SLACK_BOT_TOKEN", "SLACK_CHANNEL", "SLACK_APP_TOKEN",
                "SLACK_WEBHOOK_URL", "MONITOR_DATABASE_URL"):
        env.pop(key, None)
    return env


def _start_daemon(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as err:
        return subprocess.Popen([sys.executable, "-m", "monitor", "run", "--config", str(config)],
                                cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor", *args], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path, {"Desk": REPLAY.as_uri()},
                        sections="[schedule]\ndefault_interval_seconds = 3600\n"
                                 "[digest]\nenabled = false\n")


def _ready(log: Path) -> bool:
    return "scheduler started" in log.read_text(errors="replace")


def test_second_daemon_refuses_and_kill_9_leaves_no_stale_lock(config: Path,
                                                              tmp_path: Path) -> None:
    first = _start_daemon(config, tmp_path / "first.log")
    try:
        assert wait_until(lambda: _ready(tmp_path / "first.log"), timeout=90), (
            (tmp_path / "first.log").read_text())
        record = json.loads(lock_path_for(tmp_path / "state.db").read_text())
        assert record["pid"] == first.pid

        second = _run("run", "--config", str(config))
        assert second.returncode == 1
        message = second.stderr.strip()
        assert message.count("\n") == 0, message
        assert f"another monitor daemon (pid {first.pid}, started {record['started_at']})" \
            in message
        assert "stop it first or point storage.database_url" in message

        once = _run("once", "--config", str(config))
        assert once.returncode == 1 and "another monitor daemon" in once.stderr

        # Readers do not take the lock.
        assert _run("articles", "--config", str(config)).returncode == 0
        assert _run("status", "--config", str(config)).returncode == 0

        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=30)
    assert not alive(first.pid)

    third = _start_daemon(config, tmp_path / "third.log")
    try:
        assert wait_until(lambda: _ready(tmp_path / "third.log"), timeout=90), (
            (tmp_path / "third.log").read_text())
        assert "another monitor daemon" not in (tmp_path / "third.log").read_text()
        third.send_signal(signal.SIGTERM)
        assert third.wait(timeout=60) == 0
    finally:
        if third.poll() is None:
            os.killpg(third.pid, signal.SIGKILL)
            third.wait(timeout=30)
    # A clean stop empties the record; the file stays (removing it would race).
    assert lock_path_for(tmp_path / "state.db").read_text() == ""
    assert _run("once", "--config", str(config)).returncode == 0


def test_lock_in_one_process_is_exclusive_and_released(tmp_path: Path) -> None:
    database = tmp_path / "sub" / "m.db"
    with DaemonLock(database) as held:
        assert held.held and lock_path_for(database).exists()
        with pytest.raises(DaemonLockedError, match=f"pid {os.getpid()}"):
            DaemonLock(database).acquire()
    again = DaemonLock(database)
    again.acquire()
    again.release()
    again.release()  # idempotent
