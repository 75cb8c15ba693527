"""Story threads in the outbox: folding one drain's replies, refreshing grown parents.

Kept apart from the drainer's send/retry rules: these are about what a story
looks like in the channel (one parent, one reply per drain, a parent that shows
how many outlets reported it and the story's strongest evidence, see
``monitor.story_evidence``), not about delivering each message once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Sequence

from monitor.alerts.base import Deliverer, redact
from monitor.errors import DeliveryError
from monitor.models import Alert
from monitor.store.base import Store

__all__ = ["fold_replies", "refresh_parents"]

MAX_FOLD = 20
"""Replies carried by one message; a bigger burst takes more than one reply."""


def fold_replies(alerts: Sequence[Alert]) -> list[Alert]:
    """Replies of one story (and destination) in a claimed batch become one message.

    The first reply carries the others in ``folded``, at its place in the batch.
    A reply that needs a look-up (an earlier attempt may have posted it) is never
    folded: the look-up must find exactly the message it was in.
    """
    out: list[Alert] = []
    carriers: dict[tuple[str, str], int] = {}
    for alert in alerts:
        if alert.kind != "reply" or alert.needs_lookup or alert.story_id is None:
            out.append(alert)
            continue
        key = (alert.story_id, alert.destination)
        at = carriers.get(key)
        if at is None or len(out[at].folded) + 1 >= MAX_FOLD:
            carriers[key] = len(out)
            out.append(alert)
        else:
            carrier = out[at]
            out[at] = dataclasses.replace(carrier, folded=(*carrier.folded, alert))
    return out


async def refresh_parents(store: Store, route: Callable[[str], Deliverer | None], *,
                          logger: logging.Logger, sendable: Callable[[str], bool],
                          limit: int = 20) -> int:
    """Edit posted parents whose story grew, each through its destination's deliverer;
    returns how many were edited.

    An edit that fails is simply tried again at a later drain (the story still
    shows more reports than its parent does), so a failure here never blocks alerts.
    """
    parents = await asyncio.to_thread(store.parents_to_refresh, limit=limit)
    edited = 0
    for parent, facts in parents:
        update = getattr(route(parent.destination), "update_parent", None)
        if update is None or not sendable(parent.destination):
            continue
        try:
            await update(parent, facts)
        except DeliveryError as err:
            logger.debug("could not edit the parent of story %s yet: %s", facts.story_id,
                         redact(str(err)))
            break
        await asyncio.to_thread(store.mark_parent_refreshed, facts.story_id,
                                parent.destination, facts.member_count)
        edited += 1
    if edited:
        logger.info("updated %d story parent(s) with their latest outlets and evidence", edited)
    return edited
