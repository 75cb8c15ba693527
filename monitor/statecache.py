"""The daemon's in-memory copy of every feed's state, written through to the store.

Each poll starts from its feed's state (validators, counters, arrivals). Reading
it from SQLite cost a thread hop and a row decode per poll; the daemon is the
only writer of the feeds table (the CLI only reads it), so after one bulk load
the copy here is exact as long as it is updated only after a write succeeded
and dropped when a write failed (then the next poll re-reads the row).
"""

from __future__ import annotations

import asyncio

from monitor.models import FeedState
from monitor.store.base import Store


class FeedStates:
    """Write-through cache of ``FeedState`` by feed name; the store stays the truth."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._known: dict[str, FeedState | None] = {}

    async def load(self) -> None:
        """Read every feed's state in one query (daemon start-up)."""
        states = await asyncio.to_thread(self._store.all_feed_states)
        self._known.update((s.name, s) for s in states)

    async def get(self, name: str) -> FeedState | None:
        """The feed's state, from memory when known, otherwise from the store."""
        if name in self._known:
            return self._known[name]
        state = await asyncio.to_thread(self._store.get_feed_state, name)
        self._known[name] = state
        return state

    async def save(self, state: FeedState) -> None:
        """Persist ``state`` (one transaction) and only then remember it.

        On any failure (a ``StoreError``, or cancellation while the worker thread
        may still commit) the cached entry is dropped, so the next poll reads what
        the store really holds instead of a state that may never have been saved.
        """
        try:
            await asyncio.to_thread(self._store.save_feed_state, state)
        except BaseException:  # re-raised: only the cache entry is cleaned up here
            self._known.pop(state.name, None)
            raise
        self._known[state.name] = state
