"""What ``feeds`` and ``status`` show: each feed's condition, and the daemon at a glance.

A feed that is stale, failing, moved or gone must not look healthy: the notices
and the README promise the condition shows in ``feeds``. The condition is
computed here from the stored state and the config (pure), then rendered as a
rich table on a terminal or as plain ``key=value`` lines for scripts and pipes.

Only the standard library and ``monitor.models``/``monitor.feeds.lifecycle``
constants are imported at module level; ``rich`` is imported when a table is
drawn, so piping ``feeds`` into ``grep`` stays fast.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import IO

from monitor.models import FeedState
from monitor.settings import FeedSettings

__all__ = ["CONDITIONS", "FeedHealth", "StatusView", "feed_health", "print_feeds", "print_status",
           "status_view"]

# Kept equal to monitor.feeds.lifecycle's prefixes; importing them from there would
# pull httpx into every read-only command (test_cli_ops checks they stay equal).
FAILURE_FLAG_PREFIX = "failing:"
STALE_FLAG_PREFIX = "stale:"

CONDITIONS = ("healthy", "erroring", "failing", "stale", "moved", "gone", "off", "never polled")
"""Every condition a feed can be in, in the order ``status`` counts them."""

_STYLE = {"healthy": "green", "erroring": "yellow", "failing": "bold red", "stale": "yellow",
          "moved": "cyan", "gone": "bold red", "off": "dim", "never polled": "dim"}


@dataclass(frozen=True, slots=True)
class FeedHealth:
    """One configured feed and what its stored state says about it."""

    name: str
    url: str
    enabled: bool
    """``enabled`` in the config."""
    state: FeedState | None
    """None: never polled (or polled only under another URL, which no longer applies)."""
    conditions: tuple[str, ...]
    """From CONDITIONS; several may hold (a moved feed that is now failing)."""

    @property
    def healthy(self) -> bool:
        return self.conditions == ("healthy",)

    @property
    def moved_to(self) -> str | None:
        return self.state.moved_to if self.state is not None else None

    @property
    def detail(self) -> str:
        """Why: the flag, the 410 reason, the last error."""
        s = self.state
        if s is None:
            return ""
        parts = []
        if s.disabled:
            parts.append(s.disabled)
        if s.flagged:
            parts.append(s.flagged)
        if s.consecutive_errors and s.last_error:
            parts.append(f"last error: {s.last_error[:200]}")
        return "; ".join(parts)


def _conditions(feed: FeedSettings, state: FeedState | None) -> tuple[str, ...]:
    if not feed.enabled:
        return ("off",)
    if state is None or state.polls == 0:
        return ("never polled",)
    found = []
    if state.disabled:
        found.append("gone")
    flag = state.flagged or ""
    if flag.startswith(FAILURE_FLAG_PREFIX):
        found.append("failing")
    elif state.consecutive_errors:
        found.append("erroring")
    if flag.startswith(STALE_FLAG_PREFIX):
        found.append("stale")
    if state.moved_to:
        found.append("moved")
    return tuple(found) or ("healthy",)


def feed_health(feeds: Iterable[FeedSettings],
                states: Mapping[str, FeedState]) -> list[FeedHealth]:
    """The configured feeds with their conditions.

    A stored state recorded under another URL is ignored, as the daemon does: changing
    a feed's URL in the config clears its flags, move and 410.
    """
    rows = []
    for feed in feeds:
        state = states.get(feed.name)
        if state is not None and state.url != feed.url:
            state = None
        rows.append(FeedHealth(feed.name, feed.url, feed.enabled, state,
                               _conditions(feed, state)))
    return rows


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def _iso(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else "never"


def _plain_feed_line(row: FeedHealth) -> str:
    """One ``key=value`` line per feed: stable for grep and scripts."""
    condition = ",".join(row.conditions)
    s = row.state
    if s is None:
        return f"{row.name}: {condition} url={row.url}"
    line = (f"{row.name}: {condition} polls={s.polls} errors={s.error_count} "
            f"consecutive={s.consecutive_errors} last_success={_iso(s.last_success_at)} "
            f"next_poll={_iso(s.next_poll_at) if not s.disabled else 'never'} url={row.url}")
    if s.moved_to:
        line += f" moved_to={s.moved_to}"
    if s.disabled:
        line += f" disabled={s.disabled!r}"
    if s.flagged:
        line += f" flag={s.flagged!r}"
    if s.consecutive_errors and s.last_error:
        line += f" last_error={s.last_error[:200]}"
    return line


def print_feeds(rows: Sequence[FeedHealth], out: IO[str], *, rich_table: bool,
                width: int | None = None) -> None:
    """A styled table on a terminal (``width``: the terminal's unless given); plain lines
    otherwise."""
    if not rich_table:
        for row in rows:
            out.write(_plain_feed_line(row) + "\n")
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"{len(rows)} feed(s)", show_lines=False)
    for column in ("feed", "condition", "polls", "errors", "last success", "next poll",
                   "moved to / detail"):
        table.add_column(column, overflow="fold")
    for row in rows:
        s = row.state
        condition = Text(", ".join(row.conditions),
                         style=_STYLE[row.conditions[0] if row.healthy else _worst(row)])
        detail = " ".join(x for x in (f"→ {row.moved_to}" if row.moved_to else "",
                                      row.detail) if x)
        table.add_row(
            Text(f"{row.name}\n{row.url}", style="dim" if not row.enabled else ""),
            condition,
            str(s.polls) if s else "0",
            f"{s.consecutive_errors} in a row / {s.error_count}" if s else "-",
            _when(s.last_success_at) if s else "-",
            "never (410)" if s and s.disabled else _when(s.next_poll_at if s else None),
            detail,
        )
    Console(file=out, width=width).print(table)


def _worst(row: FeedHealth) -> str:
    for condition in ("gone", "failing", "stale", "erroring", "moved", "off", "never polled"):
        if condition in row.conditions:
            return condition
    return "healthy"


@dataclass(frozen=True, slots=True)
class StatusView:
    """The numbers ``status`` shows."""

    feeds: Counter[str]
    feed_total: int
    outbox: Mapping[str, int]
    model_version: str | None
    threshold: float | None
    threshold_source: str
    last_cycle: datetime | None
    database: str


def status_view(rows: Sequence[FeedHealth], outbox: Mapping[str, int], *,
                model_version: str | None, threshold: float | None, threshold_source: str,
                database: str) -> StatusView:
    counts: Counter[str] = Counter()
    for row in rows:
        counts.update(row.conditions)
    attempts = [r.state.last_attempt_at for r in rows
                if r.state is not None and r.state.last_attempt_at is not None]
    return StatusView(counts, len(rows), outbox, model_version, threshold, threshold_source,
                      max(attempts, default=None), database)


def print_status(view: StatusView, out: IO[str], *, rich_table: bool) -> None:
    """Feeds by condition, alerts waiting, the model, the last cycle."""
    f, o = view.feeds, view.outbox
    enabled = view.feed_total - f["off"]
    threshold = f"{view.threshold:.3f} ({view.threshold_source})" if view.threshold else "?"
    lines = [
        ("database", view.database),
        ("feeds", f"{view.feed_total} configured, {enabled} enabled"),
        *((f"  {c}", str(f[c])) for c in CONDITIONS if f[c] or c == "healthy"),
        ("alerts", f"{o.get('pending', 0)} pending, {o.get('in_flight', 0)} in flight, "
                   f"{o.get('failed', 0)} failed, {o.get('sent', 0)} sent"),
        ("model", f"{view.model_version or 'unknown'}, threshold {threshold}"),
        ("last cycle", _iso(view.last_cycle) if view.last_cycle else "never (no poll stored)"),
    ]
    if not rich_table:
        for key, value in lines:
            out.write(f"{key.strip().replace(' ', '_')}: {value}\n"
                      if not key.startswith("  ") else f"  {key.strip()}: {value}\n")
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title="news monitor status", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    for key, value in lines:
        style = ""
        name = key.strip()
        if key.startswith("  ") and name != "healthy" and value != "0":
            style = _STYLE.get(name, "")
        if name == "alerts" and o.get("failed", 0):
            style = "bold red"
        table.add_row(key, Text(value, style=style))
    Console(file=out).print(table)
