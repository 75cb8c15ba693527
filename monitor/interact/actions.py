"""A button press, from Slack's ``block_actions`` payload to the store, without the network.

Parsing is strict and total: anything we did not post (an unknown ``action_id``, a
value that is not ours, a missing user or message) becomes one ``InteractionError``
with a reason to log, never an exception that could reach the Socket Mode client.
The article named by the button is looked up in the store, so a forged or stale
value cannot label or mute something that does not exist, and the outlet muted is
the stored article's, not whatever the value claims.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from monitor.alerts.format import ACTION_IDS
from monitor.errors import MonitorError
from monitor.models import FeedbackMark
from monitor.store.base import Store

__all__ = [
    "OUTLET_MUTE",
    "STORY_MUTE",
    "ButtonPress",
    "InteractionError",
    "apply_press",
    "parse_block_actions",
]

OUTLET_MUTE = timedelta(hours=24)
"""How long "Mute this outlet for 24 h" lasts (the button says so)."""
STORY_MUTE = timedelta(hours=72)
"""How long "Mute this story" lasts: twice the story index's default window (36 h), after
which a new report would start a new story anyway."""

_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,30}$")
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,30}$")
_TS = re.compile(r"^\d{1,12}\.\d{1,9}$")
_ID_MAX = 200


class InteractionError(MonitorError):
    """A button press that cannot be acted on; the reason is logged once."""


@dataclass(frozen=True, slots=True)
class ButtonPress:
    """One press of one of our buttons, as much as we need of it."""

    action: str
    """One of ``monitor.alerts.format.ACTION_IDS``."""
    user_id: str
    username: str
    channel_id: str
    message_ts: str
    article_id: str
    alert_id: str | None = None
    story_id: str | None = None
    blocks: list[dict[str, Any]] = field(default_factory=list)
    """The message as Slack shows it now (edited in place: the buttons stay)."""
    text: str = ""


def _str(value: Any, what: str, *, pattern: re.Pattern[str] | None = None) -> str:
    if not isinstance(value, str) or not value or len(value) > _ID_MAX:
        raise InteractionError(f"{what} is missing or not a short string")
    if pattern is not None and not pattern.match(value):
        raise InteractionError(f"{what} is not shaped like a Slack id")
    return value


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InteractionError(f"{what} is missing or not an object")
    return value


def parse_block_actions(payload: Any) -> ButtonPress:
    """The press in a ``block_actions`` payload, or ``InteractionError`` saying what is wrong."""
    payload = _mapping(payload, "the payload")
    if payload.get("type") != "block_actions":
        raise InteractionError(f"not a block_actions payload (type {str(payload.get('type'))!r})")
    user = _mapping(payload.get("user"), "user")
    user_id = _str(user.get("id"), "user.id", pattern=_USER_ID)
    username = str(user.get("username") or user.get("name") or "")[:_ID_MAX]
    actions = payload.get("actions")
    if not isinstance(actions, list) or not actions:
        raise InteractionError("no actions in the payload")
    action = _mapping(actions[0], "actions[0]")
    action_id = action.get("action_id")
    if action_id not in ACTION_IDS:
        raise InteractionError(f"unknown action_id {str(action_id)[:60]!r}")
    raw = action.get("value")
    if not isinstance(raw, str) or not raw:
        raise InteractionError(f"{action_id}: the button has no value")
    try:
        value = json.loads(raw)
    except ValueError:
        raise InteractionError(f"{action_id}: the button's value is not ours (not JSON)") from None
    value = _mapping(value, f"{action_id}: the button's value")
    article_id = _str(value.get("article"), "the button's article id")
    container = payload.get("container") if isinstance(payload.get("container"), Mapping) else {}
    channel = payload.get("channel") if isinstance(payload.get("channel"), Mapping) else {}
    message = payload.get("message") if isinstance(payload.get("message"), Mapping) else {}
    channel_id = _str(container.get("channel_id") or channel.get("id"), "the channel id",
                      pattern=_CHANNEL_ID)
    message_ts = _str(container.get("message_ts") or message.get("ts"), "the message ts",
                      pattern=_TS)
    blocks = message.get("blocks")
    story = value.get("story")
    alert = value.get("alert")
    return ButtonPress(
        action=str(action_id), user_id=user_id, username=username, channel_id=channel_id,
        message_ts=message_ts, article_id=article_id,
        alert_id=alert if isinstance(alert, str) and len(alert) <= _ID_MAX else None,
        story_id=story if isinstance(story, str) and story and len(story) <= _ID_MAX else None,
        blocks=[b for b in blocks if isinstance(b, dict)] if isinstance(blocks, list) else [],
        text=str(message.get("text") or ""),
    )


def apply_press(store: Store, press: ButtonPress, *, now: datetime) -> tuple[FeedbackMark, ...]:
    """Store the label or the mute (synchronous: run it in a thread) and return what the
    message should now show under it."""
    found = store.get_article(press.article_id)
    if found is None:
        raise InteractionError(f"{press.action}: no stored article {press.article_id!r}")
    article, _ = found
    if press.action in ("label_relevant", "label_not_relevant"):
        store.add_label(article.id, 1 if press.action == "label_relevant" else 0,
                        source="slack", at=now, user_id=press.user_id)
    elif press.action == "mute_outlet":
        store.add_mute("outlet", article.source, created_by=press.user_id, at=now,
                       expires_at=now + OUTLET_MUTE)
    elif press.action == "mute_story":
        if press.story_id is None:
            raise InteractionError("mute_story: the button names no story")
        store.add_mute("story", press.story_id, created_by=press.user_id, at=now,
                       expires_at=now + STORY_MUTE)
    else:  # parse_block_actions admits only ACTION_IDS
        raise InteractionError(f"unknown action_id {press.action!r}")
    return store.feedback_marks(article.id, story_id=press.story_id, outlet=article.source,
                                now=now)
