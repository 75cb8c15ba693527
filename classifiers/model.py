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
import scipy.sparse as sp
from scipy.special import expit
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import VotingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline

from classifiers.artefact import default_model_path, load_artefact
from classifiers.errors import ClassifierError, ModelLoadError
from classifiers.event_typer import type_events
from classifiers.explain import FeatureLabel, feature_label, render, why_clause
from classifiers.features import HashedCharNgrams, RuleFeatures
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
    why: str | None = None
    """For matches: the clause of the text that links the two countries (``explain.why_clause``)."""


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why an item scored as it did: the aliases found and the strongest model features.

    ``top`` holds (feature, contribution) pairs in the linear model's logit units
    (positive pushes towards a match); rule features are prefixed "rule:"; only content
    words and aliases are shown (``classifiers.explain``). ``why`` quotes the clause that
    names both countries, when one does.
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
    why: str | None = None


#: Blocks whose features read as evidence in a one-line Slack reason.
_REASON_BLOCKS = frozenset({"word", "context"})


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
        self._blocks, self._weights = self._linear_view()
        self._labels = self._readable_labels()

    # -- scoring ----------------------------------------------------------------------------
    def annotate(self, texts: Sequence[str]) -> list[Mentions]:
        return self._annotate.transform([str(t) for t in texts])

    def _transform(self, mentions: Sequence[Mentions]) -> Any:
        """The feature matrix, computed branch by branch.

        Same numbers as ``FeatureUnion.transform`` without its per-call dispatch and
        validation, which cost more than the arithmetic for the one-item calls the
        daemon makes.
        """
        features = self._features
        if not isinstance(features, FeatureUnion):
            return features.transform(mentions)
        weights = features.transformer_weights or {}
        blocks = []
        for name, transformer in features.transformer_list:
            if transformer in ("drop", None):
                continue
            out: Any = mentions
            steps = transformer.steps if isinstance(transformer, Pipeline) else [("", transformer)]
            for _, step in steps:
                out = step.transform(out)
            block = out if sp.issparse(out) else sp.csr_matrix(out)
            if name in weights:
                block = block * weights[name]
            blocks.append(block)
        return sp.hstack(blocks, format="csr")

    def _proba_from(self, mentions: Sequence[Mentions]) -> tuple[np.ndarray, Any]:
        X = self._transform(mentions)
        clf = self._clf
        if isinstance(clf, LogisticRegression) and clf.coef_.shape[0] == 1:
            # expit(X·w + b) is exactly what predict_proba computes for a binary model.
            logit = np.asarray(X @ clf.coef_[0]).ravel() + clf.intercept_[0]
            return expit(logit), X
        return clf.predict_proba(X)[:, 1], X

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

    def score(self, texts: Sequence[str], *, threshold: float | None = None) -> list[Scored]:
        """Scores, decisions, one-line reasons and (for matches) event types.

        ``threshold`` overrides the model's own (e.g. an operator's setting), so that
        match, reason and event type all agree with the decision actually taken.
        """
        cut = self.threshold if threshold is None else float(threshold)
        if isinstance(texts, str):
            raise ClassifierError("score takes a sequence of texts, not one string")
        if len(texts) == 0:
            return []
        try:
            mentions = self.annotate(texts)
            proba, X = self._proba_from(mentions)
            matched = np.flatnonzero(proba >= cut)
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
                                  reason=self._reason(m, float(p), match, top, cut),
                                  event_type=event_of.get(i), keywords=_keywords(m),
                                  why=why_clause(m) if match else None))
        return results

    def explain(self, text: str, *, threshold: float | None = None) -> Explanation:
        """Everything behind one item's score (computed on request; slower than ``score``)."""
        cut = self.threshold if threshold is None else float(threshold)
        (m,) = self.annotate([text])
        proba, X = self._proba_from([m])
        p = float(proba[0])
        match = p >= cut
        top = self._top(X[0], p, m, k=8, positive_only=False, blocks=None)
        evidence = self._top(X[0], p, m, positive_only=match)
        event = self._event_types([m])[0] if match else None
        return Explanation(
            text=m.text, score=p, match=match, threshold=cut,
            dprk=Mentions.surfaces(m.dprk), russia=Mentions.surfaces(m.russia),
            cooperation=Mentions.surfaces(m.cooperation), places=Mentions.surfaces(m.places),
            other_states=Mentions.surfaces(m.other_states), top=top, event_type=event,
            reason=self._reason(m, p, match, evidence, cut), why=why_clause(m),
        )

    def event_types(self, texts: Sequence[str]) -> list[str]:
        """The event group of each text as if it were a match (for evaluation and stories).

        ``score`` types only matches; an evaluation set of known positives must be
        typed whatever its score.
        """
        if isinstance(texts, str):
            raise ClassifierError("event_types takes a sequence of texts, not one string")
        try:
            return self._event_types(self.annotate(texts))
        except ClassifierError:
            raise
        except Exception as exc:
            raise ClassifierError(f"event typing failed: {exc}") from exc

    # -- helpers ----------------------------------------------------------------------------
    def _event_types(self, mentions: Sequence[Mentions]) -> list[str]:
        """The event model and the cue lexicon combined (``classifiers.event_typer``)."""
        return type_events(self.event_model, mentions)

    def _reason(self, m: Mentions, p: float, match: bool,
                top: Sequence[tuple[str, float]], threshold: float) -> str:
        parts = [f"DPRK: {_short(Mentions.surfaces(m.dprk))}",
                 f"Russia: {_short(Mentions.surfaces(m.russia))}"]
        terms = Mentions.surfaces(m.cooperation)
        if terms:
            parts.append(f"terms: {_short(terms)}")
        if top:
            parts.append("top: " + ", ".join(
                f"{'+' if w >= 0 else '-'}{name} {abs(w):.2f}" for name, w in top[:_TOP]))
        if not match:
            parts.insert(0, f"score {p:.2f} < {threshold:.2f}")
        return "; ".join(parts)

    def _linear_view(self) -> tuple[list[tuple[str, int, np.ndarray | None]], np.ndarray | None]:
        """Feature blocks as (name, first column, readable names or None) and linear weights.

        Names are kept only for readable blocks (words, contexts, rules): the hashed
        character block has no names worth showing an analyst.
        """
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
        blocks: list[tuple[str, int, np.ndarray | None]] = []
        features = self._features
        if isinstance(features, FeatureUnion):
            offset = 0
            for block, transformer in features.transformer_list:
                if transformer in ("drop", None):
                    continue
                last = transformer[-1] if isinstance(transformer, Pipeline) else transformer
                if isinstance(last, HashedCharNgrams):
                    blocks.append((block, offset, None))
                    offset += len(last.buckets_)
                else:
                    names = np.asarray(last.get_feature_names_out(), dtype=object)
                    blocks.append((block, offset, names))
                    offset += len(names)
            width = offset
        elif isinstance(features, RuleFeatures):
            names = np.asarray(features.get_feature_names_out(), dtype=object)
            blocks = [("rules", 0, names)]
            width = len(names)
        else:
            width = -1
        if linear is not None and len(linear) != width:
            linear = None
        return blocks, (np.asarray(linear, dtype=float) if linear is not None else None)

    def _readable_labels(self) -> list[FeatureLabel | None]:
        """The label of every column (None: not shown), computed once per model."""
        labels: list[FeatureLabel | None] = []
        for block, start, names in self._blocks:
            labels.extend([None] * (start - len(labels)))
            if names is not None:
                labels.extend(feature_label(block, str(n)) for n in names)
        return labels

    def _feature_label(self, column: int, m: Mentions,
                       blocks: frozenset[str] | None = None) -> str | None:
        """A column as shown for this item (its own names for the actors), or None."""
        if column >= len(self._labels):
            return None
        label = self._labels[column]
        if label is None or (blocks is not None and label.block not in blocks):
            return None
        return render(label, m)

    def _top(self, row: Any, p: float, m: Mentions, *, k: int = _TOP,
             positive_only: bool = True,
             blocks: frozenset[str] | None = _REASON_BLOCKS) -> tuple[tuple[str, float], ...]:
        """The strongest readable contributions for one feature row.

        ``blocks`` limits which feature blocks may be shown; a model without linear
        weights (trees on rule features) can only be explained by its rules.
        """
        if self._weights is None:
            blocks = None
        if sp.issparse(row):
            row = row.tocsr()
            index, values = row.indices, row.data
        else:
            values = np.asarray(row).ravel()
            index = np.flatnonzero(values)
            values = values[index]
        if self._weights is not None:
            contributions = values * self._weights[index]
        else:
            dense = np.asarray(row.toarray() if sp.issparse(row) else row).ravel()
            contributions = self._occlusion(dense, index, p)
        order = np.argsort(-contributions if positive_only else -np.abs(contributions),
                           kind="stable")
        out: list[tuple[str, float]] = []
        shown: set[str] = set()  # two columns may read the same ("포탄을", "포탄")
        for j in order:
            c = float(contributions[j])
            if positive_only and c <= 0:
                break
            label = self._feature_label(int(index[j]), m, blocks)
            if label is None or abs(c) < 0.005 or label in shown:
                continue
            shown.add(label)
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
