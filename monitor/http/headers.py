"""What response headers tell us about waiting, and what our requests say about us.

Servers say how long to leave them alone (Cache-Control, Expires, Retry-After);
honouring that is what keeps a poller welcome. Both feed polls and Slack
delivery read Retry-After through the one ``parse_retry_after`` here, so the
two cannot drift apart on what a date or a bad value means.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

MAX_RETRY_AFTER_SECONDS = 6 * 3600.0
"""Default cap of ``parse_retry_after``: a server may slow us down, not park us for days."""

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)


def parse_retry_after(
    headers: Mapping[str, Any] | None,
    *,
    now: datetime | None = None,
    max_seconds: float | None = MAX_RETRY_AFTER_SECONDS,
) -> float | None:
    """Seconds to wait from a Retry-After header; None if it is absent or unusable.

    ``headers`` is any mapping (``httpx.Headers``, a dict from slack-sdk): the
    name is matched case-insensitively and a list value counts by its first
    item. The value is delta-seconds (digits only, RFC 9110) or an HTTP-date; a
    date in the past gives 0. The result is capped at ``max_seconds`` (None: no
    cap, for callers that apply their own bound).
    """
    value = _header(headers, "retry-after")
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    if text.isdigit():
        seconds = float(text)
    else:
        # "-0000" dates come back naive from email.utils; HTTP dates are always GMT.
        when = _http_date(text)
        if when is None:
            return None
        seconds = max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
    return seconds if max_seconds is None else min(seconds, max_seconds)


def freshness_seconds(headers: Mapping[str, str], *, now: datetime | None = None) -> float | None:
    """How long the server says its answer stays fresh: a floor for the next poll.

    ``Cache-Control: max-age`` wins over ``Expires`` (RFC 9111, 5.3); an
    ``Expires`` is measured against the server's own ``Date`` when present, so
    a server with a wrong clock does not stretch or shrink it. ``no-cache`` and
    ``no-store`` say nothing about how often to poll, so they give None.
    """
    cache_control = headers.get("cache-control", "")
    match = _MAX_AGE.search(cache_control)
    if match:
        return float(match.group(1))
    expires = headers.get("expires")
    if not expires:
        return None
    when = _http_date(expires)
    if when is None:  # "Expires: 0" and other junk mean "already stale"
        return 0.0
    reference = _http_date(headers.get("date", "")) or now or datetime.now(UTC)
    return max(0.0, (when - reference).total_seconds())


def build_user_agent(contact_url: str, *, product: str = "dprk-russia-news-monitor",
                     version: str = "0.1", purpose: str = "news alert bot") -> str:
    """A User-Agent that tells a publisher who polls them and where to complain.

    The contact URL comes from config; without one a publisher's only recourse
    is to block us.
    """
    contact = contact_url.strip()
    if not contact.startswith(("http://", "https://", "mailto:")):
        raise ValueError(f"contact must be an http(s) or mailto: URL, not {contact_url!r}")
    return f"{product}/{version} (+{contact}; {purpose})"


def _header(headers: Mapping[str, Any] | None, name: str) -> Any:
    if not headers:
        return None
    for key, value in headers.items():
        if str(key).lower() == name:
            return value[0] if isinstance(value, list | tuple) and value else value
    return None


def _http_date(value: str) -> datetime | None:
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when
