"""The storage contract every backend implements.

The daemon (pipeline, outbox drainer, story stage) and the CLI only ever talk to
this protocol, and it lists exactly what they use, so the SQLite default and a
PostgreSQL backend are interchangeable. All methods are synchronous and short;
async callers run them in a worker thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeAlias

from monitor.models import (
    Alert,
    Article,
    FeedbackMark,
    FeedState,
    Receipt,
    StoryFacts,
    StoryLink,
    Verdict,
)

ArticleAlerts: TypeAlias = Alert | Sequence[Alert] | None
ArticleRecord: TypeAlias = (
    tuple[Article, Verdict, ArticleAlerts]
    | tuple[Article, Verdict, ArticleAlerts, StoryLink | None]
)
"""One new article as a poll records it: verdict, alerts (one per destination it is
routed to; none if it did not match), story (if assigned; without one the article is a
story of its own)."""


@dataclass(frozen=True, slots=True)
class ArticleSummary:
    """A stored article as the ``articles`` command lists it."""

    article_id: str
    source: str
    title: str
    published_at: datetime
    story_id: str | None
    score: float | None
    match: bool


@dataclass(frozen=True, slots=True)
class DigestStory:
    """One story in the daily digest: its lead (parent) headline and how widely reported."""

    story_id: str
    event_type: str
    title: str
    url: str
    source: str
    source_count: int
    member_count: int
    last_seen_at: datetime


@dataclass(frozen=True, slots=True)
class WeekStats:
    """The digest's weekly line."""

    alerts_sent: int
    labels_given: int
    judged_alerts: int
    relevant_alerts: int

    @property
    def precision(self) -> float | None:
        """Analysts' precision on alerted articles they labelled (None: none labelled)."""
        return self.relevant_alerts / self.judged_alerts if self.judged_alerts else None


@dataclass(frozen=True, slots=True)
class OutboxCause:
    """Alerts that wait or are parked for one reason (``outbox status``)."""

    status: str
    cause: str
    count: int
    max_attempts: int
    next_attempt_at: datetime | None


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


@dataclass(frozen=True, slots=True)
class ArticleHit:
    """One article found by ``search_articles`` (the web view's search)."""

    article_id: str
    source: str
    title: str
    url: str
    published_at: datetime
    score: float | None
    match: bool
    event_type: str | None
    snippet: str
    """Summary text around the hit; the matched words sit between ``HIT_START`` and
    ``HIT_END`` (private-use characters, so the page escapes the text, then marks them)."""


HIT_START = "\ue000"
HIT_END = "\ue001"


@dataclass(frozen=True, slots=True)
class StoryAlert:
    """One alert of a story as the web view shows it: the report, its verdict, its label."""

    alert_id: str
    kind: str
    """"parent" (the story's first matching report) or "reply" (a later one, in its thread)."""
    destination: str
    status: str
    title: str
    url: str
    source: str
    published_at: datetime
    score: float
    reason: str
    event_type: str | None
    delivered_at: datetime | None
    last_error: str | None
    label: int | None
    """The analysts' latest label of the article (1 relevant, 0 not), None if unlabelled."""
    labelled_by: str | None


@dataclass(frozen=True, slots=True)
class StoryBoardEntry:
    """A recent story that alerted, with every alert it produced, oldest first."""

    story_id: str
    title: str
    url: str
    source: str
    first_seen_at: datetime
    last_seen_at: datetime
    member_count: int
    source_count: int
    alerts: tuple[StoryAlert, ...]


@dataclass(frozen=True, slots=True)
class LabelEvent:
    """One label given to an article (history: a relabel adds one, never overwrites)."""

    article_id: str
    label: int
    user_id: str | None
    """The Slack user id for a button press; the OS user for the ``label`` command."""
    source: str
    """"slack" or "cli"."""
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Mute:
    """"No alerts for this outlet / story until ``expires_at``" (the articles are still
    stored and scored)."""

    id: int
    kind: str
    """"outlet" (value: the article's source) or "story" (value: the story id)."""
    value: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    removed_at: datetime | None = None

    def status(self, now: datetime) -> str:
        """"active", "expired" or "removed" (lifted by an operator)."""
        if self.removed_at is not None:
            return "removed"
        return "active" if self.expires_at > now else "expired"

    def applies_to(self, *, source: str, story_id: str) -> bool:
        return self.value == (source if self.kind == "outlet" else story_id)


def slot_wait(new_tat: float, *, now: float, interval: float, burst: int) -> float:
    """GCRA (``Store.take_send_slot``): the wait before the slot just reserved, given the
    destination's theoretical arrival time after it (``new_tat``). Up to ``burst`` sends
    go out back to back; after that one per ``interval``."""
    return max(0.0, new_tat - interval - (max(burst, 1) - 1) * interval - now)


class Store(Protocol):
    def migrate(self) -> None:
        """Create or upgrade the schema; safe to call on every start."""

    def schema_version(self) -> int:
        """The newest migration applied (the same numbers mean the same on every backend)."""

    def check_writable(self) -> None:
        """Commit a real write or raise StoreError (the daemon refuses to start blind)."""

    def reopen(self) -> None:
        """Reconnect (after the database was fixed under a running daemon)."""

    def close(self) -> None: ...

    # --- feeds -----------------------------------------------------------------
    def get_feed_state(self, name: str) -> FeedState | None: ...

    def all_feed_states(self) -> list[FeedState]: ...

    def save_feed_state(self, state: FeedState) -> None:
        """Persist a poll's complete outcome (counters, validators, schedule, flags) at once.

        One transaction per poll: the pipeline computes the new state in memory
        (``monitor.feeds.transitions``). For a 200 it is called only after the items are
        recorded, so new validators never get ahead of the articles they cover.
        """

    def save_feed_states(self, states: list[FeedState]) -> None:
        """``save_feed_state`` for several feeds in ONE transaction: all rows or none."""

    # --- work sharing between daemons (migration 10) ---------------------------------
    def claim_feeds(self, names: Sequence[str], *, owner: str, now: datetime,
                    lease_seconds: float, limit: int) -> list[str]:
        """Lease up to ``limit`` due feeds among ``names`` (the configured, enabled ones) to
        ``owner`` until ``now + lease_seconds``, never-polled and longest-overdue first.

        Due: no state yet, or ``next_poll_at`` NULL or <= now. Feeds leased by another
        owner until after ``now`` are skipped, so no feed is polled by two daemons at once,
        and a crashed daemon's feeds come back when its leases run out.
        """

    def renew_feed_leases(self, names: Sequence[str], *, owner: str, now: datetime,
                          lease_seconds: float) -> list[str]:
        """Extend the leases ``owner`` still holds; returns those (sorted). A name missing
        from the result was taken over by another daemon."""

    def release_feeds(self, names: Sequence[str], *, owner: str) -> None:
        """Clear ``owner``'s leases (after the poll's state is saved; ``save_feed_state``
        never touches leases)."""

    def next_feed_due(self, names: Sequence[str]) -> datetime | None:
        """When the first of ``names`` can next be claimed (how long a daemon may sleep):
        its ``next_poll_at``, now if never polled, or later if another daemon's lease on it
        lasts longer. None for no names."""

    def take_send_slot(self, destination: str, *, now: float, interval: float,
                       burst: int) -> float:
        """Reserve ``destination``'s next send slot (GCRA, shared by every daemon through
        the database) and return the seconds to sleep before sending. ``now`` is epoch
        seconds (``time.time()``): it is compared across machines."""

    def hold_send_slots(self, destination: str, *, until: float, interval: float,
                        burst: int) -> None:
        """After a rate limit (429 with Retry-After): no daemon's next slot for
        ``destination`` comes before ``until`` (epoch seconds), and none bursts right
        after it: one daemon's refusal pauses them all."""

    def story_lock(self) -> AbstractContextManager[None]:
        """Serialises "sync the story index, assign, record" across daemons (PostgreSQL:
        a session advisory lock; SQLite: nothing to do, one daemon per file)."""

    def filter_unseen(self, articles: list[Article]) -> list[Article]:
        """Drop articles whose id or canonical URL is already stored."""

    def record_articles(self, records: Sequence[ArticleRecord]) -> list[bool]:
        """``record_article`` for a whole poll's items in ONE transaction (all or none).

        A commit per article cost more than the inserts themselves on a cold cycle.
        """

    def get_article(self, article_id: str) -> tuple[Article, Verdict | None] | None: ...

    # --- outbox ----------------------------------------------------------------
    def claim_due_alerts(self, *, now: datetime, limit: int, lease_seconds: float,
                         exclude_destinations: Sequence[str] = ()) -> list[Alert]:
        """Move due alerts to 'in flight' and return them, oldest publication first.

        Alerts for ``exclude_destinations`` (paused by an outage or a rate limit) stay
        put; a story's replies are due only once its parent is sent.

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

    # --- the daily digest --------------------------------------------------------
    def digest_stories(self, *, since: datetime, limit: int = 60) -> list[DigestStory]: ...

    def week_stats(self, *, since: datetime) -> WeekStats: ...

    def digest_posted(self, digest_id: str) -> datetime | None:
        """When the digest with this id went out (None: not yet)."""

    def mark_digest_posted(self, digest_id: str, *, destination: str, message_id: str,
                           at: datetime) -> None: ...

    def outbox_causes(self) -> list[OutboxCause]:
        """Unsent alerts grouped by status and last error, most first."""

    def requeue_failed_alerts(self, *, now: datetime) -> int:
        """Give parked alerts another chance once the operator fixed the cause."""

    # --- stories -----------------------------------------------------------------
    def parents_to_refresh(self, *, limit: int) -> list[tuple[Alert, StoryFacts]]:
        """Posted parents (with their thread reference) whose story has grown since."""

    def mark_parent_refreshed(self, story_id: str, destination: str, member_count: int) -> None:
        ...

    def story_members_since(self, since: datetime, *,
                            min_score_fraction: float = 0.0) -> list[tuple[Article, str]]:
        """Recent candidate articles with their story ids, oldest first (the story
        index's rebuild)."""

    def story_members_after(self, position: int, *, since: datetime,
                            min_score_fraction: float = 0.0,
                            ) -> tuple[list[tuple[Article, str]], int]:
        """``story_members_since`` limited to articles recorded after ``position`` (their
        insertion order: PostgreSQL's ``articles.seq``, SQLite's rowid; 0 for all), with
        the position of the last one returned (``position`` when none). Daemons sharing a
        database catch up with each other's stories this way: each member is read once,
        not once per turn (``monitor.stories.stage.SharedStories``)."""

    def recent_stories(self, *, since: datetime, limit: int = 50) -> list[StorySummary]: ...

    def recent_articles(self, *, limit: int = 20,
                        matches_only: bool = False) -> list[ArticleSummary]:
        """Newest stored articles with their scores (the ``articles`` command)."""

    # --- the web view (read-only) --------------------------------------------------
    def story_board(self, *, since: datetime, limit: int = 30) -> list[StoryBoardEntry]:
        """Stories seen since ``since`` that produced alerts, newest first, with the alerts."""

    def search_articles(self, query: str, *, since: datetime | None = None,
                        until: datetime | None = None, outlet: str | None = None,
                        matches_only: bool = False, limit: int = 25,
                        offset: int = 0) -> list[ArticleHit]:
        """Stored articles containing every word of ``query`` (plain words, never query
        syntax: any input is safe), published in [since, until), best first; with no
        words, the newest."""

    # --- analyst feedback --------------------------------------------------------
    def add_label(self, article_id: str, label: int, *, source: str, at: datetime,
                  user_id: str | None = None) -> None:
        """Record a label: appended to the history, and the article's current label."""

    def labelled_articles(self) -> list[tuple[Article, int]]:
        """Each labelled article with its latest label (the training feedback)."""

    def label_history(self, article_id: str) -> list[LabelEvent]:
        """Every label given to the article, oldest first (who said what, when)."""

    def add_mute(self, kind: str, value: str, *, created_by: str, at: datetime,
                 expires_at: datetime) -> Mute: ...

    def active_mutes(self, now: datetime) -> list[Mute]:
        """Mutes in force at ``now`` (read once per poll, before alerts are queued)."""

    def remove_mute(self, mute_id: int, *, at: datetime) -> bool:
        """Lift a mute (kept, marked removed); False if unknown or already lifted."""

    def list_mutes(self) -> list[Mute]:
        """Every mute, newest first, whatever its status."""

    def feedback_marks(self, article_id: str, *, story_id: str | None, outlet: str | None,
                       now: datetime) -> tuple[FeedbackMark, ...]:
        """What a parent alert shows under it: latest label, mutes in force for it."""
