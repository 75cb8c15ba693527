"""Slack destination through an incoming webhook URL.

The simplest set-up (no app scopes, no token), at one real cost: a webhook
cannot read the channel back, so there is no ``find_delivered``. After an
*ambiguous* failure (the request went out but the answer was lost) the outbox
can only post again, which may duplicate the alert. We accept a possible
duplicate rather than risk losing an alert; use the bot-token deliverer
(``SlackDeliverer``) when "never twice" matters.

The webhook URL is itself the credential: it is never logged and never put
into an error message (``redact`` removes it, and slack-sdk gets a silent logger).
"""

from __future__ import annotations

import asyncio
import http.client
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from slack_sdk.errors import SlackClientError
from slack_sdk.webhook import WebhookClient

from monitor.alerts.base import redact
from monitor.alerts.format import SlackMessage, build_slack_message, clean_text
from monitor.alerts.slack import DEFAULT_RATE_LIMIT_WAIT, network_error, quiet_sdk_logger
from monitor.errors import DeliveryError
from monitor.http import parse_retry_after
from monitor.models import Alert, Receipt, StoryFacts

if TYPE_CHECKING:
    from monitor.digest import Digest

__all__ = ["WebhookDeliverer"]

_NEW_WEBHOOK = "create a new incoming webhook for the channel and set SLACK_WEBHOOK_URL"
_FIXES: dict[str, str] = {
    "invalid_token": "the webhook URL is not valid (revoked or mistyped); " + _NEW_WEBHOOK,
    "no_service": "the webhook no longer exists (removed or its app uninstalled); " + _NEW_WEBHOOK,
    "no_team": "the webhook's workspace is gone or disabled; " + _NEW_WEBHOOK,
    "team_disabled": "the webhook's workspace is disabled; " + _NEW_WEBHOOK,
    "no_service_id": "the webhook URL is incomplete; " + _NEW_WEBHOOK,
    "channel_not_found": "the webhook's channel no longer exists; " + _NEW_WEBHOOK,
    "channel_is_archived": "the webhook's channel is archived; unarchive it or " + _NEW_WEBHOOK,
    "action_prohibited": "a workspace admin restricted posting to this channel; ask an admin",
    "posting_to_general_channel_denied": "only admins may post in this channel; ask an admin",
    "user_not_found": "the webhook's owner was removed; " + _NEW_WEBHOOK,
    "invalid_payload": "Slack rejected the message; a bug in the formatter, report the alert id",
    "no_text": "Slack rejected the message; a bug in the formatter, report the alert id",
}


def _utc_now() -> datetime:
    return datetime.now(UTC)


class WebhookDeliverer:
    name = "webhook"
    supports_lookup = False

    def __init__(
        self, url: str, *, timeout: float = 10.0, clock: Callable[[], datetime] = _utc_now
    ) -> None:
        if not url.lower().startswith(("https://", "http://")):
            raise ValueError("the Slack webhook URL must start with https://")
        self._url = url
        self._clock = clock
        self._client = WebhookClient(
            url,
            timeout=timeout,  # type: ignore[arg-type]  # urllib accepts float seconds
            retry_handlers=[],
            logger=quiet_sdk_logger(),
        )

    def __repr__(self) -> str:  # never show the URL
        return "WebhookDeliverer(url=[redacted])"

    async def deliver(self, alert: Alert) -> Receipt:
        if alert.kind == "reply":
            # An incoming webhook cannot thread or edit: only a story's parent is posted
            # (documented); the reply is recorded as handled so it does not wait forever.
            return Receipt(alert_id=alert.id, destination=alert.destination,
                           message_id="webhook:no-threads", delivered_at=self._clock(),
                           details={"skipped": "incoming webhooks cannot post thread replies"})
        await self._send(build_slack_message(alert))
        return Receipt(
            alert_id=alert.id,
            destination=alert.destination,
            message_id=f"webhook:{alert.id}",
            delivered_at=self._clock(),
        )

    async def _send(self, message: SlackMessage) -> None:
        """Post once; every failure becomes a DeliveryError the outbox can act on."""
        try:
            response = await asyncio.to_thread(
                self._client.send,
                text=message.text,
                blocks=message.blocks,
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackClientError as exc:
            raise DeliveryError(
                f"webhook: slack-sdk refused the request ({type(exc).__name__})", retryable=False
            ) from None
        except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, resets
            raise network_error(exc, what="webhook", secrets=[self._url]) from None
        status = response.status_code
        if status != 200:
            body = redact(clean_text(str(response.body or "")), [self._url])[:120]
            raise self._error(status, body, response.headers)

    async def post_digest(self, digest: Digest) -> str:
        """The digest through the webhook (no metadata, so no duplicate look-up: the
        ``digests`` table alone keeps it to once a day)."""
        from monitor.digest import digest_message

        await self._send(digest_message(digest))
        return f"webhook:{digest.digest_id}"

    async def update_parent(self, parent: Alert, story: StoryFacts) -> None:
        """Webhook posts cannot be edited; the parent keeps its first form."""
        return None

    async def find_delivered(self, alert: Alert) -> Receipt | None:
        """Webhooks cannot read the channel, so an earlier post can never be confirmed."""
        return None

    async def aclose(self) -> None:
        return None

    @staticmethod
    def _error(status: int, body: str, headers: dict[str, str] | None) -> DeliveryError:
        label = f"webhook: Slack answered HTTP {status}" + (f" {body}" if body else "")
        if status == 429:
            wait = parse_retry_after(headers)
            return DeliveryError(
                f"{label} (rate limited)",
                retryable=True,
                retry_after=wait if wait is not None else DEFAULT_RATE_LIMIT_WAIT,
            )
        if status >= 500:
            return DeliveryError(
                f"{label} (temporary)", retryable=True, ambiguous=status in (500, 502, 504)
            )
        fix = _FIXES.get(body, "Slack refused the webhook request; check the webhook's set-up")
        return DeliveryError(f"{label}: {fix}", retryable=False)
