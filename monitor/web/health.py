"""Liveness and readiness of the daemon, as /healthz and /readyz report them.

Liveness answers "should this process be restarted?": the event loop runs (a
heartbeat task wakes on time; it also measures the loop's lag), the scheduler is
started, and its jobs run (the outbox drain, due every few seconds, finished
recently). Readiness answers "is it doing its job?": the store answers a query,
the model is loaded, and some poll succeeded recently. A daemon can be alive but
not ready (the database is read-only, every feed fails); restarting it would not
help, so the two are kept apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from monitor.errors import StoreError
from monitor.store.base import Store
from monitor.web.metrics import Metrics

__all__ = ["Check", "Health", "Heartbeat"]

HEARTBEAT_SECONDS = 0.5
STORE_CHECK_TIMEOUT = 5.0


class Heartbeat:
    """A task that sleeps ``interval`` s in a loop; how late it wakes is the loop's lag."""

    def __init__(self, interval: float = HEARTBEAT_SECONDS,
                 on_lag: Callable[[float], None] | None = None) -> None:
        self.interval = interval
        self.on_lag = on_lag
        self.last_beat = time.monotonic()
        self.last_lag = 0.0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Heartbeat:
        self.last_beat = time.monotonic()
        self._task = asyncio.create_task(self._run(), name="heartbeat")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            due = time.monotonic() + self.interval
            await asyncio.sleep(self.interval)
            now = time.monotonic()
            self.last_lag = max(0.0, now - due)
            self.last_beat = now
            if self.on_lag is not None:
                self.on_lag(self.last_lag)

    @property
    def age(self) -> float:
        """Seconds since the last beat (about ``interval`` while all is well)."""
        return time.monotonic() - self.last_beat

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


class Health:
    """The checks behind /healthz and /readyz, from what the daemon already tracks."""

    def __init__(self, *, heartbeat: Heartbeat, metrics: Metrics, store: Store,
                 scheduler_running: Callable[[], bool], model_version: str | None,
                 drain_every: float, drain_grace: float, ready_poll_age: float,
                 polls_expected: bool) -> None:
        self.heartbeat = heartbeat
        self.metrics = metrics
        self.store = store
        self.scheduler_running = scheduler_running
        self.model_version = model_version
        self.drain_deadline = max(5 * drain_every, drain_grace)
        """Longest a drain may be missing: a few intervals, or one drain that waited out
        its lease (rate limits are waited out inside a drain)."""
        self.ready_poll_age = ready_poll_age
        self.polls_expected = polls_expected
        self.started = time.monotonic()

    def liveness(self) -> list[Check]:
        beat = self.heartbeat.age
        beat_limit = max(5.0, 20 * self.heartbeat.interval)
        checks = [
            Check("event_loop", self.heartbeat.running and beat < beat_limit,
                  f"last heartbeat {beat:.1f} s ago, lag {self.heartbeat.last_lag * 1000:.0f} ms"),
            Check("scheduler", self.scheduler_running(),
                  "running" if self.scheduler_running() else "not running"),
        ]
        last_drain = self.metrics.last_drain_monotonic or self.started
        since = time.monotonic() - last_drain
        checks.append(Check("jobs", since < self.drain_deadline,
                            f"last outbox drain {since:.0f} s ago "
                            f"(limit {self.drain_deadline:.0f} s)"))
        return checks

    async def readiness(self) -> list[Check]:
        checks = [await self._store_check()]
        checks.append(Check("model", self.model_version is not None,
                            f"loaded: {self.model_version}" if self.model_version
                            else "not loaded"))
        last = self.metrics.last_success_monotonic
        if not self.polls_expected:
            checks.append(Check("polls", True, "no enabled feeds"))
        elif last is None:
            checks.append(Check("polls", False, "no successful poll yet"))
        else:
            age = time.monotonic() - last
            checks.append(Check("polls", age < self.ready_poll_age,
                                f"last successful poll {age:.0f} s ago "
                                f"(limit {self.ready_poll_age:.0f} s)"))
        return checks

    async def _store_check(self) -> Check:
        try:
            counts = await asyncio.wait_for(asyncio.to_thread(self.store.outbox_counts),
                                            STORE_CHECK_TIMEOUT)
        except TimeoutError:
            return Check("store", False, f"no answer within {STORE_CHECK_TIMEOUT:.0f} s")
        except StoreError as exc:
            return Check("store", False, str(exc))
        return Check("store", True, f"reachable ({sum(counts.values())} alerts in the outbox)")
