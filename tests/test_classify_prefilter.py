"""The daemon's pre-filter may skip the model only where the model would not match anyway."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from classifiers.data import load_examples
from monitor.classify import UNSCORED_REASON, ArticleClassifier
from monitor.countries import load_prefilter_terms
from monitor.models import Article

KEYWORDS = Path(__file__).resolve().parent.parent / "config" / "keywords.toml"
NOW = datetime(2025, 1, 1, tzinfo=UTC)


def article(i: int, title: str, summary: str = "") -> Article:
    return Article(id=f"a{i}", feed_name="desk", source="Desk", url=f"https://d.example/{i}",
                   title=title, summary=summary, published_at=NOW, first_seen_at=NOW)


@pytest.fixture(scope="module")
def classifiers_pair() -> tuple[ArticleClassifier, ArticleClassifier]:
    plain = ArticleClassifier.load(None)
    terms = load_prefilter_terms(KEYWORDS)
    return plain, ArticleClassifier(plain.model, prefilter=terms)


def test_skipped_items_are_ones_the_model_would_not_match(
    classifiers_pair: tuple[ArticleClassifier, ArticleClassifier],
) -> None:
    plain, filtered = classifiers_pair
    items = [article(i, e.title, e.summary) for i, e in enumerate(load_examples())]
    with_filter = filtered.classify(items)
    without = plain.classify(items)
    skipped = [i for i, v in enumerate(with_filter) if v.reason == UNSCORED_REASON]
    assert len(skipped) > 50  # ordinary world news in the training data
    assert [v.match for v in with_filter] == [v.match for v in without]
    assert max(without[i].score for i in skipped) < plain.threshold / 2
    scored = [i for i in range(len(items)) if i not in set(skipped)]
    assert all(with_filter[i] == without[i] for i in scored)


def test_order_is_kept_and_weak_aliases_count(
    classifiers_pair: tuple[ArticleClassifier, ArticleClassifier],
) -> None:
    _, filtered = classifiers_pair
    items = [
        article(0, "Heatwave closes schools in Madrid"),
        article(1, "Kim and Putin trade birthday letters pledging closer ties"),
        article(2, "Grain prices fall in Chicago"),
        article(3, "Северная Корея и Россия подписали договор о партнёрстве"),
        article(4, "Хасан – Туманган: грузовые перевозки по мосту выросли"),
        article(5, "Мост через Туманную почти достроен"),  # an inflected place name
    ]
    verdicts = filtered.classify(items)
    assert [v.article_id for v in verdicts] == ["a0", "a1", "a2", "a3", "a4", "a5"]
    unscored = [v.reason == UNSCORED_REASON for v in verdicts]
    assert unscored == [True, False, True, False, False, False]
    assert verdicts[0].score == 0.0 and not verdicts[0].match
    assert verdicts[1].match
