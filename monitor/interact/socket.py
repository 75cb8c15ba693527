"""Socket Mode wiring: receive button presses over a WebSocket the daemon opens itself.

Why Socket Mode: the daemon runs where nothing can reach it (no public URL, no TLS
certificate, no signing-secret endpoint); it dials out to Slack instead. slack-sdk's
aiohttp client does the protocol (``apps.connections.open`` with the app-level token,
the ``hello``, pings, reconnecting on ``disconnect`` or a dead socket).

What we add: every envelope is acknowledged *first* (Slack wants the ack within 3 s
and retries otherwise), then the store work runs in a thread (the store is
synchronous) and the message is edited with ``chat.update`` using the bot token.
A press that cannot be handled is logged once and dropped; nothing from a payload
can raise into the client's loop. The app token is never logged: slack-sdk's
lines go through a filter that redacts anything token-shaped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from monitor.alerts.base import redact
from monitor.alerts.format import describe_mark, with_feedback
from monitor.errors import StoreError
from monitor.interact.actions import InteractionError, apply_press, parse_block_actions
from monitor.store.base import Store

__all__ = ["ButtonListener", "sdk_logger"]

log = logging.getLogger("monitor.interact")

_REFUSED = {"invalid_auth", "not_authed", "not_allowed_token_type", "token_revoked",
            "account_inactive", "token_expired", "missing_scope"}
"""Answers to apps.connections.open that no retry can fix: the operator must."""
HANDLER_GRACE_SECONDS = 5.0
"""How long a stop waits for presses already being stored and shown."""


class _Redact(logging.Filter):
    """One line per slack-sdk record, token-shaped text removed, no traceback (the SDK
    logs a full traceback every few seconds while Slack is unreachable)."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f" ({type(record.exc_info[1]).__name__})"
        record.msg, record.args = redact(text, self.secrets), None
        record.exc_info, record.exc_text = None, None
        return True


def sdk_logger(secrets: list[str]) -> logging.Logger:
    """The logger slack-sdk's Socket Mode and async Web clients write to, redacted."""
    logger = logging.getLogger("monitor.interact.sdk")
    for old in [f for f in logger.filters if isinstance(f, _Redact)]:
        logger.removeFilter(old)
    logger.addFilter(_Redact(secrets))
    return logger


class ButtonListener:
    """Receives the analysts' button presses and applies them; an async context manager.

        async with ButtonListener(app_token=..., bot_token=..., store=store, now=utc_now):
            ...  # the daemon runs
    """

    def __init__(self, *, app_token: str, bot_token: str, store: Store,
                 now: Callable[[], datetime], base_url: str | None = None,
                 ping_interval: float = 5.0) -> None:
        self._app_token = app_token
        self._bot_token = bot_token
        self._store = store
        self._now = now
        self._base_url = base_url
        self._ping_interval = ping_interval
        self._client: SocketModeClient | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self.handled = 0
        """Presses stored (for logs and tests)."""

    def __repr__(self) -> str:  # never show the tokens
        return "ButtonListener()"

    async def __aenter__(self) -> ButtonListener:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> bool:
        """Open the connection in the background; False (and one error line) when Slack
        refuses the app token, so the daemon keeps alerting without buttons."""
        logger = sdk_logger([self._app_token, self._bot_token])
        kwargs: dict[str, Any] = {"base_url": self._base_url} if self._base_url else {}
        web = AsyncWebClient(token=self._bot_token, logger=logger, **kwargs)
        url: str | None = None
        try:
            answer = await web.apps_connections_open(app_token=self._app_token)
            url = str(answer.get("url") or "") or None
        except SlackApiError as exc:
            code = _code(exc)
            if code in _REFUSED:
                log.error("Slack buttons are off: apps.connections.open answered %s; set "
                          "SLACK_APP_TOKEN to an app-level token (xapp-…) with the "
                          "connections:write scope and enable Socket Mode in the app", code)
                return False
            log.warning("Slack buttons: apps.connections.open answered %s; retrying in the "
                        "background", code or "an error")
        except (TimeoutError, SlackClientError, aiohttp.ClientError, OSError) as exc:
            log.warning("Slack buttons: cannot reach Slack yet (%s); retrying in the background",
                        redact(type(exc).__name__, [self._app_token]))
        client = SocketModeClient(app_token=self._app_token, logger=logger, web_client=web,
                                  ping_interval=self._ping_interval)
        client.socket_mode_request_listeners.append(self._on_request)
        client.wss_uri = url  # one-shot URL already issued: connect() uses it
        self._client = client
        self._connecting = asyncio.create_task(client.connect(), name="slack-socket-mode")
        log.info("Slack buttons: listening for presses over Socket Mode")
        return True

    async def aclose(self) -> None:
        """Let presses in progress finish (briefly), then close the socket."""
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=HANDLER_GRACE_SECONDS)
        if self._client is not None:
            try:
                await self._client.close()
            except (aiohttp.ClientError, OSError, RuntimeError) as exc:
                log.debug("Slack buttons: closing the socket: %s", type(exc).__name__)
            self._client = None
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
            await asyncio.gather(self._connecting, return_exceptions=True)
        self._connecting = None

    # --- one envelope -------------------------------------------------------------------
    async def _on_request(self, client: AsyncBaseSocketModeClient,
                          request: SocketModeRequest) -> None:
        """Ack at once, then handle. Runs in its own task per envelope (slack-sdk), so a
        slow store or Slack never delays the next ack."""
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            await client.send_socket_mode_response(
                SocketModeResponse(envelope_id=request.envelope_id))
            if request.type != "interactive":
                log.debug("Slack buttons: ignored a %s envelope", request.type)
                return
            await self._handle(request.payload)
        except (ConnectionError, aiohttp.ClientError, OSError) as exc:
            log.warning("Slack buttons: could not acknowledge a press (%s); Slack will resend "
                        "it", type(exc).__name__)
        finally:
            if task is not None:
                self._handlers.discard(task)

    async def _handle(self, payload: Any) -> None:
        try:
            press = parse_block_actions(payload)
            marks = await asyncio.to_thread(apply_press, self._store, press, now=self._now())
        except InteractionError as exc:
            log.warning("Slack buttons: ignored a press: %s", redact(str(exc)))
            return
        except StoreError as exc:
            log.warning("Slack buttons: could not store a press: %s", exc)
            return
        self.handled += 1
        shown = "; ".join(describe_mark(m) for m in marks) or "no marks"
        log.info("Slack buttons: %s on article %s by %s (%s)", press.action, press.article_id,
                 press.user_id, shown)
        if not press.blocks:
            log.warning("Slack buttons: the press came without the message, so it is not "
                        "edited (stored all the same)")
            return
        client = self._client
        if client is None:
            return
        try:
            await client.web_client.chat_update(
                channel=press.channel_id, ts=press.message_ts,
                blocks=with_feedback(press.blocks, marks), text=press.text or None)
        except SlackApiError as exc:
            log.warning("Slack buttons: chat.update answered %s; the press is stored, the "
                        "message not edited", _code(exc) or "an error")
        except (TimeoutError, SlackClientError, aiohttp.ClientError, OSError) as exc:
            log.warning("Slack buttons: could not edit the message (%s); the press is stored",
                        type(exc).__name__)


def _code(exc: SlackApiError) -> str:
    """Slack's error code only (``str(exc)`` carries request details)."""
    data = getattr(exc.response, "data", None)
    code = data.get("error") if isinstance(data, dict) else None
    return redact(str(code or ""))[:80]
