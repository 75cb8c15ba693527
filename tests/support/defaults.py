"""Stage policies as the daemon builds them from default settings.

Defaults are written once, in monitor/settings.py; the stage dataclasses require
their values. Tests take them from here and override only what they are about,
so no test repeats a default number.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from monitor import app
from monitor.alerts.outbox import DrainOptions
from monitor.decide import AlertRules
from monitor.feeds import LifecyclePolicy
from monitor.settings import Settings

DEFAULTS = Settings()


def lifecycle(**overrides: Any) -> LifecyclePolicy:
    return replace(app.lifecycle_policy(DEFAULTS), **overrides)


def drain_options(**overrides: Any) -> DrainOptions:
    return replace(app.drain_options(DEFAULTS), **overrides)


def alert_rules(destination: str = "console", **overrides: Any) -> AlertRules:
    return replace(app.alert_rules(DEFAULTS), destination=destination, **overrides)
