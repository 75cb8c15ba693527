"""A local stand-in for the Slack Web API, spoken to over real HTTP.

The Slack deliverer is tested through slack-sdk's real ``WebClient`` against
this server, so what is exercised is the actual request slack-sdk builds and
the actual error handling of our code, not a mock of either. The server checks
what Slack checks (bearer token, POST, required arguments, Block Kit limits,
known channels, metadata shape) and records every call and every accepted
message. Tests can inject failures: HTTP 5xx, rate limiting with Retry-After,
Slack error codes, and the nastiest one, ``drop_after_post_next``: the message
is accepted and stored, then the connection is closed without an answer, so
the client cannot know whether it was posted.

    with FakeSlack(token="xoxb-test") as slack:
        deliverer = SlackDeliverer("xoxb-test", "C0ALERTS1", base_url=slack.base_url)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = ["FakeCall", "FakeMessage", "FakeSlack"]

DEFAULT_TOKEN = "xoxb-fake-0000-test-token"
DEFAULT_CHANNELS = {"C0ALERTS1": "alerts", "C0OTHER22": "general"}
WEBHOOK_SECRET = "fakeWebhookSecret0123456789"

# Slack's documented Block Kit limits.
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_CONTEXT_ELEMENTS = 10
MAX_MESSAGE_TEXT = 40_000
MAX_ACTION_ELEMENTS = 25
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_ID = 255  # action_id and block_id
JSON_KEYS = ("blocks", "metadata", "attachments")  # JSON-encoded when sent as form fields


@dataclass(slots=True)
class FakeCall:
    """One request as the server received it (after parsing the body)."""

    method: str
    """The API method, e.g. ``chat.postMessage``."""
    http_method: str
    params: dict[str, Any]
    authorization: str | None
    content_type: str


@dataclass(slots=True)
class FakeMessage:
    """A message the fake accepted into a channel."""

    channel: str
    """The channel ID (names are resolved, as Slack does)."""
    ts: str
    text: str | None
    blocks: list[dict[str, Any]] | None
    metadata: dict[str, Any] | None
    extra: dict[str, Any] = field(default_factory=dict)
    edits: int = 0
    """How many times chat.update rewrote it."""

    @property
    def thread_ts(self) -> str | None:
        """The parent's ts for a thread reply; None for a top-level message."""
        value = self.extra.get("thread_ts")
        return str(value) if value else None

    def as_history_item(self, *, with_metadata: bool) -> dict[str, Any]:
        item: dict[str, Any] = {
            "type": "message",
            "ts": self.ts,
            "text": self.text or "",
            "bot_id": "B0FAKEBOT",
        }
        if self.blocks is not None:
            item["blocks"] = self.blocks
        if with_metadata and self.metadata is not None:
            item["metadata"] = self.metadata
        if self.thread_ts:
            item["thread_ts"] = self.thread_ts
        return item


@dataclass(slots=True)
class _Failure:
    status: int
    error: str | None
    retry_after: float | None
    method: str | None
    drop: bool = False
    stall: float = 0.0


class _ApiError(Exception):
    def __init__(self, error: str, status: int = 200, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.extra = extra


class FakeSlack:
    """ThreadingHTTPServer on 127.0.0.1 (ephemeral port) speaking a subset of the Web API.

    Supported methods: ``chat.postMessage``, ``chat.update``, ``conversations.history``,
    ``conversations.replies``, ``conversations.list``, ``auth.test`` and
    ``apps.connections.open`` (with the app-level token; see ``fake_socket_mode``).
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        channels: Mapping[str, str] | None = None,
        *,
        history_page_size: int | None = None,
        port: int = 0,
        app_token: str | None = None,
    ) -> None:
        self.token = token
        self.app_token = app_token
        """The app-level token ``apps.connections.open`` wants (Socket Mode)."""
        self.socket_url: str | None = None
        """What ``apps.connections.open`` answers (a FakeSocketMode sets it)."""
        self.port = port
        """0: an ephemeral port; a fixed one lets a test start the fake where a client
        already points (Slack coming back after refusing connections)."""
        self.channels: dict[str, str] = dict(channels or DEFAULT_CHANNELS)
        """Channel ID → name."""
        self.history_page_size = history_page_size
        """If set, conversations.history returns at most this many per page (Slack may
        return fewer than ``limit``), so callers must follow the cursor."""
        self.rate_limit_every: int | None = None
        """Answer every n-th chat.postMessage with 429 (a rate-limit storm), when set."""
        self.rate_limit_retry_after = 1.0
        self._posts_seen = 0
        self.not_member: set[str] = set()
        """Channel IDs the bot has not joined (posting there answers ``not_in_channel``)."""
        self.messages: list[FakeMessage] = []
        self.calls: list[FakeCall] = []
        self._failures: list[_Failure] = []
        self._lock = threading.Lock()
        self._last_micros = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- life cycle ----------------------------------------------------------------
    def start(self) -> FakeSlack:
        handler = type("_BoundHandler", (_Handler,), {"fake": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "start the server first"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/api/"

    # --- failure injection -------------------------------------------------------------
    def fail_next(
        self,
        n: int = 1,
        *,
        status: int | None = None,
        error: str | None = None,
        retry_after: float | None = None,
        method: str | None = None,
    ) -> None:
        """Answer the next ``n`` calls (of ``method``, or any) with a failure.

        ``error="ratelimited"`` → HTTP 429 with a Retry-After header (default 1 s);
        ``status=5xx`` → that status with ``internal_error``; any other ``error``
        → HTTP 200 ``{"ok": false, "error": error}`` as Slack does.
        """
        if error in ("ratelimited", "rate_limited"):
            status = status or 429
            retry_after = 1 if retry_after is None else retry_after
        elif error is None:
            status = status or 500
            error = "internal_error"
        else:
            status = status or 200
        with self._lock:
            self._failures.extend(
                _Failure(status, error, retry_after, method) for _ in range(n)
            )

    def clear_failures(self) -> None:
        """Forget every injected failure not yet used (the outage is over)."""
        with self._lock:
            self._failures.clear()

    def pending_failures(self) -> int:
        """How many injected failures (drops, stalls, errors) are still waiting for a call."""
        with self._lock:
            return len(self._failures)

    def drop_after_post_next(self, n: int = 1, *, method: str = "chat.postMessage") -> None:
        """Accept the next ``n`` posts (API or ``method="webhook"``), then hang up unanswered."""
        with self._lock:
            self._failures.extend(_Failure(0, None, None, method, drop=True) for _ in range(n))

    def stall_next(self, seconds: float, n: int = 1, *, method: str = "chat.postMessage") -> None:
        """Accept the next ``n`` posts but answer only after ``seconds`` (client timeouts)."""
        with self._lock:
            self._failures.extend(
                _Failure(0, None, None, method, stall=seconds) for _ in range(n)
            )

    @property
    def webhook_url(self) -> str:
        """An incoming-webhook URL for the first channel; the path is the secret."""
        return self.base_url.replace("/api/", "/services/T0FAKE/B0FAKE/" + WEBHOOK_SECRET)

    def add_message(
        self, channel: str, text: str, *, metadata: dict[str, Any] | None = None
    ) -> FakeMessage:
        """Put a message in a channel directly (someone else posting)."""
        with self._lock:
            msg = FakeMessage(self._resolve(channel), self._next_ts(), text, None, metadata)
            self.messages.append(msg)
            return msg

    def posted(self, channel: str | None = None) -> list[FakeMessage]:
        with self._lock:
            wanted = self._resolve(channel) if channel else None
            return [m for m in self.messages if wanted is None or m.channel == wanted]

    def calls_to(self, method: str) -> list[FakeCall]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    # --- request handling (called on server threads) --------------------------------
    def _take_failure(self, method: str) -> _Failure | None:
        for i, failure in enumerate(self._failures):
            if failure.method is None or failure.method == method:
                return self._failures.pop(i)
        return None

    def _next_ts(self) -> str:
        micros = max(time.time_ns() // 1000, self._last_micros + 1)
        self._last_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _resolve(self, channel: str | None) -> str:
        if not channel:
            raise _ApiError("channel_not_found")
        if channel in self.channels:
            return channel
        name = channel.lstrip("#")
        for cid, cname in self.channels.items():
            if cname == name:
                return cid
        raise _ApiError("channel_not_found")

    def handle(self, call: FakeCall) -> tuple[int, dict[str, Any], dict[str, str], _Failure | None]:
        """Returns (status, body, extra headers, the injected drop/stall if any)."""
        with self._lock:
            self.calls.append(call)
            failure = self._take_failure(call.method)
            if failure is None and self.rate_limit_every and call.method == "chat.postMessage":
                self._posts_seen += 1
                if self._posts_seen % self.rate_limit_every == 0:
                    failure = _Failure(429, "ratelimited", self.rate_limit_retry_after,
                                       call.method)
            try:
                if call.http_method != "POST":
                    raise _ApiError("invalid_request_method", status=405)
                if failure is not None and not (failure.drop or failure.stall):
                    headers = {}
                    if failure.retry_after is not None:
                        headers["Retry-After"] = f"{failure.retry_after:g}"
                    return failure.status, {"ok": False, "error": failure.error}, headers, None
                self._check_auth(call)
                body = self._dispatch(call)
            except _ApiError as exc:
                return exc.status, {"ok": False, "error": exc.error, **exc.extra}, {}, None
            return 200, body, {}, failure

    def _check_auth(self, call: FakeCall) -> None:
        if call.method == "webhook":  # the secret is in the path, checked by _webhook
            return
        authorization = call.authorization
        if not authorization:
            raise _ApiError("not_authed")
        scheme, _, value = authorization.partition(" ")
        value = value.strip()
        if call.method == "apps.connections.open":  # only an app-level token may open one
            if scheme.lower() != "bearer" or not value.startswith("xapp-"):
                raise _ApiError("not_allowed_token_type")
            if value != self.app_token:
                raise _ApiError("invalid_auth")
            return
        if value.startswith("xapp-"):  # Slack refuses app tokens for bot methods
            raise _ApiError("not_allowed_token_type")
        if scheme.lower() != "bearer" or value != self.token:
            raise _ApiError("invalid_auth")

    def _dispatch(self, call: FakeCall) -> dict[str, Any]:
        if call.method == "webhook":
            return self._webhook(call)
        handlers = {
            "chat.postMessage": self._post_message,
            "conversations.history": self._history,
            "conversations.replies": self._replies,
            "chat.update": self._update,
            "conversations.list": self._list,
            "apps.connections.open": self._connections_open,
            "auth.test": lambda _p: {"ok": True, "user_id": "U0FAKEBOT", "bot_id": "B0FAKEBOT",
                                     "team": "Fake Team", "user": "news-monitor"},
            "conversations.info": self._info,
        }
        handler = handlers.get(call.method)
        if handler is None:
            raise _ApiError("unknown_method", status=404)
        return handler(call.params)

    def _post_message(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve(p.get("channel"))
        if channel in self.not_member:
            raise _ApiError("not_in_channel")
        text = p.get("text")
        blocks = p.get("blocks")
        if not text and not blocks:
            raise _ApiError("no_text")
        if text is not None and (not isinstance(text, str) or len(text) > MAX_MESSAGE_TEXT):
            raise _ApiError("msg_too_long")
        if blocks is not None:
            _check_blocks(blocks)
        metadata = p.get("metadata")
        if metadata is not None and (
            not isinstance(metadata, dict)
            or not isinstance(metadata.get("event_type"), str)
            or not isinstance(metadata.get("event_payload"), dict)
        ):
            raise _ApiError("invalid_metadata_format")
        extra = {k: v for k, v in p.items() if k not in ("channel", "text", "blocks", "metadata")}
        thread_ts = extra.get("thread_ts")
        if thread_ts:  # Slack threads only under an existing top-level message
            parent = self._find(channel, str(thread_ts))
            if parent is None or parent.thread_ts:
                raise _ApiError("thread_not_found")
        msg = FakeMessage(channel, self._next_ts(), text, blocks, metadata, extra)
        self.messages.append(msg)
        return {"ok": True, "channel": channel, "ts": msg.ts,
                "message": msg.as_history_item(with_metadata=True)}

    def _webhook(self, call: FakeCall) -> dict[str, Any]:
        if call.params.get("_secret") != WEBHOOK_SECRET:
            raise _ApiError("invalid_token", status=403)
        params = {k: v for k, v in call.params.items() if k != "_secret"}
        if "channel" in params or "metadata" in params:
            raise _ApiError("invalid_payload", status=400)  # webhooks post to a fixed channel
        params["channel"] = next(iter(self.channels))
        self._post_message(params)
        return {"ok": True}

    def _history(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = p.get("channel")
        if channel not in self.channels:  # conversations.history takes IDs only
            raise _ApiError("channel_not_found")
        limit = min(int(p.get("limit") or 100), 999)
        if self.history_page_size is not None:
            limit = min(limit, self.history_page_size)
        oldest = float(p.get("oldest") or 0)
        latest = float(p["latest"]) if p.get("latest") else float("inf")
        with_metadata = _truthy(p.get("include_all_metadata"))
        items = [  # thread replies are not in a channel's history (unless broadcast)
            m for m in reversed(self.messages)
            if m.channel == channel and oldest < float(m.ts) < latest
            and (not m.thread_ts or _truthy(m.extra.get("reply_broadcast")))
        ]
        start = int(str(p.get("cursor") or "o:0").split(":", 1)[1])
        page = items[start : start + limit]
        more = start + limit < len(items)
        return {
            "ok": True,
            "messages": [m.as_history_item(with_metadata=with_metadata) for m in page],
            "has_more": more,
            "response_metadata": {"next_cursor": f"o:{start + limit}" if more else ""},
        }

    def _info(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = p.get("channel")
        if channel not in self.channels:  # conversations.info takes IDs only
            raise _ApiError("channel_not_found")
        return {"ok": True, "channel": {"id": channel, "name": self.channels[channel],
                                        "is_member": channel not in self.not_member,
                                        "is_archived": False}}

    def _find(self, channel: str, ts: str) -> FakeMessage | None:
        return next((m for m in self.messages if m.channel == channel and m.ts == ts), None)

    def _update(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve(p.get("channel"))
        ts = str(p.get("ts") or "")
        msg = self._find(channel, ts)
        if msg is None:
            raise _ApiError("message_not_found")
        if p.get("blocks") is not None:
            _check_blocks(p["blocks"])
            msg.blocks = p["blocks"]
        if p.get("text") is not None:
            msg.text = p["text"]
        if isinstance(p.get("metadata"), dict):
            msg.metadata = p["metadata"]
        msg.edits += 1
        return {"ok": True, "channel": channel, "ts": ts, "text": msg.text or ""}

    def _replies(self, p: dict[str, Any]) -> dict[str, Any]:
        """The parent then its replies, oldest first, paged like history."""
        channel = p.get("channel")
        if channel not in self.channels:
            raise _ApiError("channel_not_found")
        ts = str(p.get("ts") or "")
        parent = self._find(channel, ts)
        if parent is None:
            raise _ApiError("thread_not_found")
        limit = min(int(p.get("limit") or 100), 999)
        if self.history_page_size is not None:
            limit = min(limit, self.history_page_size)
        oldest = float(p.get("oldest") or 0)
        with_metadata = _truthy(p.get("include_all_metadata"))
        items = [parent] + [m for m in self.messages
                            if m.channel == channel and m.thread_ts == ts and oldest < float(m.ts)]
        start = int(str(p.get("cursor") or "o:0").split(":", 1)[1])
        page = items[start : start + limit]
        more = start + limit < len(items)
        return {
            "ok": True,
            "messages": [m.as_history_item(with_metadata=with_metadata) for m in page],
            "has_more": more,
            "response_metadata": {"next_cursor": f"o:{start + limit}" if more else ""},
        }

    def replies_to(self, ts: str) -> list[FakeMessage]:
        """Thread replies under the message ``ts``, oldest first."""
        with self._lock:
            return [m for m in self.messages if m.thread_ts == ts]

    def top_level(self, channel: str | None = None) -> list[FakeMessage]:
        with self._lock:
            return [m for m in self.messages if not m.thread_ts
                    and (channel is None or m.channel == channel)]

    def _connections_open(self, p: dict[str, Any]) -> dict[str, Any]:
        if not self.socket_url:
            raise _ApiError("internal_error", status=500)
        return {"ok": True, "url": self.socket_url}

    def _list(self, p: dict[str, Any]) -> dict[str, Any]:
        chans = [{"id": cid, "name": name, "is_archived": False}
                 for cid, name in self.channels.items()]
        return {"ok": True, "channels": chans, "response_metadata": {"next_cursor": ""}}


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true")


def _text_len(obj: Any) -> int:
    return len(obj.get("text", "")) if isinstance(obj, dict) else 0


def _check_blocks(blocks: Any) -> None:
    if not isinstance(blocks, list) or not blocks or len(blocks) > MAX_BLOCKS:
        raise _ApiError("invalid_blocks")
    block_ids: set[str] = set()
    for block in blocks:
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise _ApiError("invalid_blocks")
        kind = block["type"]
        if kind == "header":
            text = block.get("text")
            if (
                not isinstance(text, dict)
                or text.get("type") != "plain_text"
                or not 0 < _text_len(text) <= MAX_HEADER_TEXT
            ):
                raise _ApiError("invalid_blocks")
        elif kind == "section":
            text, fields = block.get("text"), block.get("fields")
            if text is None and not fields:
                raise _ApiError("invalid_blocks")
            if text is not None and not 0 < _text_len(text) <= MAX_SECTION_TEXT:
                raise _ApiError("invalid_blocks")
            if fields is not None and (
                not isinstance(fields, list)
                or len(fields) > MAX_FIELDS
                or any(not 0 < _text_len(f) <= MAX_FIELD_TEXT for f in fields)
            ):
                raise _ApiError("invalid_blocks")
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 0 < len(elements) <= MAX_CONTEXT_ELEMENTS:
                raise _ApiError("invalid_blocks")
        elif kind == "actions":
            _check_actions(block)
        block_id = block.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str) or not 0 < len(block_id) <= MAX_ID \
                    or block_id in block_ids:
                raise _ApiError("invalid_blocks")  # Slack: block_ids unique in a message
            block_ids.add(block_id)


def _check_actions(block: dict[str, Any]) -> None:
    """An actions block as Slack checks it: 1-25 interactive elements; a button has
    plain_text text of at most 75 characters, a unique action_id, a value of at most
    2,000 characters and, if any, the style primary or danger."""
    elements = block.get("elements")
    if not isinstance(elements, list) or not 0 < len(elements) <= MAX_ACTION_ELEMENTS:
        raise _ApiError("invalid_blocks")
    action_ids: set[str] = set()
    for element in elements:
        if not isinstance(element, dict) or element.get("type") != "button":
            raise _ApiError("invalid_blocks")  # the fake knows buttons only
        text = element.get("text")
        if (not isinstance(text, dict) or text.get("type") != "plain_text"
                or not 0 < _text_len(text) <= MAX_BUTTON_TEXT):
            raise _ApiError("invalid_blocks")
        action_id = element.get("action_id")
        if not isinstance(action_id, str) or not 0 < len(action_id) <= MAX_ID \
                or action_id in action_ids:
            raise _ApiError("invalid_blocks")
        action_ids.add(action_id)
        value = element.get("value")
        if value is not None and (not isinstance(value, str) or len(value) > MAX_BUTTON_VALUE):
            raise _ApiError("invalid_blocks")
        if element.get("style") not in (None, "primary", "danger"):
            raise _ApiError("invalid_blocks")


def _parse_body(content_type: str, raw: bytes) -> dict[str, Any]:
    """JSON, form-encoded or multipart, as slack-sdk sends depending on the method."""
    ctype = content_type.split(";", 1)[0].strip().lower()
    params: dict[str, Any]
    if ctype == "application/json":
        loaded = json.loads(raw.decode("utf-8") or "{}")
        if not isinstance(loaded, dict):
            raise _ApiError("invalid_json")
        return loaded
    if ctype == "multipart/form-data":
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + raw
        )
        params = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name:
                payload = part.get_payload(decode=True) or b""
                params[str(name)] = payload.decode("utf-8", "replace")
    else:  # application/x-www-form-urlencoded (or none)
        params = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
    for key in JSON_KEYS:
        if isinstance(params.get(key), str):
            try:
                params[key] = json.loads(params[key])
            except ValueError as exc:
                raise _ApiError(f"invalid_{key}") from exc
    return params


class _Handler(BaseHTTPRequestHandler):
    fake: FakeSlack
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        webhook = parts.path.startswith("/services/")
        if not (webhook or parts.path.startswith("/api/")):
            self._reply(404, {"ok": False, "error": "not_found"}, {}, webhook=False)
            return
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        content_type = self.headers.get("Content-Type") or ""
        try:
            params = _parse_body(content_type, raw)
        except (_ApiError, ValueError) as exc:
            error = exc.error if isinstance(exc, _ApiError) else "invalid_form_data"
            self._reply(200, {"ok": False, "error": error}, {}, webhook=webhook)
            return
        params.update(dict(parse_qsl(parts.query)))
        if webhook:
            params["_secret"] = parts.path.rsplit("/", 1)[-1]
        call = FakeCall(
            method="webhook" if webhook else parts.path[len("/api/") :],
            http_method=self.command,
            params=params,
            authorization=self.headers.get("Authorization"),
            content_type=content_type,
        )
        status, body, headers, injected = self.fake.handle(call)
        if injected is not None and injected.drop:
            self.close_connection = True  # hang up: no status line, no body
            return
        if injected is not None and injected.stall:
            time.sleep(injected.stall)
        self._reply(status, body, headers, webhook=webhook)

    def _reply(
        self, status: int, body: dict[str, Any], headers: dict[str, str], *, webhook: bool
    ) -> None:
        if webhook:  # incoming webhooks answer in plain text: "ok" or the error code
            data = (b"ok" if body.get("ok") else str(body.get("error")).encode())
            ctype = "text/plain; charset=utf-8"
        else:
            data = json.dumps(body).encode("utf-8")
            ctype = "application/json; charset=utf-8"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_POST = _serve
    do_GET = _serve
