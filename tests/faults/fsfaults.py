"""Storage faults that SQLite really sees, for a daemon that runs as root.

Why these mechanisms (measured in the CI sandbox, which runs the tests as root):

* ``chmod`` does not stop root, and ``chattr +i`` on the files and folder only
  stops *new* opens: the daemon's open connection keeps writing. A plain
  ``mount -o remount,ro`` is refused ("mount point is busy") while a process
  has files open for writing there. What makes an open SQLite connection fail
  the way a failing disk does is the kernel remounting the file system
  read-only on an error: an ext4 image on a loop device, mounted
  ``errors=remount-ro``, and ``/sys/fs/ext4/<dev>/trigger_fs_error``. Writes
  then fail with ``disk I/O error``, reads still work. The flag cannot be
  cleared while mounted, so recovery is the operator's: stop the daemon,
  unmount, ``e2fsck``, mount again and start it. The image is mounted
  ``sync,dirsync`` so nothing the daemon committed before the error is lost
  with the page cache (it would be otherwise, and the test would report the
  injection's loss as the daemon's). An explicit ``-o ro`` mount of the same
  image is the "start on a read-only database" case.
* A full disk is a small tmpfs filled to the last byte with a filler file;
  deleting the filler is the recovery (``SQLITE_FULL`` in between).
* A lock held longer than the busy timeout needs no privilege: another process
  holds ``BEGIN IMMEDIATE`` on the same file.

Without root (or without loop devices / ext4) the two mount-based scenarios are
skipped with the reason; nothing falls back to a mock of the store.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def mount_unavailable() -> str | None:
    """Why a tmpfs cannot be mounted here, or None if it can."""
    if os.geteuid() != 0:
        return "needs root to mount a size-limited tmpfs"
    if shutil.which("mount") is None:
        return "no mount(8)"
    return None


def ext4_unavailable() -> str | None:
    reason = mount_unavailable()
    if reason:
        return reason
    if shutil.which("mkfs.ext4") is None or shutil.which("e2fsck") is None:
        return "needs mkfs.ext4 and e2fsck (e2fsprogs)"
    if not Path("/dev/loop-control").exists():
        return "needs loop devices (/dev/loop-control)"
    if not Path("/sys/fs/ext4").is_dir():
        return "needs ext4 (/sys/fs/ext4)"
    return None


def _umount(path: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = _run("umount", str(path))
        if result.returncode == 0 or not os.path.ismount(path):
            return
        if time.monotonic() >= deadline:
            _run("umount", "-l", str(path))  # last resort: never leave a mount behind
            return
        time.sleep(0.2)


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    result = _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path))
    if result.returncode != 0:
        raise RuntimeError(f"cannot mount tmpfs on {path}: {result.stderr.strip()}")
    try:
        yield path
    finally:
        _umount(path)


def fill(directory: Path) -> Path:
    """Write a filler file until the file system is full; returns its path."""
    filler = directory / "filler.bin"
    with filler.open("wb", buffering=0) as out:
        for chunk in (1 << 20, 1 << 16, 4096, 512, 1):
            block = b"\0" * chunk
            while True:
                try:
                    out.write(block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    return filler


class Ext4Image:
    """A small ext4 file system in a file, on a loop device, that can fail like a disk."""

    def __init__(self, image: Path, mountpoint: Path, size_mb: int = 32) -> None:
        self.image = image
        self.mountpoint = mountpoint
        self.size_mb = size_mb

    def create(self) -> None:
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        with self.image.open("wb") as out:
            out.truncate(self.size_mb << 20)
        result = _run("mkfs.ext4", "-q", "-F", "-O", "^has_journal", str(self.image))
        if result.returncode != 0:
            raise RuntimeError(f"mkfs.ext4 failed: {result.stderr.strip()}")

    def mount(self, *, read_only: bool = False) -> None:
        options = "loop,sync,dirsync,errors=remount-ro" + (",ro" if read_only else "")
        result = _run("mount", "-o", options, str(self.image), str(self.mountpoint))
        if result.returncode != 0:
            raise RuntimeError(f"cannot mount {self.image}: {result.stderr.strip()}")

    def device(self) -> str:
        result = _run("findmnt", "-n", "-o", "SOURCE", str(self.mountpoint))
        return Path(result.stdout.strip()).name

    def fail_read_only(self) -> None:
        """What the kernel does after a disk error: remount read-only under the daemon."""
        os.sync()
        Path(f"/sys/fs/ext4/{self.device()}/trigger_fs_error").write_text("1")

    def options(self) -> str:
        return _run("findmnt", "-n", "-o", "OPTIONS", str(self.mountpoint)).stdout.strip()

    def umount(self) -> None:
        if os.path.ismount(self.mountpoint):
            _umount(self.mountpoint)

    def repair(self) -> None:
        """e2fsck after the error (exit 1 = errors corrected)."""
        result = _run("e2fsck", "-f", "-y", str(self.image))
        if result.returncode not in (0, 1):
            raise RuntimeError(f"e2fsck failed ({result.returncode}): {result.stdout[-500:]}")


_HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
print("released", flush=True)
"""


class WriteLock:
    """Another process holding SQLite's write lock on ``db`` for ``seconds``."""

    def __init__(self, db: Path, seconds: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(db), str(seconds)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "locked":
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
            raise RuntimeError(f"lock holder failed: {line} {err}")
        self.locked_at = time.monotonic()

    def wait_released(self, timeout: float) -> float:
        """Wait for the holder to commit; returns the monotonic time of the release."""
        self.proc.communicate(timeout=timeout)
        return time.monotonic()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=10)
