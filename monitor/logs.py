"""Logging set-up: one line per event, to stderr, quiet third-party chatter.

Two formats: ``text`` for people (the default) and ``json`` for log shippers
(one object per line: time, level, logger, message, and ``feed``/``url`` when the
record is about a feed). Both pass every line through ``redact`` as a last line
of defence: a Slack token or webhook URL in an exception message from a library
must not reach a log file, whatever the code that logged it forgot.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal

from monitor.alerts.base import redact

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
ENV_LOG_FORMAT = "MONITOR_LOG_FORMAT"
FEED_FIELDS = ("feed", "url")
"""``extra`` keys that lines about a feed carry (``log.info(..., extra={"feed": …, "url": …})``)."""


class TextFormatter(logging.Formatter):
    """``2025-01-01T10:00:00 INFO    monitor: message``, secrets redacted."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                         "%Y-%m-%dT%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line; a traceback, if any, is the ``exception`` field."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key in FEED_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = redact(str(value))
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO", log_format: LogFormat = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
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
