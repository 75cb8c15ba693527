"""The shipped model on the frozen test split: the numbers the README and the model file report.

The frozen split is never used for training, model choice or the threshold, so
this is the honest check that the shipped model still does what we say it does.
"""

from __future__ import annotations

import pytest

import classifiers
from classifiers.data import load_examples, split_frozen
from classifiers.evaluate import evaluate

# Floors we promise in the README; the model file records the exact figures.
MIN_PRECISION = 0.90
MIN_RECALL = 0.85


def test_frozen_split_reaches_the_reported_numbers() -> None:
    model = classifiers.load()
    _, frozen = split_frozen(load_examples())
    labels = [e.label for e in frozen]
    report = evaluate(model.predict_proba([e.text for e in frozen]), labels, model.threshold)
    recorded = model.metadata["metrics"]["frozen_test"]

    assert report.n == recorded["n"] == len(frozen)
    assert (report.tp, report.fp, report.fn, report.tn) == (
        recorded["tp"], recorded["fp"], recorded["fn"], recorded["tn"])
    assert report.pr_auc == pytest.approx(recorded["pr_auc"], abs=1e-3)
    assert report.precision >= MIN_PRECISION
    assert report.recall >= MIN_RECALL


def test_headline_only_items_are_not_much_worse() -> None:
    """About half of real feed items are a bare headline; the model must not depend on a summary."""
    model = classifiers.load()
    _, frozen = split_frozen(load_examples())
    headlines = [e for e in frozen if not e.summary.strip()]
    assert len(headlines) > 50
    report = evaluate(model.predict_proba([e.text for e in headlines]),
                      [e.label for e in headlines], model.threshold)
    assert report.precision >= MIN_PRECISION
    assert report.recall >= MIN_RECALL - 0.05
