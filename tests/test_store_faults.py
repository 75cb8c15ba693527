"""A broken database: clear one-line errors, no start on an unwritable file, no silenced feed.

Faults are real: a file that is not a database, a write lock held by another
connection, a read-only and a full file system (a small tmpfs mounted by the test,
which needs root; those tests are skipped elsewhere).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.app import open_store
from monitor.errors import StoreError
from monitor.feeds import FeedStates
from monitor.models import Feed
from monitor.settings import load_settings
from monitor.store.sqlite import SqliteStore
from tests.support.configs import write_config
from tests.support.feed_server import FeedServer
from tests.test_poll_bookkeeping import DESK, _poll

REPO = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "2m") -> Iterator[Path]:
    """A small tmpfs at ``path`` (root only), unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount(path: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True)


def test_a_file_that_is_not_a_database_is_one_line(tmp_path: Path) -> None:
    bogus = tmp_path / "monitor.db"
    bogus.write_bytes(b"this is a text file, not SQLite" * 100)
    with pytest.raises(StoreError) as info:
        SqliteStore(bogus).migrate()
    message = str(info.value)
    assert "\n" not in message and "not a database" in message
    assert "storage.database_url" in message


def test_an_unmakeable_folder_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError) as info:
        SqliteStore(blocker / "state" / "monitor.db")
    assert "cannot open SQLite database" in str(info.value) and "\n" not in str(info.value)


def test_a_lock_longer_than_the_busy_timeout_names_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "monitor.db"
    store = SqliteStore(path, busy_timeout=0.1)
    store.migrate()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreError) as info:
            store.check_writable()
        assert "locked" in str(info.value) and "busy_timeout_seconds" in str(info.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    store.check_writable()  # the lock is gone: works again on the same connection
    store.close()


def test_read_only_database_refuses_to_start_then_reopens_once_fixed(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt") as mnt:
        config = write_config(tmp_path, {"desk": "file:///nonexistent.xml"})
        config.write_text(config.read_text().replace(
            f"sqlite:///{tmp_path}/state.db", f"sqlite:///{mnt}/state.db"))
        settings = load_settings(config, env={})
        open_store(settings).close()  # created while writable
        remount(mnt, "ro")
        with pytest.raises(StoreError) as info:
            open_store(settings)
        assert "read-only" in str(info.value) and "\n" not in str(info.value)
        # The CLI says it in one line and exits 1, no traceback.
        done = subprocess.run([sys.executable, "-m", "monitor", "once", "--config", str(config)],
                              capture_output=True, text=True, cwd=REPO, check=False,
                              env={"PATH": "/usr/bin:/bin"})
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr and "read-only" in done.stderr
        remount(mnt, "rw")
        store = open_store(settings)  # fixed: starts again
        store.reopen()
        store.check_writable()
        store.close()


def test_a_full_disk_reports_the_real_cause(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt", size="400k") as mnt:
        store = SqliteStore(mnt / "state.db")
        store.migrate()
        filler = mnt / "filler"
        with contextlib.suppress(OSError), filler.open("wb") as out:
            while True:
                out.write(b"\0" * 4096)
                out.flush()
        big = "x" * 200_000
        with pytest.raises(StoreError) as info:
            for i in range(50):
                with store._tx() as conn:
                    conn.execute("INSERT INTO store_heartbeat (id, written_at) VALUES (1, ?) "
                                 "ON CONFLICT(id) DO UPDATE SET written_at = ?",
                                 (big + str(i), big + str(i)))
        message = str(info.value)
        assert "full" in message and "cannot rollback" not in message, message
        filler.unlink()
        store.check_writable()
        store.close()


async def test_a_poll_whose_outcome_cannot_be_saved_is_still_re_armed(tmp_path: Path) -> None:
    from monitor.classify import ArticleClassifier

    classifier = ArticleClassifier.load(None)
    path = tmp_path / "m.db"
    store = SqliteStore(path, busy_timeout=0.05)
    store.migrate()
    at = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    with FeedServer() as server:
        feed = Feed(f"desk-{uuid.uuid4().hex[:6]}", server.add_file("/desk.xml", DESK),
                    interval_seconds=30)
        states = FeedStates(store)
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            reports = [await _poll(feed, store, classifier, states,
                                   at=at + timedelta(minutes=i)) for i in range(4)]
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        for i, report in enumerate(reports):
            assert report.store_error is not None and "locked" in report.store_error
            assert report.next_poll_at is not None, "a failed save must still re-arm the feed"
            delay = (report.next_poll_at - (at + timedelta(minutes=i))).total_seconds()
            # the failure back-off of a 30 s feed, growing with each unsaved poll
            assert 30 <= delay <= 30 * 2 ** (i + 1), (i, delay)
            assert "next try" in (report.error or "")
        # Once the lock is gone the same poll records everything.
        report = await _poll(feed, store, classifier, states, at=at + timedelta(minutes=10))
        assert report.store_error is None and report.new_items > 0
        assert store.get_feed_state(feed.name) is not None
    store.close()
    await asyncio.sleep(0)
