"""One writing monitor per SQLite database: an advisory lock next to the file.

Two daemons on one database both poll every feed, both queue the same alerts
(the store rejects the second copy, but only after both fetched and scored), and
each daemon's in-memory feed states (``monitor.feeds.statecache``) silently
overwrite the other's. So ``run`` and ``once`` take an exclusive ``flock`` on
``<database>.lock`` for as long as they live, and a second one refuses to start.

``flock`` rather than a pid file: the kernel releases it when the process ends
in any way, ``kill -9`` and power loss included, so there is never a stale lock
to clean up. The file's content (pid, start time) is only there for the message;
the lock itself is what counts. Parser and classifier workers are started by a
forkserver (exec, only chosen descriptors passed), so they never inherit it.
Read-only CLI commands do not take it.

PostgreSQL has no such lock: there several daemons are the point, and they share
the work through leases in the database (``monitor.claims``), which also let a
killed daemon's feeds pass to the others.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from monitor.errors import MonitorError

__all__ = ["DaemonLock", "DaemonLockedError", "lock_path_for"]


class DaemonLockedError(MonitorError):
    """Another live process holds the database's daemon lock."""


def lock_path_for(database_path: str | Path) -> Path:
    """``state/monitor.db`` → ``state/monitor.db.lock`` (beside it, so it follows the file)."""
    return Path(f"{database_path}.lock")


class DaemonLock:
    """An exclusive, non-blocking lock held from ``acquire`` until ``release`` (or death).

    ``database_url`` is named in the message so the operator sees which setting to
    change; ``database_path`` is the SQLite file.
    """

    def __init__(self, database_path: str | Path, *, database_url: str | None = None) -> None:
        self.path = lock_path_for(database_path)
        self.database = str(database_path)
        self.database_url = database_url or self.database
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise ``DaemonLockedError`` naming the holder; ``OSError`` if
        the lock file cannot be created (the directory is not writable: the database
        could not be written either)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe_holder(fd)
            os.close(fd)
            raise DaemonLockedError(
                f"another monitor daemon ({holder}) is using {self.database}; stop it first "
                "or point storage.database_url (MONITOR_DATABASE_URL) elsewhere"
            ) from None
        except OSError:
            os.close(fd)
            raise
        started = datetime.now(UTC).isoformat(timespec="seconds")
        record = json.dumps({"pid": os.getpid(), "started_at": started,
                             "database": self.database}) + "\n"
        os.ftruncate(fd, 0)
        os.pwrite(fd, record.encode("utf-8"), 0)
        self._fd = fd

    def release(self) -> None:
        """Unlock and close. The file stays: removing it would race with a process that
        opened it just before and would then lock an unlinked inode."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the last descriptor releases the flock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> DaemonLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _describe_holder(fd: int) -> str:
    """"pid 1234, started 2025-01-01T10:00:00+00:00" from the holder's record, if readable."""
    try:
        raw = os.pread(fd, 4096, 0)
        record = json.loads(raw.decode("utf-8"))
        return f"pid {int(record['pid'])}, started {record['started_at']}"
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        # The holder is between open and write, or the file was edited by hand.
        return "pid unknown"
