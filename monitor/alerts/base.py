"""The contract between the outbox drainer and every destination.

The drainer only knows this protocol, so Slack, a webhook and the console are
interchangeable, and tests can drive the real drainer against the real Slack
deliverer talking to a local fake of the Web API.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from monitor.models import Alert, Receipt, StoryFacts

__all__ = ["Deliverer", "redact"]

_TOKEN_SHAPE = re.compile(r"(xox[a-z]|xapp)-[A-Za-z0-9-]+")
"""Bot/user/legacy/refresh tokens (xoxb-, xoxp-, xoxa-, xoxr-, xoxs-, xoxe-…) and app-level
tokens (xapp-), wherever they sit in the text: no word boundary is required, because a
token glued to other text ("Bearerxoxb-…", "x=xoxb-…") must be hidden too."""
_WEBHOOK_SHAPE = re.compile(r"https?://hooks\.slack(?:-gov)?\.com/\S+")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove known secrets and anything shaped like a Slack token or webhook URL.

    Every deliverer and the drainer pass error text through this before it can
    reach a log line or the outbox's ``last_error`` column.
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    text = _TOKEN_SHAPE.sub(_masked_token, text)
    return _WEBHOOK_SHAPE.sub("[redacted webhook URL]", text)


def _masked_token(match: re.Match[str]) -> str:
    """Mask the whole token; an app-level token stays recognisable as one, for the reader."""
    return "xapp-[redacted]" if match.group(1) == "xapp" else "xox?-[redacted]"


@runtime_checkable
class Deliverer(Protocol):
    name: str
    """Short label for logs and metrics: "slack", "webhook", "console"."""

    supports_lookup: bool
    """Whether ``find_delivered`` can actually see earlier posts. Without it an
    ambiguous failure (timeout after the request was sent) can lead to a
    duplicate on retry; with it the drainer looks before posting again."""

    async def deliver(self, alert: Alert) -> Receipt:
        """Post the alert once (no internal retries: the outbox owns the retry policy).

        A ``kind == "reply"`` alert goes into the thread of ``alert.thread`` (its
        story's posted parent) and carries ``alert.folded`` siblings in the same message.

        Raises ``DeliveryError(retryable=..., retry_after=..., ambiguous=...)``.
        """
        ...

    async def update_parent(self, parent: Alert, story: StoryFacts) -> None:
        """Show a posted parent's story as it grew (outlets, latest report); idempotent.

        Destinations that cannot edit a sent message do nothing.
        """
        ...

    async def find_delivered(self, alert: Alert) -> Receipt | None:
        """Look for an earlier post of this alert (by its id in the message metadata).

        ``None`` when not found or when the destination cannot be searched.
        Raises ``DeliveryError`` when the search itself failed: "could not look"
        must never be mistaken for "not there".
        """
        ...

    async def aclose(self) -> None:
        """Release connections; called once at shutdown."""
        ...
