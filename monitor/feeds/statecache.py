"""The daemon's in-memory copy of every feed's state, written through to the store.

Each poll starts from its feed's state (validators, counters, arrivals); keeping
it in memory spares every poll a thread hop and a row decode. After one bulk
load the copy is kept exact by updating it only after a write succeeded and
dropping an entry when a write failed (the next poll then re-reads the row).

**Single writer.** The cache is exact only while one daemon writes the feeds
table. Nothing here notices a row changed by anyone else (the CLI only reads
it). On a backend shared by several daemons (PostgreSQL) a feed's row is written
by whichever daemon claimed it, so the claim loop (``monitor.claims``) calls
``forget`` on every claim: that poll reads the stored row, and the cache is exact
again for as long as this daemon holds the lease.

Writes are group-committed: polls that finish while a write is in progress wait
for the next one, which saves all of them in one transaction and one thread hop.
Each ``save`` still returns only once its own row is committed, so callers see
exactly the semantics of one write per poll, while a burst of 304s finishing
together costs one transaction.
"""

from __future__ import annotations

import asyncio

from monitor.errors import StoreError
from monitor.models import FeedState
from monitor.store.base import Store


class FeedStates:
    """Write-through cache of ``FeedState`` by feed name; the store stays the truth.

    Exact only while this daemon is the one writer of the feeds table (see above).
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._known: dict[str, FeedState | None] = {}
        self._pending: list[tuple[FeedState, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._unsaved: dict[str, int] = {}
        """Polls in a row whose outcome the store refused, per feed: the store cannot
        count them, yet the feed's back-off must grow while the store is down."""

    def note_unsaved(self, name: str) -> int:
        """Count a poll whose outcome could not be saved; returns the run so far."""
        self._unsaved[name] = self._unsaved.get(name, 0) + 1
        return self._unsaved[name]

    def known(self) -> list[FeedState]:
        """Every state held in memory (read on the event loop, e.g. by a metrics scrape)."""
        return [state for state in self._known.values() if state is not None]

    def forget(self, name: str) -> None:
        """Drop the cached row: the next ``get`` reads the store (another daemon may have
        polled the feed since)."""
        self._known.pop(name, None)

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
        """Persist ``state`` (with whatever else is waiting) and only then remember it.

        Raises the ``StoreError`` of this row's write. On any failure (or on
        cancellation, while the write may still commit) the cached entry is
        dropped, so the next poll reads what the store really holds.
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((state, done))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_pending())
        try:
            await done
        except BaseException:  # re-raised: only the cache entry is cleaned up here
            self._known.pop(state.name, None)
            raise
        self._known[state.name] = state
        self._unsaved.pop(state.name, None)

    async def _write_pending(self) -> None:
        """Write batches until nothing is waiting; then the next ``save`` starts a writer."""
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    errors = await asyncio.to_thread(self._write, [s for s, _ in batch])
                except asyncio.CancelledError:  # the loop is shutting down
                    left, self._pending = batch + self._pending, []
                    for _, done in left:
                        done.cancel()
                    raise
                except Exception as exc:  # a bug: handed to every waiter, who re-raises it
                    errors = [exc] * len(batch)
                for (_, done), error in zip(batch, errors, strict=True):
                    if done.done():  # its poll was cancelled meanwhile
                        continue
                    if error is None:
                        done.set_result(None)
                    else:
                        done.set_exception(error)
        finally:
            self._writer = None

    def _write(self, states: list[FeedState]) -> list[Exception | None]:
        """One transaction for the batch; if it fails, one per row, so a bad row fails alone."""
        try:
            self._store.save_feed_states(states)
            return [None] * len(states)
        except StoreError as exc:
            if len(states) == 1:
                return [exc]
        errors: list[Exception | None] = []
        for state in states:
            try:
                self._store.save_feed_state(state)
                errors.append(None)
            except StoreError as exc:
                errors.append(exc)
        return errors
