"""Operational notices (a feed broke, went stale, moved, is gone).

These are for the engineers running the daemon, not for analysts, so they go to
a separate Slack channel when one is configured and otherwise to the log. They
are sent once per change of a feed's condition (the store remembers the flag),
and they are best-effort: a failed notice is logged, never retried, because the
feed's condition stays visible in the ``feeds`` command anyway.
"""

from __future__ import annotations

import asyncio
import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from monitor.alerts.format import slack_escape

log = logging.getLogger("monitor.notices")


class Notifier:
    def __init__(self, *, token: str | None = None, channel: str | None = None,
                 base_url: str | None = None, timeout: float = 10.0) -> None:
        self._channel = channel
        self._client = None
        if token and channel:
            kwargs = {"base_url": base_url} if base_url else {}
            self._client = WebClient(token=token, timeout=int(timeout), retry_handlers=[],
                                     **kwargs)

    @property
    def destination(self) -> str:
        return f"slack:{self._channel}" if self._client else "log"

    async def notify(self, text: str) -> None:
        log.warning("NOTICE %s", text)
        if self._client is None:
            return
        try:
            await asyncio.to_thread(
                self._client.chat_postMessage, channel=self._channel,
                text=f":warning: {slack_escape(text)}",
            )
        except SlackApiError as exc:
            log.error("could not post the notice to %s: %s", self._channel,
                      exc.response.get("error", "unknown error"))
        except Exception as exc:  # network trouble: the notice stays in the log
            log.error("could not post the notice to %s: %s", self._channel, type(exc).__name__)
