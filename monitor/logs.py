"""Logging set-up: one line per event, to stderr, quiet third-party chatter."""

from __future__ import annotations

import logging
import sys


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    root = logging.getLogger()
    # Replace only a handler we installed earlier (e.g. CLI called twice in one process);
    # handlers added by others (pytest's capture, an embedding application) stay.
    root.handlers[:] = [h for h in root.handlers if not getattr(h, "_monitor_handler", False)]
    handler._monitor_handler = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # httpx logs every request URL at INFO and slack-sdk can log request details at DEBUG:
    # keep them at WARNING so polls stay one line each and nothing secret is echoed.
    for noisy in ("httpx", "httpcore", "slack_sdk", "apscheduler.executors", "urllib3",
                  "trafilatura", "htmldate", "courlan"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    scheduler_log = logging.getLogger("apscheduler.scheduler")
    scheduler_log.setLevel(logging.WARNING)
    if not any(isinstance(f, _SkippedRunFilter) for f in scheduler_log.filters):
        scheduler_log.addFilter(_SkippedRunFilter())


class _SkippedRunFilter(logging.Filter):
    """Drop APScheduler's "skipped: maximum number of running instances reached".

    A drain or poll that outlives its interval (Slack slow, a write lock) makes the
    next trigger skip; that is the intended ``max_instances=1`` behaviour, feeds are
    re-armed when their poll returns, and the fault itself is already logged once.
    Repeating it every second hid the one line that mattered.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()
