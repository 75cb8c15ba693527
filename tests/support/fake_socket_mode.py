"""A local stand-in for Slack's Socket Mode, spoken to over a real WebSocket.

The daemon's button listener is slack-sdk's real aiohttp ``SocketModeClient``: it
calls ``apps.connections.open`` on the fake Web API (``FakeSlack``, which must hold
the app-level token), gets this server's ``ws://127.0.0.1:PORT/link/?ticket=…`` and
connects. The server says ``hello`` like Slack, then sends whatever envelopes the
test asks for (``press``: an ``interactive`` envelope with a ``block_actions``
payload built from a message the fake Slack holds, shaped as Slack sends it) and
records every acknowledgement with the time it took.

    with FakeSlack(app_token=APP) as slack, FakeSocketMode(slack) as socket:
        ...  # run the daemon with SLACK_APP_TOKEN=APP, SLACK_API_URL=slack.base_url
        envelope = socket.press(message, "label_relevant", user_id="U0ALICE01")
        socket.wait_ack(envelope)
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiohttp import WSMsgType, web

from tests.support.fake_slack import FakeMessage, FakeSlack

__all__ = ["Ack", "FakeSocketMode"]


@dataclass(slots=True)
class Ack:
    envelope_id: str
    seconds: float
    """From sending the envelope to receiving its ack."""
    body: dict[str, Any]


class FakeSocketMode:
    """aiohttp WebSocket server on 127.0.0.1 in its own thread and event loop."""

    def __init__(self, slack: FakeSlack) -> None:
        self.slack = slack
        self.acks: dict[str, Ack] = {}
        self.sent: dict[str, float] = {}
        self.connections = 0
        """WebSocket connections accepted so far (a reconnect adds one)."""
        self.received: list[Any] = []
        """Every text frame from the client that was not an ack."""
        self._sockets: set[web.WebSocketResponse] = set()
        self._tickets: set[str] = set()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # --- life cycle ----------------------------------------------------------------
    def start(self) -> FakeSocketMode:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake Socket Mode server did not start")
        self.issue_url()
        return self

    def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
        app.router.add_get("/link/", self._ws)
        self._runner = web.AppRunner(app)
        loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        server = site._server
        assert server is not None and server.sockets
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup())
        loop.close()

    def close(self) -> None:
        loop = self._loop
        if loop is not None and loop.is_running():
            asyncio.run_coroutine_threadsafe(self._close_sockets(), loop).result(5)
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._thread = self._loop = None

    def __enter__(self) -> FakeSocketMode:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def issue_url(self) -> str:
        """A new one-shot ticket URL, answered by the fake's ``apps.connections.open``
        (Slack's URLs are single-use too; reconnecting asks for a new one)."""
        ticket = uuid.uuid4().hex
        with self._lock:
            self._tickets.add(ticket)
        url = f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}&app_id=A0FAKEAPP"
        self.slack.socket_url = url
        return url

    # --- the server ----------------------------------------------------------------
    async def _ws(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        with self._lock:
            known = ticket in self._tickets
            self._tickets.discard(ticket)
        if not known:
            raise web.HTTPUnauthorized(text="invalid ticket")
        self.issue_url()  # the next apps.connections.open gets a fresh ticket
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        with self._changed:
            self._sockets.add(ws)
            self.connections += 1
            self._changed.notify_all()
        await ws.send_json({"type": "hello", "num_connections": 1,
                            "debug_info": {"host": "fake-socket-mode",
                                           "approximate_connection_time": 3600},
                            "connection_info": {"app_id": "A0FAKEAPP"}})
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                self._on_text(msg.data)
        finally:
            with self._changed:
                self._sockets.discard(ws)
                self._changed.notify_all()
        return ws

    def _on_text(self, data: str) -> None:
        arrived = time.monotonic()
        try:
            body = json.loads(data)
        except ValueError:
            body = data
        with self._changed:
            envelope_id = body.get("envelope_id") if isinstance(body, dict) else None
            if isinstance(envelope_id, str) and envelope_id in self.sent:
                self.acks[envelope_id] = Ack(envelope_id, arrived - self.sent[envelope_id], body)
            else:
                self.received.append(body)
            self._changed.notify_all()

    async def _close_sockets(self) -> None:
        for ws in list(self._sockets):
            await ws.close()

    async def _send(self, message: dict[str, Any]) -> None:
        if not self._sockets:
            raise RuntimeError("no Socket Mode client is connected")
        ws = next(iter(self._sockets))
        await ws.send_str(json.dumps(message))

    # --- what tests call -----------------------------------------------------------
    def wait_connected(self, n: int = 1, timeout: float = 15.0) -> None:
        """Until ``n`` connections were accepted and one is open."""
        with self._changed:
            if not self._changed.wait_for(lambda: self.connections >= n and self._sockets,
                                          timeout):
                raise TimeoutError(f"no Socket Mode connection #{n} within {timeout} s")

    def send_envelope(self, payload: Any, *, kind: str = "interactive") -> str:
        """Send one envelope as Slack does; returns its id (the client must ack it)."""
        envelope_id = str(uuid.uuid4())
        message = {"envelope_id": envelope_id, "type": kind, "payload": payload,
                   "accepts_response_payload": False, "retry_attempt": 0,
                   "retry_reason": ""}
        assert self._loop is not None
        with self._lock:
            self.sent[envelope_id] = time.monotonic()
        asyncio.run_coroutine_threadsafe(self._send(message), self._loop).result(5)
        return envelope_id

    def press(self, message: FakeMessage, action_id: str, *, user_id: str,
              username: str = "analyst", value: str | None = None) -> str:
        """An analyst presses the button ``action_id`` on ``message`` (as the fake Slack holds
        it now): the value and block id come from the posted button, like in Slack."""
        button, block_id = _find_button(message.blocks or [], action_id)
        if value is None:
            value = button.get("value") if button else None
        action: dict[str, Any] = {
            "action_id": action_id, "block_id": block_id or "feedback_buttons",
            "type": "button", "action_ts": f"{time.time():.6f}",
            "text": (button or {}).get("text", {"type": "plain_text", "text": action_id}),
        }
        if value is not None:
            action["value"] = value
        return self.send_envelope(block_actions(message, [action], user_id=user_id,
                                                username=username))

    def disconnect(self) -> None:
        """Slack's ``disconnect`` message (it rotates connections now and then)."""
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(
            self._send({"type": "disconnect", "reason": "refresh_requested",
                        "debug_info": {"host": "fake-socket-mode"}}), self._loop).result(5)

    def wait_ack(self, envelope_id: str, timeout: float = 5.0) -> Ack:
        with self._changed:
            if not self._changed.wait_for(lambda: envelope_id in self.acks, timeout):
                raise TimeoutError(f"envelope {envelope_id} was not acknowledged in {timeout} s")
            return self.acks[envelope_id]


def _find_button(blocks: list[dict[str, Any]],
                 action_id: str) -> tuple[dict[str, Any] | None, str | None]:
    for block in blocks:
        if block.get("type") != "actions":
            continue
        for element in block.get("elements") or []:
            if element.get("action_id") == action_id:
                return element, block.get("block_id")
    return None, None


def block_actions(message: FakeMessage, actions: list[dict[str, Any]], *, user_id: str,
                  username: str = "analyst") -> dict[str, Any]:
    """A ``block_actions`` payload as Slack sends it for a press on a channel message."""
    return {
        "type": "block_actions",
        "user": {"id": user_id, "username": username, "name": username, "team_id": "T0FAKE"},
        "api_app_id": "A0FAKEAPP",
        "token": "legacy-verification-token",
        "container": {"type": "message", "message_ts": message.ts,
                      "channel_id": message.channel, "is_ephemeral": False},
        "trigger_id": "1.2.3",
        "team": {"id": "T0FAKE", "domain": "fake"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": message.channel, "name": "alerts"},
        "message": {"type": "message", "ts": message.ts, "text": message.text or "",
                    "bot_id": "B0FAKEBOT", "blocks": message.blocks or []},
        "state": {"values": {}},
        "response_url": "https://hooks.slack.com/actions/T0FAKE/1/fake",
        "actions": actions,
    }
