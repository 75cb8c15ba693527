"""The only bridge between the daemon and the ``classifiers`` package.

Keeping the import of ``classifiers`` here means the rest of the daemon deals
in Articles and Verdicts only, and a model swap (or an embeddings model) never
touches feed, storage or Slack code.

With a ``prefilter``, items that name neither North Korea nor Russia by any
alias in the keyword file (weak ones included) nor one of its [places] are not
scored: they cannot be about the two countries' cooperation, and most world news
is such items, so this saves most of the model's CPU. They get score 0 and a reason saying so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import classifiers
from classifiers.errors import ClassifierError
from monitor.countries import mentions_country
from monitor.errors import ClassifyError
from monitor.models import Article, Verdict

Prefilter = tuple[frozenset[str], ...]
"""Groups of terms (see monitor.countries.load_prefilter_terms); any hit means "score it"."""
UNSCORED_REASON = "names neither North Korea nor Russia: not scored"


class ArticleClassifier:
    """Scores articles with a loaded model and an (optionally overridden) threshold.

    The model is any ``classifiers.Scorer``: the daemon relies on nothing else, so a
    different kind of model only has to pass tests/test_classifier_contract.py.
    """

    def __init__(
        self, model: classifiers.Scorer, *, threshold: float | None = None,
        prefilter: Prefilter | None = None,
    ) -> None:
        self.model = model
        self.threshold = float(threshold if threshold is not None else model.threshold)
        self.version = str(model.version)
        self.prefilter = prefilter

    @classmethod
    def load(
        cls, path: Path | None, *, threshold: float | None = None,
        prefilter: Prefilter | None = None,
    ) -> ArticleClassifier:
        try:
            model = classifiers.load(path)
        except ClassifierError as exc:
            raise ClassifyError(str(exc)) from exc
        return cls(model, threshold=threshold, prefilter=prefilter)

    async def classify_in_thread(self, articles: Sequence[Article]) -> list[Verdict]:
        """Off the event loop but in the daemon's process (``classifier.workers = 0``)."""
        return await asyncio.to_thread(self.classify, articles)

    def classify(self, articles: Sequence[Article]) -> list[Verdict]:
        return self.classify_texts([a.id for a in articles], [a.text for a in articles])

    def classify_texts(self, ids: Sequence[str], texts: Sequence[str]) -> list[Verdict]:
        """Verdicts for articles given by id and text: all a verdict depends on, and all
        that has to cross into a classifier worker process (monitor.classify_pool)."""
        if len(ids) != len(texts):
            raise ClassifyError(f"{len(ids)} ids for {len(texts)} texts")
        if not ids or self.prefilter is None:
            return self._score(ids, texts)
        named = [mentions_country(text, self.prefilter) for text in texts]
        chosen = [i for i, hit in enumerate(named) if hit]
        scored = iter(self._score([ids[i] for i in chosen], [texts[i] for i in chosen]))
        return [next(scored) if hit else self._unscored(article_id)
                for article_id, hit in zip(ids, named, strict=True)]

    def _unscored(self, article_id: str) -> Verdict:
        return Verdict(
            article_id=article_id, score=0.0, match=False, threshold=self.threshold,
            reason=UNSCORED_REASON, model_version=self.version, event_type=None, keywords=(),
        )

    def _score(self, ids: Sequence[str], texts: Sequence[str]) -> list[Verdict]:
        if not ids:
            return []
        try:
            # The threshold goes in, so the match, its reason and its event type all
            # follow the operator's threshold rather than the one stored with the model.
            scored = self.model.score(list(texts), threshold=self.threshold)
        except ClassifierError as exc:
            raise ClassifyError(f"model {self.version} failed: {exc}") from exc
        verdicts = []
        for article_id, result in zip(ids, scored, strict=True):
            match = bool(result.match)
            verdicts.append(
                Verdict(
                    article_id=article_id,
                    score=float(result.score),
                    match=match,
                    threshold=self.threshold,
                    reason=result.reason,
                    model_version=self.version,
                    event_type=result.event_type if match else None,
                    keywords=tuple(result.keywords),
                    # another kind of Scorer may not quote a clause
                    why=getattr(result, "why", None) if match else None,
                )
            )
        return verdicts
