"""Metrics, threshold choice, baselines and the leave-one-event-type-out check."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import average_precision_score

from classifiers.errors import ClassifierError
from classifiers.keywords import KeywordLexicon, normalise_text

if TYPE_CHECKING:
    from classifiers.data import Example

#: The story that started the project, in our own words: what a match looks like.
FOUNDING_EXAMPLE = (
    "Russia is buying millions of rockets and artillery shells from North Korea, US officials "
    "say, a sign that sanctions and battlefield losses have left Moscow short of ammunition for "
    "its war in Ukraine. Kim Jong Un and Vladimir Putin exchanged letters pledging to widen "
    "comprehensive and constructive relations, and analysts warn of a Northern Triangle of "
    "Pyongyang, Moscow and Beijing against Washington and Seoul."
)


@dataclass(frozen=True, slots=True)
class EvalReport:
    """Quality at one threshold plus the threshold-free PR-AUC (average precision)."""

    precision: float
    recall: float
    f1: float
    pr_auc: float
    threshold: float
    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def n_positive(self) -> int:
        return self.tp + self.fn

    @property
    def confusion(self) -> list[list[int]]:
        """[[tn, fp], [fn, tp]] (scikit-learn's layout: rows are true labels)."""
        return [[self.tn, self.fp], [self.fn, self.tp]]

    def as_dict(self) -> dict[str, Any]:
        return {"precision": round(self.precision, 4), "recall": round(self.recall, 4),
                "f1": round(self.f1, 4), "pr_auc": round(self.pr_auc, 4),
                "threshold": round(self.threshold, 4), "tp": self.tp, "fp": self.fp,
                "fn": self.fn, "tn": self.tn, "n": self.n}

    def format(self) -> str:
        return (
            f"n={self.n} (positives {self.n_positive})  threshold={self.threshold:.3f}\n"
            f"precision={self.precision:.3f}  recall={self.recall:.3f}  f1={self.f1:.3f}  "
            f"PR-AUC={self.pr_auc:.3f}\n"
            f"confusion: TP={self.tp} FP={self.fp} FN={self.fn} TN={self.tn}"
        )


def _as_arrays(scores: Sequence[float] | np.ndarray,
               labels: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=float).ravel()
    y = np.asarray(labels, dtype=int).ravel()
    if s.shape != y.shape:
        raise ClassifierError(f"{len(s)} scores but {len(y)} labels")
    if y.size and not np.isin(y, (0, 1)).all():
        raise ClassifierError("labels must be 0 or 1")
    return s, y


def evaluate(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray,
             threshold: float) -> EvalReport:
    """Precision/recall/F1 at ``threshold`` (score >= threshold is a match) and PR-AUC."""
    s, y = _as_arrays(scores, labels)
    pred = s >= threshold
    tp = int(np.sum(pred & (y == 1)))
    fp = int(np.sum(pred & (y == 0)))
    fn = int(np.sum(~pred & (y == 1)))
    tn = int(np.sum(~pred & (y == 0)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    pr_auc = float(average_precision_score(y, s)) if 0 < y.sum() < len(y) else math.nan
    return EvalReport(precision, recall, f1, pr_auc, float(threshold), tp, fp, fn, tn)


@dataclass(frozen=True, slots=True)
class ThresholdChoice:
    threshold: float
    precision: float
    recall: float
    f1: float
    met_target: bool
    target_precision: float

    def describe(self) -> str:
        how = ("highest recall with precision >= "
               f"{self.target_precision:.2f}" if self.met_target else
               f"best F1 (precision {self.target_precision:.2f} unreachable)")
        return (f"threshold {self.threshold:.3f} ({how}): precision {self.precision:.3f}, "
                f"recall {self.recall:.3f}, F1 {self.f1:.3f}")


def select_threshold(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray,
                     target_precision: float) -> ThresholdChoice:
    """The threshold with the highest recall among those reaching ``target_precision``.

    Candidates are the distinct scores (a match is score >= threshold). Among
    equally good cut points the returned threshold sits halfway to the next lower
    score, so that small shifts between out-of-fold and final-model scores do not
    flip borderline items. If no cut point reaches the target, the best-F1 one is
    returned with ``met_target=False`` and the caller should warn.
    """
    s, y = _as_arrays(scores, labels)
    if y.sum() == 0:
        raise ClassifierError("cannot choose a threshold without positive examples")
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    tp = np.cumsum(y_sorted)
    fp = np.cumsum(1 - y_sorted)
    # Only the last index of each run of equal scores is a real cut point.
    last = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    idx = np.flatnonzero(last)
    precision = tp[idx] / (tp[idx] + fp[idx])
    recall = tp[idx] / y.sum()
    f1 = np.where(precision + recall > 0,
                  2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    ok = precision >= target_precision - 1e-12
    if ok.any():
        # Highest recall; among ties the highest precision; then the highest threshold.
        candidates = np.flatnonzero(ok)
        best = max(candidates, key=lambda k: (recall[k], precision[k], -k))
        met = True
    else:
        best = int(np.argmax(f1))
        met = False
    cut = idx[best]
    upper = s_sorted[cut]
    lower = s_sorted[cut + 1] if cut + 1 < len(s_sorted) else max(0.0, upper - 0.01)
    threshold = float((upper + lower) / 2) if lower < upper else float(upper)
    return ThresholdChoice(threshold, float(precision[best]), float(recall[best]),
                           float(f1[best]), met, float(target_precision))


def plot_pr_curve(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray,
                  threshold: float, path: Path | str) -> Path:
    """Write a precision-recall curve (PNG/SVG/PDF by suffix) with the threshold marked."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ClassifierError("plotting needs matplotlib: pip install matplotlib "
                              "(or install this project with the [plot] extra)") from exc
    from sklearn.metrics import precision_recall_curve

    s, y = _as_arrays(scores, labels)
    precision, recall, _ = precision_recall_curve(y, s)
    at = evaluate(s, y, threshold)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.step(recall, precision, where="post", label=f"model (PR-AUC {at.pr_auc:.3f})")
    ax.plot([at.recall], [at.precision], "o", label=f"threshold {threshold:.2f}")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.01)
    ax.legend(loc="lower left")
    ax.set_title("North Korea–Russia cooperation")
    out = Path(path)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


# -- baselines ------------------------------------------------------------------------------
def keyword_rule_scores(texts: Sequence[str], lexicon: KeywordLexicon) -> np.ndarray:
    """1.0 when a DPRK alias AND a Russia alias appear (after exclusions), else 0.0."""
    return np.asarray([1.0 if lexicon.find(t).both else 0.0 for t in texts])


def founding_example_similarity(train_texts: Sequence[str], texts: Sequence[str]) -> np.ndarray:
    """TF-IDF cosine similarity of each text to ``FOUNDING_EXAMPLE`` (vocabulary from train)."""
    vectoriser = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    vectoriser.fit([normalise_text(t) for t in train_texts] + [FOUNDING_EXAMPLE])
    anchor = vectoriser.transform([FOUNDING_EXAMPLE])
    matrix = vectoriser.transform([normalise_text(t) for t in texts])
    return np.asarray((matrix @ anchor.T).toarray()).ravel()


# -- generalisation check -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class HeldOutRecall:
    event_type: str
    n: int
    recall: float


def _held_out_recall(examples: Sequence[Example], event_type: str, kind: str,
                     threshold: float, lexicon: dict[str, Any] | None,
                     seed: int) -> HeldOutRecall:
    from classifiers.train import fit_pipeline

    def is_held(e: Example) -> bool:
        return e.label == 1 and (e.event_type or "unknown") == event_type

    held = [e for e in examples if is_held(e)]
    pipe = fit_pipeline([e for e in examples if not is_held(e)], kind, lexicon=lexicon,
                        seed=seed)
    scores = pipe.predict_proba([e.text for e in held])[:, 1]
    return HeldOutRecall(event_type, len(held), float(np.mean(scores >= threshold)))


def leave_one_event_type_out(examples: Sequence[Example], kind: str = "logreg", *,
                             threshold: float = 0.5, lexicon: dict[str, Any] | None = None,
                             seed: int = 0, min_count: int = 5,
                             n_jobs: int | None = None) -> list[HeldOutRecall]:
    """Recall on each positive event type when the model never saw that type.

    Pass training-split examples only. A type the model recovers only when it has
    seen it is being memorised, not understood; low numbers here predict misses on
    kinds of cooperation the training set does not cover (new events, new wording).
    """
    from joblib import Parallel, delayed

    counts: dict[str, int] = {}
    for e in examples:
        if e.label == 1:
            counts[e.event_type or "unknown"] = counts.get(e.event_type or "unknown", 0) + 1
    types = sorted(t for t, n in counts.items() if n >= min_count)
    return list(Parallel(n_jobs=n_jobs)(
        delayed(_held_out_recall)(examples, t, kind, threshold, lexicon, seed) for t in types))
