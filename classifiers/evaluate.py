"""Metrics and threshold choice: what training uses to pick and report a model.

Baselines and the leave-one-event-type-out check are research tools and live in
``classifiers.experiments``, which imports training; keeping them out of here keeps
the import direction one way (experiments → train → evaluate).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score

from classifiers.errors import ClassifierError


class ConfusionCounts:
    """The counts every quality figure is built from, and their two sums.

    A mixin rather than a dataclass base so that each report keeps its own field
    order (``EvalReport`` is built positionally, precision first); subclasses are
    dataclasses that declare ``tp``, ``fp``, ``fn`` and ``tn``.
    """

    __slots__ = ()
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


def confusion_at(scores: np.ndarray, labels: np.ndarray,
                 threshold: float) -> tuple[int, int, int, int]:
    """``(tp, fp, fn, tn)`` at ``threshold``: score >= threshold is a match, everywhere."""
    pred = scores >= threshold
    return (int(np.sum(pred & (labels == 1))), int(np.sum(pred & (labels == 0))),
            int(np.sum(~pred & (labels == 1))), int(np.sum(~pred & (labels == 0))))


@dataclass(frozen=True, slots=True)
class EvalReport(ConfusionCounts):
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
    tp, fp, fn, tn = confusion_at(s, y, threshold)
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
