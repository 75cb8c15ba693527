"""Verdict + alerting rules → an Alert (or the reason there is none).

Separate from classification so that policy (which matches are worth a ping,
where they go) can change without retraining, and so that every decision has a
stated reason that can be logged and tested.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.models import Alert, Article, Verdict


@dataclass(frozen=True, slots=True)
class AlertRules:
    """From ``[alerts]`` (monitor.settings, where the defaults are written)."""

    destination: str
    max_article_age_hours: float   # 0 disables the age rule
    snippet_chars: int


@dataclass(frozen=True, slots=True)
class Decision:
    alert: Alert | None
    reason: str


def alert_id(article_id: str, destination: str) -> str:
    """Deterministic, so a re-run after a crash produces the same id (and the same metadata)."""
    return hashlib.sha256(f"{destination}\x00{article_id}".encode()).hexdigest()[:24]


def snippet(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut.rstrip(",.;:") + "…"


def decide(article: Article, verdict: Verdict, rules: AlertRules, *, now: datetime) -> Decision:
    if not verdict.match:
        return Decision(None, f"score {verdict.score:.2f} below threshold {verdict.threshold:.2f}")
    if rules.max_article_age_hours > 0:
        age = now - article.published_at
        if age > timedelta(hours=rules.max_article_age_hours):
            hours = age.total_seconds() / 3600
            return Decision(
                None,
                f"match but published {hours:.0f} h ago (older than "
                f"{rules.max_article_age_hours:g} h): stored without alert",
            )
    return Decision(build_alert(article, verdict, rules), "match")


def decide_echo(article: Article, verdict: Verdict, rules: AlertRules, *,
                now: datetime) -> Alert | None:
    """The "also reported by" reply for a near-duplicate that did not match on its own
    (queued only if the member it copies matched); the age rule still applies."""
    if verdict.match or _too_old(article, rules, now):
        return None
    return build_alert(article, verdict, rules)


def _too_old(article: Article, rules: AlertRules, now: datetime) -> bool:
    return rules.max_article_age_hours > 0 and (
        now - article.published_at > timedelta(hours=rules.max_article_age_hours))


def build_alert(article: Article, verdict: Verdict, rules: AlertRules) -> Alert:
    return Alert(
        id=alert_id(article.id, rules.destination),
        article_id=article.id,
        destination=rules.destination,
        title=article.title,
        url=article.url,
        source=article.source,
        published_at=article.published_at,
        score=verdict.score,
        reason=verdict.reason,
        snippet=snippet(article.summary, rules.snippet_chars),
        event_type=verdict.event_type,
    )
