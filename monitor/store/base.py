"""The storage contract every backend implements.

The pipeline and the outbox drainer only ever talk to this protocol, so the
SQLite default and a PostgreSQL backend are interchangeable. All methods are
synchronous and short; async callers run them in a worker thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeAlias

from monitor.models import Alert, Article, FeedState, Receipt, StoryFacts, StoryLink, Verdict

ArticleRecord: TypeAlias = (
    tuple[Article, Verdict, Alert | None] | tuple[Article, Verdict, Alert | None, StoryLink | None]
)
"""One new article as a poll records it: verdict, alert (if it matched), story (if assigned;
without one the article is a story of its own)."""


@dataclass(frozen=True, slots=True)
class StorySummary:
    """A story as the ``stories`` command lists it."""

    story_id: str
    title: str
    url: str
    source: str
    first_seen_at: datetime
    last_seen_at: datetime
    member_count: int
    source_count: int
    parent_status: str | None
    """The parent alert's outbox status, None when no member matched."""
    replies: int


class Store(Protocol):
    def migrate(self) -> None:
        """Create or upgrade the schema; safe to call on every start."""

    def check_writable(self) -> None:
        """Commit a real write or raise StoreError (the daemon refuses to start blind)."""

    def reopen(self) -> None:
        """Reconnect (after the database was fixed under a running daemon)."""

    def close(self) -> None: ...

    # --- feeds -----------------------------------------------------------------
    def get_feed_state(self, name: str) -> FeedState | None: ...

    def all_feed_states(self) -> list[FeedState]: ...

    def record_fetch_success(
        self,
        name: str,
        url: str,
        *,
        etag: str | None,
        last_modified: str | None,
        at: datetime,
    ) -> None:
        """Remember validators for the next conditional GET and reset the error run."""

    def save_feed_state(self, state: FeedState) -> None:
        """Persist a poll's complete outcome (counters, validators, schedule, flags) at once.

        One transaction per poll: the pipeline computes the new state in memory
        (``monitor.transitions``). For a 200 it is called only after the items are
        recorded, so new validators never get ahead of the articles they cover.
        """

    def save_feed_states(self, states: list[FeedState]) -> None:
        """``save_feed_state`` for several feeds in ONE transaction: all rows or none."""

    def record_fetch_failure(self, name: str, url: str, *, error: str, at: datetime) -> FeedState:
        """Count a failure against the feed and return its updated state."""

    # --- articles --------------------------------------------------------------
    def filter_unseen(self, articles: list[Article]) -> list[Article]:
        """Drop articles whose id or canonical URL is already stored."""

    def record_article(self, article: Article, verdict: Verdict, alert: Alert | None,
                       story: StoryLink | None = None) -> bool:
        """Write article, verdict and (optional) pending alert in ONE transaction.

        Returns False (and writes nothing) if the article was already stored,
        which makes recording idempotent across crashes and concurrent workers.
        """

    def record_articles(self, records: Sequence[ArticleRecord]) -> list[bool]:
        """``record_article`` for a whole poll's items in ONE transaction (all or none).

        A commit per article cost more than the inserts themselves on a cold cycle.
        """

    def get_article(self, article_id: str) -> tuple[Article, Verdict | None] | None: ...

    # --- outbox ----------------------------------------------------------------
    def claim_due_alerts(self, *, now: datetime, limit: int, lease_seconds: float) -> list[Alert]:
        """Move due alerts to 'in flight' and return them.

        Due means pending with ``next_attempt_at <= now``, or in flight with an
        expired lease (the worker that claimed it died). The latter come back
        with ``needs_lookup=True``.
        """

    def mark_alert_sent(self, receipt: Receipt) -> None: ...

    def mark_alert_retry(
        self, alert_id: str, *, error: str, next_attempt_at: datetime, ambiguous: bool
    ) -> None:
        """Return the alert to 'pending'; ``ambiguous`` makes the next try look first."""

    def mark_alert_failed(self, alert_id: str, *, error: str) -> None:
        """Park the alert permanently (e.g. invalid token); kept for the operator."""

    def outbox_counts(self) -> dict[str, int]:
        """Number of alerts by status (pending, in_flight, sent, failed)."""

    def requeue_failed_alerts(self, *, now: datetime) -> int:
        """Give parked alerts another chance once the operator fixed the cause."""

    # --- stories -----------------------------------------------------------------
    def parents_to_refresh(self, *, limit: int) -> list[tuple[Alert, StoryFacts]]:
        """Posted parents (with their thread reference) whose story has grown since."""

    def mark_parent_refreshed(self, story_id: str, destination: str, member_count: int) -> None:
        ...

    def story_members_since(self, since: datetime) -> list[tuple[Article, str]]:
        """Recent articles with their story ids, oldest first (the story index's rebuild)."""

    def recent_stories(self, *, since: datetime, limit: int = 50) -> list[StorySummary]: ...

    # --- analyst feedback --------------------------------------------------------
    def add_label(self, article_id: str, label: int, *, source: str, at: datetime) -> None: ...

    def labelled_articles(self) -> list[tuple[Article, int]]: ...
