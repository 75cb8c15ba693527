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
    logging.getLogger("apscheduler.scheduler").setLevel(logging.WARNING)
