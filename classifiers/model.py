"""The loaded model: scores, decisions and human-readable explanations.

Scoring is batch-first: one annotation pass, one sparse matrix, one
``predict_proba`` call per batch. Explanations (the expensive, per-item part)
are computed only for matches, or when asked for with ``explain``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import VotingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline

from classifiers.artefact import default_model_path, load_artefact
from classifiers.errors import ClassifierError, ModelLoadError
from classifiers.events import EVENT_GROUPS
from classifiers.features import DISPLAY_TOKENS, RuleFeatures
from classifiers.keywords import Mentions

_MAX_TERMS = 3
_TOP = 3


@dataclass(frozen=True, slots=True)
class Scored:
    """One item's verdict; ``event_type`` is set only for matches."""

    score: float
    match: bool
    reason: str
    event_type: str | None
    keywords: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why an item scored as it did: the aliases found and the strongest model features.

    ``top`` holds (feature, contribution) pairs in the linear model's logit units
    (positive pushes towards a match); rule features are prefixed "rule:".
    """

    text: str
    score: float
    match: bool
    threshold: float
    dprk: tuple[str, ...]
    russia: tuple[str, ...]
    cooperation: tuple[str, ...]
    places: tuple[str, ...]
    other_states: tuple[str, ...]
    top: tuple[tuple[str, float], ...]
    event_type: str | None
    reason: str


def _display_feature(block: str, name: str) -> str | None:
    if block == "char":
        return None  # character n-grams are not readable evidence
    if block == "rules":
        return f"rule:{name}"
    return " ".join(DISPLAY_TOKENS.get(token, token) for token in name.split(" "))


def _short(values: Sequence[str]) -> str:
    if not values:
        return "none"
    shown = list(values[:_MAX_TERMS])
    more = len(values) - len(shown)
    return ", ".join(shown) + (f" +{more}" if more > 0 else "")


def _keywords(m: Mentions) -> tuple[str, ...]:
    return Mentions.surfaces((*m.dprk, *m.russia, *m.cooperation))


class Model:
    """A fitted classifier plus its threshold, version and metadata."""

    def __init__(self, classifier: Pipeline, *, threshold: float, version: str,
                 metadata: Mapping[str, Any] | None = None,
                 event_model: Pipeline | None = None) -> None:
        try:
            self._annotate = classifier.named_steps["annotate"]
            self._features = classifier.named_steps["features"]
            self._clf = classifier.named_steps["clf"]
        except (AttributeError, KeyError) as exc:
            raise ModelLoadError("the model file does not hold a classifiers pipeline "
                                 "(annotate → features → clf)") from exc
        self.classifier = classifier
        self.event_model = event_model
        self.threshold = float(threshold)
        self.version = str(version)
        self.metadata: dict[str, Any] = dict(metadata or {})
        self._names, self._weights = self._linear_view()

    # -- scoring ----------------------------------------------------------------------------
    def annotate(self, texts: Sequence[str]) -> list[Mentions]:
        return self._annotate.transform([str(t) for t in texts])

    def _proba_from(self, mentions: Sequence[Mentions]) -> tuple[np.ndarray, Any]:
        X = self._features.transform(mentions)
        return self._clf.predict_proba(X)[:, 1], X

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probability that each text is about North Korea–Russia cooperation."""
        if isinstance(texts, str):
            raise ClassifierError("predict_proba takes a sequence of texts, not one string")
        if len(texts) == 0:
            return np.zeros(0)
        try:
            proba, _ = self._proba_from(self.annotate(texts))
        except ClassifierError:
            raise
        except Exception as exc:
            raise ClassifierError(f"scoring failed: {exc}") from exc
        return proba

    def score(self, texts: Sequence[str]) -> list[Scored]:
        """Scores, decisions at ``threshold``, short reasons and (for matches) event types."""
        if isinstance(texts, str):
            raise ClassifierError("score takes a sequence of texts, not one string")
        if len(texts) == 0:
            return []
        try:
            mentions = self.annotate(texts)
            proba, X = self._proba_from(mentions)
            matched = np.flatnonzero(proba >= self.threshold)
            events = self._event_types([mentions[i] for i in matched])
        except ClassifierError:
            raise
        except Exception as exc:
            raise ClassifierError(f"scoring failed: {exc}") from exc
        event_of = dict(zip(matched.tolist(), events, strict=True))
        results = []
        for i, (m, p) in enumerate(zip(mentions, proba, strict=True)):
            match = i in event_of
            top = self._top(X[i], float(p), m) if match else ()
            results.append(Scored(score=float(p), match=match,
                                  reason=self._reason(m, float(p), match, top),
                                  event_type=event_of.get(i), keywords=_keywords(m)))
        return results

    def explain(self, text: str) -> Explanation:
        """Everything behind one item's score (computed on request; slower than ``score``)."""
        (m,) = self.annotate([text])
        proba, X = self._proba_from([m])
        p = float(proba[0])
        match = p >= self.threshold
        top = self._top(X[0], p, m, k=6, positive_only=False)
        event = self._event_types([m])[0] if match else None
        return Explanation(
            text=m.text, score=p, match=match, threshold=self.threshold,
            dprk=Mentions.surfaces(m.dprk), russia=Mentions.surfaces(m.russia),
            cooperation=Mentions.surfaces(m.cooperation), places=Mentions.surfaces(m.places),
            other_states=Mentions.surfaces(m.other_states), top=top, event_type=event,
            reason=self._reason(m, p, match, top),
        )

    # -- helpers ----------------------------------------------------------------------------
    def _event_types(self, mentions: Sequence[Mentions]) -> list[str]:
        if not mentions:
            return []
        if self.event_model is None:
            return ["other"] * len(mentions)
        predicted = self.event_model[1:].predict(list(mentions))
        return [str(e) if str(e) in EVENT_GROUPS else "other" for e in predicted]

    def _reason(self, m: Mentions, p: float, match: bool,
                top: Sequence[tuple[str, float]]) -> str:
        parts = [f"DPRK: {_short(Mentions.surfaces(m.dprk))}",
                 f"Russia: {_short(Mentions.surfaces(m.russia))}"]
        terms = Mentions.surfaces(m.cooperation)
        if terms:
            parts.append(f"terms: {_short(terms)}")
        if top:
            parts.append("top: " + ", ".join(
                f"{'+' if w >= 0 else '-'}{name} {abs(w):.2f}" for name, w in top[:_TOP]))
        if not match:
            parts.insert(0, f"score {p:.2f} < {self.threshold:.2f}")
        return "; ".join(parts)

    def _linear_view(self) -> tuple[list[tuple[str, str]] | None, np.ndarray | None]:
        """(block, feature) names and weights of the model's linear part, if it has one."""
        clf = self._clf
        linear: Any = None
        if isinstance(clf, LogisticRegression):
            linear = clf.coef_[0]
        elif isinstance(clf, VotingClassifier):
            lr = clf.named_estimators_.get("lr")
            linear = lr.coef_[0] if isinstance(lr, LogisticRegression) else None
        elif isinstance(clf, CalibratedClassifierCV):
            coefs = [c.estimator.coef_[0] for c in clf.calibrated_classifiers_
                     if hasattr(c.estimator, "coef_")]
            linear = np.mean(coefs, axis=0) if coefs else None
        names: list[tuple[str, str]] = []
        features = self._features
        if isinstance(features, FeatureUnion):
            for block, transformer in features.transformer_list:
                last = transformer[-1] if isinstance(transformer, Pipeline) else transformer
                names.extend((block, str(n)) for n in last.get_feature_names_out())
        elif isinstance(features, RuleFeatures):
            names = [("rules", str(n)) for n in features.get_feature_names_out()]
        if linear is not None and len(linear) != len(names):
            linear = None
        return names, (np.asarray(linear, dtype=float) if linear is not None else None)

    def _top(self, row: Any, p: float, m: Mentions, *, k: int = _TOP,
             positive_only: bool = True) -> tuple[tuple[str, float], ...]:
        """The strongest readable contributions for one feature row."""
        names = self._names or []
        if hasattr(row, "tocsr"):
            row = row.tocsr()
            index, values = row.indices, row.data
        else:
            values = np.asarray(row).ravel()
            index = np.flatnonzero(values)
            values = values[index]
        if self._weights is not None:
            contributions = values * self._weights[index]
        else:
            contributions = self._occlusion(np.asarray(row.toarray() if hasattr(row, "toarray")
                                                       else row).ravel(), index, p)
        order = np.argsort(-contributions if positive_only else -np.abs(contributions))
        out: list[tuple[str, float]] = []
        for j in order:
            c = float(contributions[j])
            if positive_only and c <= 0:
                break
            block, name = names[index[j]]
            label = _display_feature(block, name)
            if label is None or abs(c) < 0.005:
                continue
            out.append((label, round(c, 3)))
            if len(out) == k:
                break
        return tuple(out)

    def _occlusion(self, dense: np.ndarray, index: np.ndarray, p: float) -> np.ndarray:
        """For non-linear models: how much the score drops when each active feature is zeroed."""
        if len(index) == 0:
            return np.zeros(0)
        variants = np.repeat(dense[None, :], len(index), axis=0)
        variants[np.arange(len(index)), index] = 0.0
        return p - self._clf.predict_proba(variants)[:, 1]


def load(path: Path | str | None = None) -> Model:
    """Load a model artefact; ``None`` means the packaged default model.

    Raises ``ModelLoadError`` (with the command that fixes it) when the file is
    missing, corrupt, modified, or from another scikit-learn version.
    """
    target = Path(path) if path is not None else default_model_path()
    bundle, meta = load_artefact(target)
    try:
        threshold = float(meta["threshold"])
        version = str(meta["model_version"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelLoadError(f"model metadata for {target} lacks threshold/model_version") from exc
    return Model(bundle["classifier"], threshold=threshold, version=version, metadata=meta,
                 event_model=bundle.get("event_model"))
