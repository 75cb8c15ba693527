"""Feed bookkeeping: what each poll means for its feed, and when to poll it next.

``cadence`` computes the next poll time (pure), ``lifecycle`` turns a poll's
outcome into flags, moves, disabling and notices (pure), ``transitions`` turns
both into the feed's next stored row (pure), and ``statecache`` keeps every
feed's row in memory, written through to the store, for a daemon that is the
only writer of the feeds table. The pipeline calls them in that order after
each poll; none of them does I/O except the cache's writes.
"""

from monitor.feeds.cadence import (
    MAX_SERVER_DELAY_SECONDS,
    CadencePolicy,
    PollFacts,
    items_in_window,
    next_poll_delay,
    publishing_interval,
)
from monitor.feeds.lifecycle import (
    FAILURE_FLAG_PREFIX,
    STALE_FLAG_PREFIX,
    LifecyclePolicy,
    LifecycleUpdate,
    PollOutcome,
    after_poll,
    effective_url,
    feed_cadence,
    may_save_move,
)
from monitor.feeds.statecache import FeedStates
from monitor.feeds.transitions import (
    ARRIVALS_WINDOW,
    counted_failure,
    counted_success,
    with_lifecycle,
)

__all__ = [
    "ARRIVALS_WINDOW",
    "FAILURE_FLAG_PREFIX",
    "MAX_SERVER_DELAY_SECONDS",
    "STALE_FLAG_PREFIX",
    "CadencePolicy",
    "FeedStates",
    "LifecyclePolicy",
    "LifecycleUpdate",
    "PollFacts",
    "PollOutcome",
    "after_poll",
    "counted_failure",
    "counted_success",
    "effective_url",
    "feed_cadence",
    "items_in_window",
    "may_save_move",
    "next_poll_delay",
    "publishing_interval",
    "with_lifecycle",
]
