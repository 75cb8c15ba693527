"""The shared vocabulary of the pipeline.

Plain, immutable data passed from one stage to the next. Keeping these in one
module that imports nothing of ours is what lets each stage stay independent:
stages agree on these shapes, never on each other's internals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from classifiers.text import article_text


@dataclass(frozen=True, slots=True)
class Feed:
    """A feed as configured: where to poll and how often."""

    name: str
    url: str
    interval_seconds: float | None = None
    """A fixed interval from config; None lets the adaptive schedule decide."""
    min_interval_seconds: float | None = None
    max_interval_seconds: float | None = None
    """Bounds of this feed's adaptive interval; None takes the schedule's."""
    enabled: bool = True
    tags: tuple[str, ...] = ()


MAX_ARRIVALS = 2_000
"""New-item times kept per feed: a week of a very busy feed, which is all the adaptive
interval looks at; keeps the stored row small."""


@dataclass(frozen=True, slots=True)
class FeedState:
    """What we remember about a feed between polls (and across restarts)."""

    name: str
    url: str
    etag: str | None = None
    last_modified: str | None = None
    last_success_at: datetime | None = None
    last_attempt_at: datetime | None = None
    last_error: str | None = None
    error_count: int = 0
    consecutive_errors: int = 0
    polls: int = 0
    next_poll_at: datetime | None = None
    last_new_item_at: datetime | None = None
    arrivals: tuple[datetime, ...] = ()
    """When new items arrived during the last week: the basis of the adaptive interval."""
    moved_to: str | None = None
    """Target of a permanent redirect (301/308): polled instead of the configured URL."""
    flagged: str | None = None
    """Why the feed is flagged as broken or stale; the notice was sent when this was set."""
    disabled: str | None = None
    """Why the feed is no longer polled (e.g. 410 Gone)."""
    body_hash: str | None = None
    """Digest of the last 200 body whose items were all recorded: an identical body
    (an unconditional refetch, a server without validators) needs no parsing."""
    ttl_seconds: float | None = None
    """That body's RSS <ttl>, still honoured when the identical body is skipped."""


@dataclass(frozen=True, slots=True)
class FetchResult:
    """The outcome of one successful HTTP (or file) fetch.

    ``body`` is ``None`` when the server answered 304 Not Modified.
    """

    feed_name: str
    url: str
    final_url: str
    status: int
    body: bytes | None
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    elapsed_seconds: float = 0.0
    permanent_redirect: str | None = None
    """Where a 301/308 chain led, so the feed's stored address can follow it."""
    server_min_seconds: float | None = None
    """The server's own lower bound on the next poll (Cache-Control max-age, Expires)."""

    @property
    def not_modified(self) -> bool:
        return self.body is None


@dataclass(frozen=True, slots=True)
class RawEntry:
    """One feed entry as the parser saw it: still HTML, dates not yet normalised."""

    feed_name: str
    guid: str | None
    link: str | None
    title: str
    summary_html: str
    published: datetime | None = None
    author: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """Entries plus the feed-level facts the parser found (title, problems)."""

    feed_name: str
    title: str | None
    entries: tuple[RawEntry, ...]
    problem: str | None = None
    ttl_seconds: float | None = None
    """RSS <ttl>: the publisher's own hint of how often to poll."""


@dataclass(frozen=True, slots=True)
class Article:
    """A normalised story: plain text, UTC time, canonical URL, stable id."""

    id: str
    feed_name: str
    source: str
    url: str
    title: str
    summary: str
    published_at: datetime
    first_seen_at: datetime
    guid: str | None = None

    @property
    def text(self) -> str:
        """The text the classifier sees: headline and description."""
        return article_text(self.title, self.summary)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The classifier's opinion of one article."""

    article_id: str
    score: float
    match: bool
    threshold: float
    reason: str
    model_version: str
    event_type: str | None = None
    keywords: tuple[str, ...] = ()
    why: str | None = None
    """For a match: the clause of the text that links the two countries, if one does."""


@dataclass(frozen=True, slots=True)
class Alert:
    """A message waiting to be delivered (a row of the outbox)."""

    id: str
    article_id: str
    destination: str
    title: str
    url: str
    source: str
    published_at: datetime
    score: float
    reason: str
    snippet: str
    event_type: str | None = None
    attempts: int = 0
    needs_lookup: bool = False
    """True when an earlier attempt may have posted the message (crash while in
    flight, or an ambiguous network failure): look for it before posting again."""
    first_attempt_at: datetime | None = None
    """When the first attempt to send it began: no earlier post can exist, so a
    duplicate look-up searches the destination back to this time and no further."""
    kind: str = "parent"
    """"parent": the story's top-level message; "reply": another outlet's report of
    the same story, posted in the parent's thread."""
    story_id: str | None = None
    thread: ThreadRef | None = None
    """For a reply: where its parent was posted (filled when the reply is claimed,
    which happens only once the parent is sent)."""
    folded: tuple[Alert, ...] = ()
    """Further replies of the same story sent in this one message (one drain's worth)."""
    why: str | None = None
    """The quoted clause that links the two countries (``Verdict.why``)."""
    lang: str | None = None
    """The item's language ("en", "ko", "ru", ...; ``monitor.language``); None for alerts
    queued before languages were recorded (the formatter then detects it from the text)."""

    @property
    def ids(self) -> tuple[str, ...]:
        """Every alert this message carries: itself and the folded replies."""
        return (self.id, *(a.id for a in self.folded))


@dataclass(frozen=True, slots=True)
class ThreadRef:
    """A posted parent message: the channel it is in and its id there (Slack's ts)."""

    channel: str
    message_id: str


@dataclass(frozen=True, slots=True)
class StoryLink:
    """Which story an article joined (``monitor.stories``), recorded with the article."""

    story_id: str
    is_new: bool
    near_duplicate_of: str | None = None
    """A member this article copies (wire copy, light rewrite): if that member matched,
    this one counts as "reported by" even when it does not match on its own."""
    echo: Alert | None = None
    """The reply to queue in that case (built by the pipeline, kept only by the store's
    check that the copied member matched)."""


@dataclass(frozen=True, slots=True)
class StoryFacts:
    """What a parent message shows about its story: how many outlets, the latest report."""

    story_id: str
    source_count: int
    member_count: int
    first_seen_at: datetime
    last_seen_at: datetime
    sources: tuple[str, ...] = ()
    marks: tuple[FeedbackMark, ...] = ()
    """Analysts' button presses the parent shows (latest label, active mutes): an edit
    rewrites the whole message, so a growing story must not wipe "marked relevant by"."""
    evidence: StoryEvidence | None = None
    """The story's score, event type and strongest quote, from all its members
    (``monitor.story_evidence``); None when the store has no verdicts for them."""


@dataclass(frozen=True, slots=True)
class MemberEvidence:
    """One member of a story as the story's score sees it."""

    score: float
    match: bool
    event_type: str | None
    source: str
    why: str | None = None


@dataclass(frozen=True, slots=True)
class StoryEvidence:
    """What a story's parent shows as its evidence (see ``monitor.story_evidence``)."""

    score: float
    """The strongest member's score plus a bounded bonus per further independent outlet."""
    best_score: float
    """The strongest member's own score."""
    event_type: str | None
    outlets: int
    """Distinct outlets among the matching members."""
    why: str | None = None
    why_source: str | None = None
    """The outlet whose report ``why`` quotes."""


@dataclass(frozen=True, slots=True)
class FeedbackMark:
    """One line under a parent alert saying what an analyst did with its buttons.

    Built from the store (the latest label, the active mutes that cover the story or
    its outlet), so the button handler and the story refresh show the same thing.
    """

    action: str
    """"relevant", "not_relevant", "mute_outlet" or "mute_story"."""
    user_id: str | None
    """The Slack user id (``U…``); None for a label given on the command line."""
    at: datetime
    until: datetime | None = None
    """For a mute: when it expires."""
    subject: str = ""
    """For an outlet mute: the outlet's name."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """Proof that an alert was delivered: where, and the id the sink gave it."""

    alert_id: str
    destination: str
    message_id: str
    delivered_at: datetime
    details: dict[str, str] = field(default_factory=dict)
