"""Score articles in worker processes, beside the event loop rather than on it.

The model's feature extraction is pure Python for the most part, so in a thread of
the daemon it holds the GIL: during a cold cycle (every feed new, thousands of items)
it used about two thirds of the daemon's CPU, delayed the event loop by hundreds of
milliseconds and left the second core to the parser workers alone. In its own
process it runs in parallel with fetching, parsing and storing.

Only ids and texts cross to a worker and only plain tuples come back, so a call costs
the daemon little more than the pickling of the texts. The workers load the same
model file, threshold and pre-filter as the daemon's own ``ArticleClassifier`` (which
the CLI and the log lines keep using), so verdicts are identical wherever they are
computed; a test holds that.

Why ``concurrent.futures.ProcessPoolExecutor`` here when ``monitor.parse_pool`` avoids
it: the parser pool exists to contain hostile input and must kill one runaway parse
without touching the others. The classifier runs our own code on text that is already
bounded in size, so the failure to plan for is a worker killed from outside (the OOM
killer, an operator), which the executor reports as ``BrokenProcessPool``: the pool is
replaced and the batch retried once, then the feed's poll fails with a ``ClassifyError``
and its items are fetched again next time (nothing is recorded, nothing is lost).
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import astuple
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from monitor.errors import ClassifyError
from monitor.models import Article, Verdict
from monitor.worker_context import worker_context

if TYPE_CHECKING:
    from monitor.classify import ArticleClassifier, Prefilter

log = logging.getLogger("monitor.classify_pool")

# -- the worker side ------------------------------------------------------------------------------

_WORKER_CLASSIFIER: ArticleClassifier | None = None


def _worker_init(daemon_pid: int, model_path: Path | None, threshold: float,
                 prefilter: Prefilter | None) -> None:
    # Imported here, not at the top: the forkserver preloads monitor modules for the
    # parser workers, which must not inherit scikit-learn (see monitor.worker_context).
    from monitor.classify import ArticleClassifier

    # Ctrl+C reaches the whole process group; the daemon decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_when_gone, args=(daemon_pid,), daemon=True,
                     name="classifier-worker-watchdog").start()
    global _WORKER_CLASSIFIER
    _WORKER_CLASSIFIER = ArticleClassifier.load(model_path, threshold=threshold,
                                                prefilter=prefilter)


def _exit_when_gone(daemon_pid: int) -> None:
    """Exit as soon as the daemon is gone, however it went.

    An executor worker waits on a queue whose write end it holds itself, so a daemon
    killed with SIGKILL (or by the OOM killer) would leave it waiting forever, holding
    its memory and the daemon's stdout and stderr.
    """
    try:
        handle = os.pidfd_open(daemon_pid)
    except (AttributeError, OSError):  # not Linux 5.3+: look once a second
        while _alive(daemon_pid):
            time.sleep(1.0)
    else:
        select.select([handle], [], [])  # readable once the process has exited
    os._exit(0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process now has the number: ours is gone
        return False
    return True


def _worker_ping() -> int:
    return os.getpid()


def _worker_classify(ids: list[str], texts: list[str]) -> list[tuple[Any, ...]]:
    if _WORKER_CLASSIFIER is None:  # the initializer failed; the executor reports that first
        raise ClassifyError("classifier worker has no model")
    # Tuples pickle several times faster than frozen slotted dataclasses.
    return [astuple(v) for v in _WORKER_CLASSIFIER.classify_texts(ids, texts)]


# -- the daemon side ------------------------------------------------------------------------------


class ClassifierPool:
    """``await pool.classify(articles)``: the verdicts ``ArticleClassifier.classify`` gives."""

    def __init__(self, classifier: ArticleClassifier, *, model_path: Path | None,
                 workers: int = 1) -> None:
        if workers < 1:
            raise ValueError("a classifier pool needs at least one worker")
        self.workers = workers
        self.version = classifier.version
        self.threshold = classifier.threshold
        self._initargs = (os.getpid(), model_path, classifier.threshold, classifier.prefilter)
        self._executor: ProcessPoolExecutor | None = None
        self._closed = False
        self._lock = asyncio.Lock()
        """Held while workers start, so callers wait for a replacement instead of failing."""
        self.replaced = 0
        """How many times a broken pool was replaced (tests and logs)."""

    async def __aenter__(self) -> ClassifierPool:
        async with self._lock:
            await self._start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def _start(self) -> None:
        """Start every worker and load its model now, not during the first cycle: process
        start-up blocks the caller, so it runs in a thread, and a model that fails to
        load in a worker fails the daemon's start-up with a clear error."""
        executor = ProcessPoolExecutor(
            max_workers=self.workers, mp_context=worker_context(),
            initializer=_worker_init, initargs=self._initargs,
        )
        try:
            await asyncio.to_thread(self._warm_up, executor)
        except BrokenProcessPool as exc:
            executor.shutdown(wait=False, cancel_futures=True)
            raise ClassifyError(f"classifier workers failed to start: {exc}") from exc
        self._executor = executor

    def _warm_up(self, executor: ProcessPoolExecutor) -> None:
        futures = [executor.submit(_worker_ping) for _ in range(self.workers)]
        for future in futures:
            future.result(timeout=120)

    def worker_pids(self) -> list[int]:
        executor = self._executor
        # No public way to list them; tests use this to kill one.
        processes = getattr(executor, "_processes", None) or {}
        return sorted(processes)

    async def classify(self, articles: Sequence[Article]) -> list[Verdict]:
        if not articles:
            return []
        ids = [a.id for a in articles]
        texts = [a.text for a in articles]
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            executor = await self._running()
            try:
                packed = await loop.run_in_executor(executor, _worker_classify, ids, texts)
            except BrokenProcessPool as exc:
                await self._replace(executor)
                if attempt == 2:
                    raise ClassifyError(
                        f"classifier worker died twice on a batch of {len(ids)} articles: "
                        f"{exc}") from exc
                log.warning("a classifier worker died (%s); pool replaced, batch retried", exc)
                continue
            return [Verdict(*values) for values in packed]
        raise AssertionError("unreachable")  # pragma: no cover

    async def _running(self) -> ProcessPoolExecutor:
        async with self._lock:
            if self._closed:
                raise ClassifyError("classifier pool is closed")
            if self._executor is None:  # an earlier replacement failed to start: try again
                await self._start()
            assert self._executor is not None
            return self._executor

    async def _replace(self, broken: ProcessPoolExecutor) -> None:
        """One replacement per breakage, however many batches saw it break."""
        async with self._lock:
            if self._executor is not broken or self._closed:
                return
            self._executor = None
            broken.shutdown(wait=False, cancel_futures=True)
            self.replaced += 1
            await self._start()

    async def close(self) -> None:
        self._closed = True
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)
