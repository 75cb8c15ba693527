"""The only bridge between the daemon and the ``classifiers`` package.

Keeping the import of ``classifiers`` here means the rest of the daemon deals
in Articles and Verdicts only, and a model swap (or an embeddings model) never
touches feed, storage or Slack code.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import classifiers
from classifiers.errors import ClassifierError
from monitor.errors import ClassifyError
from monitor.models import Article, Verdict


class ArticleClassifier:
    """Scores articles with a loaded model and an (optionally overridden) threshold."""

    def __init__(self, model: Any, *, threshold: float | None = None) -> None:
        self.model = model
        self.threshold = float(threshold if threshold is not None else model.threshold)
        self.version = str(model.version)

    @classmethod
    def load(cls, path: Path | None, *, threshold: float | None = None) -> ArticleClassifier:
        try:
            model = classifiers.load(path)
        except ClassifierError as exc:
            raise ClassifyError(str(exc)) from exc
        return cls(model, threshold=threshold)

    def classify(self, articles: Sequence[Article]) -> list[Verdict]:
        if not articles:
            return []
        try:
            # The threshold goes in, so the match, its reason and its event type all
            # follow the operator's threshold rather than the one stored with the model.
            scored = self.model.score(
                [article.text for article in articles], threshold=self.threshold
            )
        except ClassifierError as exc:
            raise ClassifyError(f"model {self.version} failed: {exc}") from exc
        verdicts = []
        for article, result in zip(articles, scored, strict=True):
            match = bool(result.match)
            verdicts.append(
                Verdict(
                    article_id=article.id,
                    score=float(result.score),
                    match=match,
                    threshold=self.threshold,
                    reason=result.reason,
                    model_version=self.version,
                    event_type=result.event_type if match else None,
                    keywords=tuple(result.keywords),
                )
            )
        return verdicts
