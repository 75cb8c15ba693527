"""Console destination: alerts printed to a terminal (or any text stream).

Used when no Slack credentials are configured, and handy for a first run. A
local write either happens or raises, so there is nothing ambiguous to look
up afterwards: ``supports_lookup`` is False and ``find_delivered`` finds nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

from monitor.alerts.format import format_console, format_console_reply
from monitor.errors import DeliveryError
from monitor.models import Alert, Receipt, StoryFacts

if TYPE_CHECKING:
    from monitor.digest import Digest


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ConsoleDeliverer:
    name = "console"
    supports_lookup = False
    supports_threads = True

    def __init__(
        self, stream: TextIO | None = None, *, clock: Callable[[], datetime] = _utc_now
    ) -> None:
        # Resolve sys.stdout at call time, not import time, so redirection (and pytest's
        # capture) applies.
        self._stream = stream
        self._clock = clock

    async def deliver(self, alert: Alert) -> Receipt:
        stream = self._stream if self._stream is not None else sys.stdout
        try:
            text = format_console_reply(alert) if alert.kind == "reply" else format_console(alert)
            stream.write(text + "\n\n")
            stream.flush()
        except (OSError, ValueError) as exc:  # closed pipe, closed file
            raise DeliveryError(
                f"cannot write the alert to the console: {type(exc).__name__}: {exc}",
                retryable=True,
            ) from exc
        return Receipt(
            alert_id=alert.id,
            destination=alert.destination,
            message_id=f"console:{alert.id}",
            delivered_at=self._clock(),
        )

    async def post_digest(self, digest: Digest) -> str:
        from monitor.digest import digest_console

        stream = self._stream if self._stream is not None else sys.stdout
        try:
            stream.write(digest_console(digest) + "\n\n")
            stream.flush()
        except (OSError, ValueError) as exc:
            raise DeliveryError(f"cannot write the digest to the console: {exc}",
                                retryable=True) from exc
        return f"console:{digest.digest_id}"

    async def update_parent(self, parent: Alert, story: StoryFacts) -> None:
        """A printed line cannot change; the "also reported by" lines tell the story."""
        return None

    async def find_delivered(self, alert: Alert) -> Receipt | None:
        return None

    async def aclose(self) -> None:
        return None
