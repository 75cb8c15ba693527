"""The analysts' Slack buttons: label a parent alert, mute its outlet or its story.

``actions`` turns a ``block_actions`` payload into a typed command and applies it
through the Store protocol (pure, testable without Slack); ``socket`` receives the
presses over Socket Mode, so the daemon needs no public URL.
"""

from __future__ import annotations

from monitor.interact.actions import (
    OUTLET_MUTE,
    STORY_MUTE,
    ButtonPress,
    InteractionError,
    apply_press,
    parse_block_actions,
)
from monitor.interact.socket import ButtonListener

__all__ = [
    "OUTLET_MUTE",
    "STORY_MUTE",
    "ButtonListener",
    "ButtonPress",
    "InteractionError",
    "apply_press",
    "parse_block_actions",
]
