"""Slack destination through the Web API (``chat.postMessage``) with a bot token.

Why these choices:

* The synchronous ``WebClient`` run in a worker thread: it needs no aiohttp,
  and one alert at a time is far below Slack's posting rate anyway.
* ``retry_handlers=[]``: the outbox owns retries. slack-sdk's default handler
  re-sends after a connection reset, when Slack may already have posted, which
  is exactly how duplicates happen. Here a lost response becomes an *ambiguous*
  failure, and the next attempt first searches the channel history for the
  alert id carried in the message metadata (``find_delivered``).
* Every Slack error code is mapped to "retry later" or "park and tell the
  operator what to fix"; the message never contains the token (slack-sdk's own
  error strings include request details, so they are never passed through).
"""

from __future__ import annotations

import asyncio
import http.client
import logging
import re
import socket
import ssl
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from monitor.alerts.base import redact
from monitor.alerts.format import (
    METADATA_EVENT_TYPE,
    build_slack_message,
    build_slack_reply,
    clean_text,
)
from monitor.errors import DeliveryError
from monitor.http import parse_retry_after
from monitor.models import Alert, Receipt, StoryFacts

if TYPE_CHECKING:
    from monitor.digest import Digest

__all__ = ["SlackDeliverer", "network_error", "quiet_sdk_logger"]

DEFAULT_RATE_LIMIT_WAIT = 30.0
"""Seconds to wait after a rate limit that came without a usable Retry-After."""

LOOKUP_MARGIN = timedelta(hours=1)
"""How far before the article's publication time the history search starts, for alerts
whose first attempt was not recorded (queued by an older version)."""

ATTEMPT_MARGIN = timedelta(minutes=5)
"""How far before the first attempt's start the search begins (our clock against Slack's)."""

MAX_LOOKUP_MESSAGES = 100_000
"""A runaway guard only: the search pages back to the first attempt, however many
messages were posted since (a backlog of hundreds pushed posts out of a fixed window)."""

_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
_HISTORY_PAGE = 200  # Slack's recommended page size for conversations.history

# Temporary conditions: try again later.
_RETRYABLE = {
    "ratelimited",
    "rate_limited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
    "team_added_to_org",
}
# Slack's documentation says the operation may have partly succeeded before these.
_AMBIGUOUS = {"internal_error", "fatal_error"}

_INVITE = "invite the bot to the channel with /invite @<bot name>"
_REINSTALL = "reinstall the Slack app and set SLACK_BOT_TOKEN to its Bot User OAuth Token"
_BUG = "this is a bug in the monitor's message formatter; report it with the alert id"

# Permanent conditions: park the alert and say what the operator must fix.
_FIXES: dict[str, str] = {
    "invalid_auth": "the bot token is not valid; " + _REINSTALL,
    "not_authed": "no bot token was sent; set SLACK_BOT_TOKEN",
    "account_inactive": "the token belongs to a deactivated user or removed app; " + _REINSTALL,
    "token_revoked": "the bot token was revoked; " + _REINSTALL,
    "token_expired": "the bot token expired (token rotation is on); " + _REINSTALL,
    "no_permission": "the token may not use this method; " + _REINSTALL,
    "org_login_required": "the workspace is migrating to an org; " + _REINSTALL + " afterwards",
    "ekm_access_denied": "the workspace's Enterprise Key Management refused access; ask an admin",
    "channel_not_found": (
        "channel {channel} does not exist or the bot cannot see it; set SLACK_CHANNEL to the "
        "channel ID (like C0123ABCD) and, for a private channel, " + _INVITE
    ),
    "not_in_channel": "the bot is not a member of {channel}; " + _INVITE,
    "is_archived": "channel {channel} is archived; unarchive it or set SLACK_CHANNEL to another",
    "restricted_action": "workspace settings stop the bot posting in {channel}; ask an admin",
    "restricted_action_read_only_channel": "{channel} is read-only for the bot; ask an admin",
    "restricted_action_thread_only_channel": "{channel} only allows thread replies; pick another",
    "cannot_reply_to_message": "Slack refused the reply; " + _BUG,
    "invalid_blocks": "Slack rejected the message layout; " + _BUG,
    "invalid_blocks_format": "Slack rejected the message layout; " + _BUG,
    "msg_too_long": "the message is too long for Slack; " + _BUG,
    "no_text": "the message had no text; " + _BUG,
    "invalid_metadata_format": "Slack rejected the message metadata; " + _BUG,
    "invalid_metadata_schema": "Slack rejected the message metadata; " + _BUG,
    "metadata_too_large": "Slack rejected the message metadata; " + _BUG,
    "missing_scope": (
        "the Slack app lacks the {needed} permission; add it under OAuth & Permissions "
        "(chat:write to post; channels:history and groups:history for the duplicate check; "
        "channels:read and groups:read to check the channel and find it by name) and "
        "reinstall the app"
    ),
}


def quiet_sdk_logger() -> logging.Logger:
    """A logger for slack-sdk that drops everything.

    slack-sdk logs its own "Failed to send a request" line (and, at DEBUG, full
    request details including the webhook URL). The outbox already writes one
    clear line per failure, so the SDK's lines would only duplicate or leak.
    The logger is deliberately outside the logging tree so no configuration can
    turn it back on.
    """
    quiet = logging.Logger("monitor.alerts.slack-sdk", level=logging.CRITICAL + 1)
    quiet.addHandler(logging.NullHandler())
    return quiet


def network_error(exc: BaseException, *, what: str, secrets: Iterable[str] = ()) -> DeliveryError:
    """A transport failure as a retryable DeliveryError, ambiguous unless nothing was sent.

    A refused connection or a failed DNS lookup means the request never left
    this machine, so a retry cannot duplicate. Anything later (reset, timeout,
    truncated or missing response) may have happened after Slack accepted the
    message, so the next attempt must look before posting again.
    """
    reason: BaseException | str = exc
    if isinstance(exc, URLError):
        reason = exc.reason
    not_sent = isinstance(
        reason, ConnectionRefusedError | socket.gaierror | ssl.SSLCertVerificationError
    )
    detail = type(reason).__name__ if isinstance(reason, BaseException) else "URLError"
    text = clean_text(str(reason))
    if text:
        detail = f"{detail}: {text[:200]}"
    detail = redact(detail, secrets)
    if not_sent:
        return DeliveryError(
            f"{what}: cannot reach Slack ({detail}); nothing was sent", retryable=True
        )
    return DeliveryError(
        f"{what}: network failure ({detail}); the message may have been posted",
        retryable=True,
        ambiguous=True,
    )


_NETWORK_ERRORS = (OSError, http.client.HTTPException)  # URLError, timeouts, resets, IncompleteRead


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SlackDeliverer:
    """Posts alerts to one channel with ``chat.postMessage``; finds earlier posts by metadata."""

    name = "slack"
    supports_lookup = True
    supports_threads = True

    def __init__(
        self,
        token: str,
        channel: str,
        *,
        base_url: str | None = None,
        timeout: float = 10.0,
        lookup_window: int = MAX_LOOKUP_MESSAGES,
        clock: Callable[[], datetime] = _utc_now,
        buttons: bool = False,
    ) -> None:
        if not token:
            raise ValueError("SlackDeliverer needs a bot token")
        if not channel:
            raise ValueError("SlackDeliverer needs a channel")
        if base_url is not None and not base_url.endswith("/"):
            raise ValueError("Slack base_url must end with '/' (e.g. https://slack.com/api/)")
        self.channel = channel.strip()
        self.lookup_window = max(1, lookup_window)
        self._token = token.strip()
        self._clock = clock
        self.buttons = buttons
        """Put the analysts' buttons on parents: only when something listens for the
        presses (Socket Mode, ``SLACK_APP_TOKEN``); otherwise Slack shows an error."""
        self._channel_id: str | None = self.channel if _CHANNEL_ID.match(self.channel) else None
        kwargs: dict[str, Any] = {} if base_url is None else {"base_url": base_url}
        self._client = WebClient(
            token=self._token,
            timeout=timeout,  # type: ignore[arg-type]  # urllib accepts float seconds
            retry_handlers=[],
            logger=quiet_sdk_logger(),
            **kwargs,
        )

    def __repr__(self) -> str:  # never show the token
        return f"SlackDeliverer(channel={self.channel!r})"

    # --- the protocol -------------------------------------------------------------
    async def deliver(self, alert: Alert) -> Receipt:
        """A parent goes to the channel; a reply (with its folded siblings) into the
        parent's thread, which the outbox guarantees is already posted."""
        channel: str = self.channel
        extra: dict[str, Any] = {}
        if alert.kind == "reply":
            if alert.thread is None or not alert.thread.message_id:
                raise DeliveryError(
                    f"reply {alert.id} has no posted parent to thread under; "
                    "this is a bug in the outbox", retryable=False)
            message = build_slack_reply(alert)
            channel = alert.thread.channel or self.channel
            extra["thread_ts"] = alert.thread.message_id
        else:
            message = build_slack_message(alert, buttons=self.buttons)
        data = await self._call(
            "chat.postMessage",
            self._client.chat_postMessage,
            channel=channel,
            text=message.text,
            blocks=message.blocks,
            metadata=message.metadata,
            unfurl_links=False,
            unfurl_media=False,
            **extra,
        )
        ts = data.get("ts")
        channel_id = data.get("channel") or self._channel_id or self.channel
        if not ts:
            raise DeliveryError(
                "chat.postMessage: Slack answered ok but without a message ts",
                retryable=True,
                ambiguous=True,
            )
        if alert.kind != "reply" and isinstance(channel_id, str) and _CHANNEL_ID.match(channel_id):
            self._channel_id = channel_id  # history lookups need the ID, not the name
        return Receipt(
            alert_id=alert.id,
            destination=alert.destination,
            message_id=str(ts),
            delivered_at=self._clock(),
            details={"channel": str(channel_id)},
        )

    async def post_digest(self, digest: Digest) -> str:
        """Post the daily digest once: an earlier post of the same digest id (a crash
        between posting and recording) is found in the channel history first."""
        from monitor.digest import digest_message

        channel_id = await self._resolve_channel_id()
        probe = Alert(id=digest.digest_id, article_id="", destination="", title="", url="",
                      source="", published_at=digest.since, score=0.0, reason="", snippet="",
                      first_attempt_at=digest.until - timedelta(hours=2))
        earlier = await self.find_delivered(probe)
        if earlier is not None:
            return earlier.message_id
        message = digest_message(digest)
        data = await self._call(
            "chat.postMessage", self._client.chat_postMessage, channel=channel_id,
            text=message.text, blocks=message.blocks, metadata=message.metadata,
            unfurl_links=False, unfurl_media=False)
        return str(data.get("ts") or "")

    async def check(self, *, post_test_message: bool = False) -> list[str]:
        """Prove the setup works: the token (``auth.test``), the channel exists and the bot
        is in it (``conversations.info``), and optionally that a message can be posted.

        Returns what was verified, one line each; raises DeliveryError naming the fix.
        """
        who = await self._call("auth.test", self._client.auth_test)
        done = [f"token works: bot {clean_text(str(who.get('user') or who.get('user_id')))} "
                f"in workspace {clean_text(str(who.get('team') or '?'))}"]
        channel_id = await self._resolve_channel_id()
        info = await self._call("conversations.info", self._client.conversations_info,
                                channel=channel_id)
        channel = info.get("channel") or {}
        if channel.get("is_archived"):
            raise DeliveryError(_FIXES["is_archived"].format(channel=repr(self.channel)),
                                retryable=False)
        if not channel.get("is_member"):
            raise DeliveryError("conversations.info: "
                                + _FIXES["not_in_channel"].format(channel=repr(self.channel)),
                                retryable=False)
        done.append(f"channel {self.channel} ({channel_id}) exists and the bot is a member")
        if post_test_message:
            data = await self._call(
                "chat.postMessage", self._client.chat_postMessage, channel=channel_id,
                text="Test message from the DPRK–Russia news monitor: alerts can be posted "
                     "here.", unfurl_links=False)
            done.append(f"test message posted (ts {data.get('ts')})")
        return done

    async def update_parent(self, parent: Alert, story: StoryFacts) -> None:
        """Edit a posted parent to show its story's outlets and latest report.

        An edit sets the whole message, so repeating it is harmless: no look-up needed.
        """
        if parent.thread is None or not parent.thread.message_id:
            return
        message = build_slack_message(parent, story, buttons=self.buttons)
        await self._call(
            "chat.update",
            self._client.chat_update,
            channel=parent.thread.channel or self.channel,
            ts=parent.thread.message_id,
            text=message.text,
            blocks=message.blocks,
            metadata=message.metadata,
        )

    async def find_delivered(self, alert: Alert) -> Receipt | None:
        """Search the channel for a post carrying the alert id, back to the first attempt.

        Every earlier attempt started at or after ``alert.first_attempt_at``, so the
        search pages through everything posted since then (``oldest`` bounds it), not
        a fixed number of recent messages.
        """
        channel_id = await self._resolve_channel_id()
        oldest = lookup_start(alert, now=self._clock())
        method, func = "conversations.history", self._client.conversations_history
        where: dict[str, Any] = {"channel": channel_id}
        if alert.kind == "reply" and alert.thread is not None:
            # Thread replies are not in the channel's history: search the thread.
            method, func = "conversations.replies", self._client.conversations_replies
            where = {"channel": alert.thread.channel or channel_id, "ts": alert.thread.message_id}
        scanned = 0
        cursor: str | None = None
        while scanned < self.lookup_window:
            page: dict[str, Any] = {
                **where,
                "limit": min(self.lookup_window - scanned, _HISTORY_PAGE),
                "include_all_metadata": True,
                "oldest": f"{max(oldest.timestamp(), 0.0):.6f}",
            }
            if cursor:
                page["cursor"] = cursor
            data = await self._call(method, func, **page)
            messages = data.get("messages") or []
            scanned += len(messages)
            for message in messages:
                if isinstance(message, dict) and _carries_alert(message, alert.id):
                    return Receipt(
                        alert_id=alert.id,
                        destination=alert.destination,
                        message_id=str(message.get("ts")),
                        delivered_at=self._clock(),
                        details={"channel": str(where["channel"]), "found_by": "history"},
                    )
            cursor = (data.get("response_metadata") or {}).get("next_cursor") or None
            if not messages or not cursor or not data.get("has_more"):
                break
        return None

    async def aclose(self) -> None:
        """Nothing to release: the urllib-based client opens one connection per call."""
        return None

    # --- helpers ------------------------------------------------------------------
    async def _resolve_channel_id(self) -> str:
        """The channel's ID: conversations.history does not accept names."""
        if self._channel_id:
            return self._channel_id
        wanted = self.channel.lstrip("#").lower()
        cursor: str | None = None
        for _ in range(50):  # 50 pages of 1000: any real workspace
            page: dict[str, Any] = {
                "types": "public_channel,private_channel",
                "exclude_archived": True,
                "limit": 1000,
            }
            if cursor:
                page["cursor"] = cursor
            data = await self._call(
                "conversations.list", self._client.conversations_list, **page
            )
            for conv in data.get("channels") or []:
                if isinstance(conv, dict) and str(conv.get("name", "")).lower() == wanted:
                    self._channel_id = str(conv["id"])
                    return self._channel_id
            cursor = (data.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        raise DeliveryError(
            f"conversations.list: no channel named {self.channel!r} is visible to the bot, so "
            "earlier posts cannot be checked; set SLACK_CHANNEL to the channel ID (like C0123ABCD)",
            retryable=False,
        )

    async def _call(self, method: str, func: Callable[..., Any], **kwargs: Any) -> dict[str, Any]:
        """Run one Web API call in a thread and turn every failure into a DeliveryError."""
        try:
            response = await asyncio.to_thread(func, **kwargs)
        except SlackApiError as exc:
            raise self._api_error(method, exc) from None
        except SlackClientError as exc:
            raise DeliveryError(
                f"{method}: slack-sdk refused the request ({type(exc).__name__}: "
                f"{redact(clean_text(str(exc))[:200], [self._token])})",
                retryable=False,
            ) from None
        except _NETWORK_ERRORS as exc:
            raise network_error(exc, what=method, secrets=[self._token]) from None
        data = response.data
        return data if isinstance(data, dict) else {}

    def _api_error(self, method: str, exc: SlackApiError) -> DeliveryError:
        """Map Slack's answer to retry/park; built from the error code, never from str(exc)."""
        response = exc.response
        status = int(getattr(response, "status_code", 0) or 0)
        data = response.data if isinstance(getattr(response, "data", None), dict) else {}
        code = redact(clean_text(str(data.get("error") or "")), [self._token])[:120]
        label = f"{method}: Slack answered HTTP {status}" + (f" {code}" if code else "")
        if status == 429 or code in ("ratelimited", "rate_limited"):
            wait = parse_retry_after(getattr(response, "headers", None))
            return DeliveryError(
                f"{label} (rate limited)",
                retryable=True,
                retry_after=wait if wait is not None else DEFAULT_RATE_LIMIT_WAIT,
            )
        if code in _FIXES:
            needed = clean_text(str(data.get("needed") or "")) or "required"
            fix = _FIXES[code].format(channel=repr(self.channel), needed=needed)
            return DeliveryError(f"{label}: {fix}", retryable=False)
        if code in _RETRYABLE or status >= 500:
            ambiguous = code in _AMBIGUOUS or status in (500, 502, 504)
            return DeliveryError(
                f"{label} (temporary)",
                retryable=True,
                retry_after=parse_retry_after(getattr(response, "headers", None))
                if status == 503
                else None,
                ambiguous=ambiguous,
            )
        return DeliveryError(
            f"{label}: Slack refused the request; check the app's configuration", retryable=False
        )


def lookup_start(alert: Alert, *, now: datetime) -> datetime:
    """Where a duplicate search starts: shortly before the first attempt began.

    Alerts queued before attempts were recorded fall back to the article's
    publication time (a feed may claim a future date: the post cannot be newer
    than now).
    """
    if alert.first_attempt_at is not None:
        return min(_aware(alert.first_attempt_at), now) - ATTEMPT_MARGIN
    return min(_aware(alert.published_at), now) - LOOKUP_MARGIN


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _carries_alert(message: dict[str, Any], alert_id: str) -> bool:
    metadata = message.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("event_type") != METADATA_EVENT_TYPE:
        return False
    payload = metadata.get("event_payload")
    if not isinstance(payload, dict):
        return False
    folded = payload.get("alert_ids")
    return payload.get("alert_id") == alert_id or (
        isinstance(folded, list) and alert_id in folded)
