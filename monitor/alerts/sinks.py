"""The sink registry: destination → deliverer, each destination with its own health.

An alert names its destination ("slack:C0123", "webhook", "console"); the drainer
looks the deliverer up here, as arq looks a job's function up by name, so a new
kind of destination is a new deliverer registered under its name, not a branch in
the drainer. Each destination's outages and rate limits are its own: Slack being
down does not hold back the console, and the other way round.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from datetime import datetime

from monitor.alerts.base import Deliverer
from monitor.alerts.health import OUTAGE_PROBE_BASE, OUTAGE_PROBE_CAP, DestinationHealth
from monitor.alerts.pacing import Pacer, SharedPace

__all__ = ["ANY_DESTINATION", "Sinks"]

ANY_DESTINATION = "*"
"""Registry key of a deliverer that takes every destination (one-sink tools and tests)."""


class Sinks:
    """Deliverers and their health, keyed by destination."""

    def __init__(self, deliverers: Mapping[str, Deliverer],
                 health: Mapping[str, DestinationHealth]) -> None:
        if set(deliverers) != set(health):
            raise ValueError("every destination needs a deliverer and a health record")
        self._deliverers = dict(deliverers)
        self._health = dict(health)

    @classmethod
    def build(cls, deliverers: Mapping[str, Deliverer], *, logger: logging.Logger,
              probe_base: float = OUTAGE_PROBE_BASE, probe_cap: float = OUTAGE_PROBE_CAP,
              rng: random.Random | None = None, pace_per_second: float | None = None,
              pace_burst: int = 1, shared_pace: SharedPace | None = None) -> Sinks:
        """Pacing applies to destinations that post to a remote service (not the console);
        ``shared_pace`` (the store, on a database several daemons share) keeps each
        destination's pace across daemons (``monitor.alerts.pacing``)."""
        health = {
            dest: DestinationHealth(
                deliverer.name if dest == ANY_DESTINATION else dest,
                logger=logger, probe_base=probe_base, probe_cap=probe_cap, rng=rng,
                pacer=Pacer(None if deliverer.name == "console" else pace_per_second,
                            pace_burst, shared=shared_pace, key=dest))
            for dest, deliverer in deliverers.items()
        }
        return cls(deliverers, health)

    @classmethod
    def one(cls, deliverer: Deliverer, health: DestinationHealth) -> Sinks:
        """One deliverer for whatever destination alerts name."""
        return cls({ANY_DESTINATION: deliverer}, {ANY_DESTINATION: health})

    def deliverer(self, destination: str) -> Deliverer | None:
        return self._deliverers.get(destination) or self._deliverers.get(ANY_DESTINATION)

    def health(self, destination: str) -> DestinationHealth:
        found = self._health.get(destination) or self._health.get(ANY_DESTINATION)
        if found is None:
            raise KeyError(destination)
        return found

    def paused(self, now: datetime) -> list[str]:
        """Destinations that must not be sent to now (outage probe or rate limit ahead)."""
        return [dest for dest, h in self._health.items() if not h.can_send(now)]

    def all_paused(self, now: datetime) -> bool:
        return len(self.paused(now)) == len(self._health)

    @property
    def destinations(self) -> list[str]:
        return list(self._deliverers)

    def items(self) -> list[tuple[str, Deliverer]]:
        return list(self._deliverers.items())

    async def aclose(self) -> None:
        for deliverer in self._deliverers.values():
            await deliverer.aclose()
