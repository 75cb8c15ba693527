"""The search form: query-string parameters in, the store's search arguments out.

Everything here comes from whoever opened the page, so nothing is trusted: dates
that do not parse are reported and ignored, the page number is clamped, and the
words go to ``Store.search_articles``, which quotes each one for FTS5 (see
``monitor.store.sqlite_web.fts_query``) — no input can be a query-syntax error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlencode

__all__ = ["PAGE_SIZE", "SearchForm"]

PAGE_SIZE = 20
MAX_PAGE = 500
MAX_WORDS_CHARS = 300


@dataclass(frozen=True, slots=True)
class SearchForm:
    words: str = ""
    since: date | None = None
    until: date | None = None
    """Inclusive: articles published on this day are found."""
    outlet: str = ""
    matches_only: bool = False
    page: int = 1
    problems: tuple[str, ...] = field(default=())

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> SearchForm:
        problems: list[str] = []

        def day(key: str) -> date | None:
            raw = params.get(key, "").strip()
            if not raw:
                return None
            try:
                return date.fromisoformat(raw)
            except ValueError:
                problems.append(f"{key} {raw!r} is not a date like 2024-06-19; ignored")
                return None

        try:
            page = min(max(int(params.get("page", "1")), 1), MAX_PAGE)
        except ValueError:
            page = 1
        return cls(
            words=params.get("q", "").strip()[:MAX_WORDS_CHARS],
            since=day("since"),
            until=day("until"),
            outlet=params.get("outlet", "").strip(),
            matches_only=params.get("matches", "") in ("1", "on", "true"),
            page=page,
            problems=tuple(problems),
        )

    @property
    def since_at(self) -> datetime | None:
        return datetime.combine(self.since, time.min, UTC) if self.since else None

    @property
    def until_at(self) -> datetime | None:
        """The end of the ``until`` day (exclusive bound for the store)."""
        return datetime.combine(self.until + timedelta(days=1), time.min, UTC) \
            if self.until else None

    @property
    def offset(self) -> int:
        return (self.page - 1) * PAGE_SIZE

    def page_url(self, page: int) -> str:
        """This search at another page (the link stays relative to /search)."""
        params = {"q": self.words, "since": self.since.isoformat() if self.since else "",
                  "until": self.until.isoformat() if self.until else "",
                  "outlet": self.outlet, "matches": "1" if self.matches_only else "",
                  "page": str(page)}
        return "/search?" + urlencode({k: v for k, v in params.items() if v})
