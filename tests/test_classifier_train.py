"""Training: frozen split, threshold choice, determinism and the guarded feedback retrain."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import classifiers
from classifiers.artefact import sha256_file
from classifiers.data import (
    Example,
    is_frozen_test,
    load_examples,
    split_frozen,
)
from classifiers.errors import ClassifierError, DataError, TrainingError
from classifiers.evaluate import evaluate, plot_pr_curve, select_threshold
from classifiers.train import retrain_with_feedback, train

PROBES = [
    "Russia buys millions of artillery shells from North Korea, US says",
    "North Korea fires ballistic missile into the sea",
    "Kim and Putin sign mutual defence treaty in Pyongyang",
    "Russian strikes hit Kyiv power grid",
]


def _subsample(n_pos: int, n_neg: int) -> list[Example]:
    """A deterministic, class-balanced slice of the shipped data (by hashed id)."""
    def key(e: Example) -> str:  # salted: the unsalted hash is what picks the frozen split
        return hashlib.sha256(b"subsample:" + e.id.encode()).hexdigest()

    examples = sorted(load_examples(), key=key)
    return ([e for e in examples if e.label == 1][:n_pos]
            + [e for e in examples if e.label == 0][:n_neg])


def _write(path: Path, examples: list[Example]) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for e in examples:
            out.write(json.dumps({"id": e.id, "title": e.title, "summary": e.summary,
                                  "label": e.label, "event_type": e.event_type,
                                  "style": e.style, "date": e.date}, ensure_ascii=False) + "\n")
    return path


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write(tmp_path_factory.mktemp("data") / "small.jsonl", _subsample(70, 130))


# -- data and split -------------------------------------------------------------------------
def test_frozen_split_is_stable_and_about_a_fifth() -> None:
    ids = [f"item-{i:05d}" for i in range(4000)]
    share = np.mean([is_frozen_test(i) for i in ids])
    assert 0.17 < share < 0.23
    assert [is_frozen_test(i) for i in ids[:50]] == [is_frozen_test(i) for i in ids[:50]]
    assert is_frozen_test("item-00000") == (hashlib.sha256(b"item-00000").digest()[0] < 52)
    examples = [Example(i, "t", "", 0) for i in ids[:300]]
    train_part, test_part = split_frozen(examples)
    assert {e.id for e in test_part} == {i for i in ids[:300] if is_frozen_test(i)}
    assert len(train_part) + len(test_part) == 300


def test_load_examples_reports_bad_lines(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "title": "x", "label": 1}\n{"id": "a", "title": "y", '
                   '"label": 0}\n', encoding="utf-8")
    with pytest.raises(DataError, match="duplicate id"):
        load_examples([bad])
    bad.write_text('{"id": "a", "title": "x", "label": 2}\n', encoding="utf-8")
    with pytest.raises(DataError, match="label"):
        load_examples([bad])
    bad.write_text("not json\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.jsonl:1"):
        load_examples([bad])


def test_example_text_joins_like_the_daemon() -> None:
    assert Example("x", "Title", "Summary.", 1).text == "Title. Summary."
    assert Example("x", "Headline only", "", 0).text == "Headline only"


# -- threshold and metrics ------------------------------------------------------------------
def test_threshold_reaches_target_precision_with_most_recall() -> None:
    scores = np.array([0.95, 0.9, 0.85, 0.8, 0.7, 0.65, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    labels = np.array([1, 1, 1, 0, 1, 1, 0, 1, 0, 1, 0, 0])
    choice = select_threshold(scores, labels, 0.8)
    report = evaluate(scores, labels, choice.threshold)
    assert choice.met_target and report.precision >= 0.8
    # 0.5 (7 tp / 9 predicted = 0.78) misses the target; 0.65 keeps 5 of 7 at 0.83.
    assert 0.6 < choice.threshold <= 0.65
    assert report.recall == pytest.approx(5 / 7)
    assert (report.tp, report.fp, report.fn, report.tn) == (5, 1, 2, 4)


def test_threshold_falls_back_to_best_f1_when_target_unreachable() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    labels = np.array([0, 1, 0, 1])
    choice = select_threshold(scores, labels, 0.99)
    assert not choice.met_target
    assert choice.threshold <= 0.6 and choice.f1 == pytest.approx(2 / 3)


def test_pr_curve_plot_or_a_clear_error(tmp_path: Path) -> None:
    scores, labels = [0.9, 0.8, 0.3, 0.1], [1, 0, 1, 0]
    target = tmp_path / "pr.png"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        with pytest.raises(ClassifierError, match="pip install matplotlib"):
            plot_pr_curve(scores, labels, 0.5, target)
    else:
        assert plot_pr_curve(scores, labels, 0.5, target) == target
        assert target.stat().st_size > 0


# -- training -------------------------------------------------------------------------------
def test_training_is_deterministic_and_order_free(small_data: Path, tmp_path: Path) -> None:
    rows = small_data.read_text(encoding="utf-8").splitlines()
    shuffled = tmp_path / "shuffled.jsonl"
    shuffled.write_text("\n".join(reversed(rows)) + "\n", encoding="utf-8")
    first = train([small_data], out_path=tmp_path / "a.skops", kind="logreg")
    second = train([shuffled], out_path=tmp_path / "b.skops", kind="logreg")
    a = classifiers.load(tmp_path / "a.skops")
    b = classifiers.load(tmp_path / "b.skops")
    assert np.array_equal(a.predict_proba(PROBES), b.predict_proba(PROBES))
    assert first.model_version == second.model_version == a.version
    assert first.threshold == pytest.approx(a.threshold)
    meta = a.metadata
    assert meta["training_data_sha256"] == second.metadata["training_data_sha256"]
    assert meta["metrics"]["frozen_test"]["n"] == first.n_test > 0
    assert {"scikit-learn", "skops", "python"} <= set(meta["versions"])
    assert meta["keywords_sha256"] and meta["created_at"]
    assert "frozen test" in first.format()


def test_unknown_kind_and_one_class_data_are_refused(small_data: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="unknown model kind"):
        train([small_data], out_path=tmp_path / "m.skops", kind="forest")
    negatives = [e for e in load_examples([small_data]) if e.label == 0]
    with pytest.raises(TrainingError, match="positive"):
        train([_write(tmp_path / "neg.jsonl", negatives)], out_path=tmp_path / "m.skops",
              kind="logreg")


def test_retrain_refuses_a_candidate_trained_on_flipped_labels(small_data: Path,
                                                               tmp_path: Path) -> None:
    current = tmp_path / "current.skops"
    train([small_data], out_path=current, kind="logreg")
    before = sha256_file(current)
    train_part, _ = split_frozen(load_examples([small_data]))
    # Same ids: feedback relabels every training item, and wrongly.
    poison = [replace(e, label=1 - e.label) for e in train_part]
    decision = retrain_with_feedback(current, poison, data_files=[small_data])
    assert not decision.installed
    assert decision.current is not None
    assert decision.candidate.f1 < decision.current.f1
    assert sha256_file(current) == before
    assert "kept the current model" in decision.format()


def test_retrain_installs_a_better_candidate(small_data: Path, tmp_path: Path) -> None:
    # The model in place was trained on inverted labels: any honest candidate beats it.
    inverted = [replace(e, label=1 - e.label) for e in load_examples([small_data])]
    current = tmp_path / "current.skops"
    train([_write(tmp_path / "inverted.jsonl", inverted)], out_path=current, kind="logreg")
    feedback = [
        Example("feedback-1", "Pyongyang sends more artillery shells to Moscow, Seoul says", "",
                1, "feedback", "feedback", "2024-05"),
        Example("feedback-2", "North Korea test-fires cruise missiles off west coast", "",
                0, "feedback", "feedback", "2024-05"),
    ]
    out = tmp_path / "installed.skops"
    decision = retrain_with_feedback(current, feedback, out, data_files=[small_data])
    assert decision.installed, decision.format()
    assert decision.current is not None
    assert decision.candidate.f1 >= decision.current.f1
    assert classifiers.load(out).version == decision.candidate_version


def test_retrain_replaces_an_unloadable_model(small_data: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here.skops"
    decision = retrain_with_feedback(missing, [], data_files=[small_data], kind="logreg")
    assert decision.installed and decision.current is None
    assert classifiers.load(missing).version == decision.candidate_version
