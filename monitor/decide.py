"""Verdict + alerting rules → an Alert (or the reason there is none).

Separate from classification so that policy (which matches are worth a ping,
where they go) can change without retraining, and so that every decision has a
stated reason that can be logged and tested.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.language import script_language
from monitor.models import Alert, Article, Verdict


@dataclass(frozen=True, slots=True)
class Route:
    """A further destination for the matches that meet all its conditions."""

    destination: str
    event_types: frozenset[str] = frozenset()
    min_score: float | None = None
    keywords: tuple[str, ...] = ()
    """Lower-case words or phrases; one must occur in the headline or summary."""

    def accepts(self, article: Article, verdict: Verdict) -> bool:
        if self.event_types and verdict.event_type not in self.event_types:
            return False
        if self.min_score is not None and verdict.score < self.min_score:
            return False
        if self.keywords:
            text = article.text.lower()
            return any(keyword in text for keyword in self.keywords)
        return True


@dataclass(frozen=True, slots=True)
class AlertRules:
    """From ``[alerts]`` (monitor.settings, where the defaults are written)."""

    destination: str
    max_article_age_hours: float   # 0 disables the age rule
    snippet_chars: int
    routes: tuple[Route, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    alert: Alert | None
    reason: str
    routed: tuple[Alert, ...] = ()
    """The same match for the routes that accept it (other channels)."""

    @property
    def alerts(self) -> list[Alert]:
        return [] if self.alert is None else [self.alert, *self.routed]


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
    routed = tuple(build_alert(article, verdict, rules, destination=route.destination)
                   for route in rules.routes if route.accepts(article, verdict))
    return Decision(build_alert(article, verdict, rules), "match", routed)


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


def build_alert(article: Article, verdict: Verdict, rules: AlertRules, *,
                destination: str | None = None) -> Alert:
    destination = destination or rules.destination
    return Alert(
        id=alert_id(article.id, destination),
        article_id=article.id,
        destination=destination,
        title=article.title,
        url=article.url,
        source=article.source,
        published_at=article.published_at,
        score=verdict.score,
        reason=verdict.reason,
        snippet=snippet(article.summary, rules.snippet_chars),
        event_type=verdict.event_type,
        why=verdict.why,
        lang=script_language(article.text),
    )
