"""Waiting on other processes in tests: is a pid alive, wait until something holds."""

from __future__ import annotations

import os
import time
from collections.abc import Callable


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_until(condition: Callable[[], bool], timeout: float = 15.0,
               interval: float = 0.05) -> bool:
    """True as soon as ``condition()`` is; False if it never was within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return False
