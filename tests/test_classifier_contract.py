"""The ``classifiers.Scorer`` contract: what any model must do for the daemon to use it.

The idea of scikit-learn's ``check_estimator``: one reusable check, run on every
model the daemon may be given, so a model swap (another kind, an embeddings model)
is proved compatible here and never needs a change in ``monitor/``.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

import classifiers
from classifiers.data import load_examples
from monitor.classify import ArticleClassifier

TEXTS = [
    "North Korea ships artillery shells to Russia, officials say",
    "Kim Jong Un and Putin sign a comprehensive strategic partnership treaty",
    "Heatwave closes schools in Madrid",
    "",
    "   ",
    "북한, 러시아에 포탄 수백만 발 제공",
    "КНДР и Россия подписали договор о партнёрстве",
    "مصر تستضيف محادثات 🕊️ \u202eRTL\u202c and emoji 🚀🇰🇵🇷🇺",
    "control\x00chars\x1b[31m and a very " + "long " * 400 + "text",
]


def check_scorer(model: classifiers.Scorer, texts: Sequence[str]) -> None:
    """Fail with a precise message where ``model`` breaks the Scorer contract."""
    assert isinstance(model, classifiers.Scorer)
    assert isinstance(model.threshold, float) and 0.0 < model.threshold < 1.0
    assert isinstance(model.version, str) and model.version

    texts = list(texts)
    scored = model.score(texts)
    assert len(scored) == len(texts), "one result per text, in order"
    for text, result in zip(texts, scored, strict=True):
        assert isinstance(result.score, float), text
        assert 0.0 <= result.score <= 1.0, (text, result.score)
        assert result.match == (result.score >= model.threshold), text
        assert isinstance(result.reason, str) and result.reason, text
        assert isinstance(result.keywords, tuple), text
        assert all(isinstance(k, str) for k in result.keywords), text
        assert result.event_type is None or (result.match and isinstance(result.event_type, str))

    assert model.score(texts) == scored, "scoring is deterministic"
    assert model.score([]) == []
    one_by_one = [model.score([t])[0] for t in texts]
    assert [r.match for r in one_by_one] == [r.match for r in scored], "batch == one by one"
    assert [r.score for r in one_by_one] == pytest.approx([r.score for r in scored], abs=1e-9)

    for cut in (0.05, 0.95):  # an operator's threshold decides the match, not the model's
        assert [r.match for r in model.score(texts, threshold=cut)] == [
            r.score >= cut for r in scored]

    for text, result in zip(texts, scored, strict=True):
        why = model.explain(text)
        assert why.score == pytest.approx(result.score, abs=1e-9), text
        assert why.match == result.match and why.threshold == model.threshold
        assert isinstance(why.reason, str) and why.reason
        for side in (why.dprk, why.russia, why.cooperation, why.places, why.other_states):
            assert isinstance(side, tuple) and all(isinstance(s, str) for s in side)
        assert all(isinstance(name, str) and isinstance(weight, float)
                   for name, weight in why.top), why.top
        assert model.explain(text, threshold=0.99).threshold == 0.99


@pytest.fixture(scope="module")
def shipped() -> classifiers.Model:
    return classifiers.load()


def test_the_shipped_model_honours_the_contract(shipped: classifiers.Model) -> None:
    sample = [e.text for e in load_examples()[::40]]
    check_scorer(shipped, TEXTS + sample)


class KeywordScorer:
    """A model of a different kind (no scikit-learn): the protocol is all the daemon sees."""

    threshold = 0.5
    version = "keywords-only-1"

    def _p(self, text: str) -> float:
        lowered = text.lower()
        return 0.5 * ("korea" in lowered) + 0.5 * ("russia" in lowered)

    def score(self, texts: Sequence[str], *,
              threshold: float | None = None) -> list[classifiers.Scored]:
        cut = self.threshold if threshold is None else threshold
        return [classifiers.Scored(p, p >= cut, f"keyword score {p:.1f}",
                                   "other" if p >= cut else None, ())
                for p in map(self._p, texts)]

    def explain(self, text: str, *, threshold: float | None = None) -> classifiers.Explanation:
        cut = self.threshold if threshold is None else threshold
        p = self._p(text)
        return classifiers.Explanation(text, p, p >= cut, cut, (), (), (), (), (), (), None,
                                       f"keyword score {p:.1f}")


def test_another_kind_of_model_passes_and_the_daemon_uses_it() -> None:
    model = KeywordScorer()
    check_scorer(model, TEXTS)
    verdicts = ArticleClassifier(model).classify_texts(["a", "b"], TEXTS[:2])
    assert [v.model_version for v in verdicts] == ["keywords-only-1"] * 2
    assert verdicts[0].match and verdicts[0].event_type == "other"
