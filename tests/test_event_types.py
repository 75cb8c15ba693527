"""Event types analysts can trust: the labelled set, the typer's accuracy on it, its rules.

Floors are measurement minus a margin: on the set, today's typer reached 0.969 overall
(0.965 English, 0.983 Korean, 0.967 Russian, every type's recall at least 0.86) both with
the shipped model and with an event model fitted on the training split of 2025-12 data;
the typer before this change reached 0.607 overall, 0.400 on Korean and 0.450 on Russian.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer

import classifiers
from classifiers.data import DATA_DIR, load_examples, split_frozen
from classifiers.errors import DataError
from classifiers.event_cues import cue_scores, matched_cues
from classifiers.event_typer import combine, type_events
from classifiers.events import EVENT_GROUPS, coarse_event_type
from classifiers.events_report import (
    DEFAULT_SET,
    EventReport,
    evaluate_model,
    load_event_set,
    main,
)
from classifiers.keywords import KeywordLexicon
from classifiers.train import fit_event_model

OVERALL_FLOOR = 0.85
LANGUAGE_FLOOR = 0.80
TYPE_RECALL_FLOOR = 0.70
#: Character-trigram Jaccard similarity of two headlines at which one is a near copy.
NEAR_COPY = 0.75
#: The Korean summit-and-treaty headline once typed arms/military.
KOREAN_SUMMIT_TREATY = "evt-ko-018"


@pytest.fixture(scope="module")
def items() -> list:
    return load_event_set()


@pytest.fixture(scope="module")
def shipped() -> classifiers.Model:
    return classifiers.load()


def _with_fresh_events(shipped: classifiers.Model, examples: list) -> classifiers.Model:
    """The shipped classifier with an event model fitted now, by today's code, on ``examples``."""
    event_model = fit_event_model(examples, KeywordLexicon.from_toml().to_dict(), seed=0)
    return classifiers.Model(shipped.classifier, threshold=shipped.threshold,
                             version=shipped.version + "+fresh-events",
                             metadata=shipped.metadata, event_model=event_model)


def test_the_set_is_evaluation_data_with_enough_of_every_group_and_language(items) -> None:
    assert DATA_DIR not in DEFAULT_SET.parents  # never training data
    assert len(items) >= 240
    langs = Counter(i.lang for i in items)
    assert langs["ko"] >= 50 and langs["ru"] >= 50 and langs["en"] >= 100
    groups = Counter(i.event_type for i in items)
    assert set(groups) == set(EVENT_GROUPS)
    assert min(groups.values()) >= 30
    assert all(i.title.strip() for i in items)


def test_no_item_is_a_near_copy_of_a_training_headline(items) -> None:
    """Headlines converge ("Lavrov arrives in Wonsan…"); a near copy would measure memory.

    Similarity is the Jaccard index of lower-cased character trigram sets.
    """
    training = load_examples()
    grams = CountVectorizer(analyzer="char", ngram_range=(3, 3), binary=True)
    matrix = grams.fit_transform([e.title for e in training] + [i.title for i in items])
    theirs, mine = matrix[:len(training)], matrix[len(training):]
    shared = (mine @ theirs.T).toarray()
    sizes_mine = np.asarray(mine.sum(axis=1)).ravel()[:, None]
    sizes_theirs = np.asarray(theirs.sum(axis=1)).ravel()[None, :]
    jaccard = shared / (sizes_mine + sizes_theirs - shared)
    close = [(items[i].id, training[j].id) for i, j in zip(*np.nonzero(jaccard >= NEAR_COPY),
                                                           strict=True)]
    assert close == []


def test_bad_sets_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "title": "t", "lang": "en", "event_type": "weather"}\n',
                   encoding="utf-8")
    with pytest.raises(DataError, match="unknown event type"):
        load_event_set(bad)
    bad.write_text('{"id": "x", "title": "t", "lang": "de", "event_type": "other"}\n',
                   encoding="utf-8")
    with pytest.raises(DataError, match="unknown language"):
        load_event_set(bad)


def _check_floors(report: EventReport) -> None:
    assert report.accuracy() >= OVERALL_FLOOR, report.format()
    for lang in ("en", "ko", "ru"):
        assert report.accuracy(lang) >= LANGUAGE_FLOOR, report.format()
    for group, (_, recall, _) in report.per_type().items():
        assert recall >= TYPE_RECALL_FLOOR, f"{group}\n{report.format()}"
    predicted = dict(zip((i.id for i in report.items), report.predicted, strict=True))
    assert predicted[KOREAN_SUMMIT_TREATY] == "diplomacy/summit"


@pytest.mark.slow
def test_freshly_trained_typer_meets_the_floors(shipped, items) -> None:
    """What the lead's retrain will ship: an event model fitted on the training split.

    The full form also fits on all data (train and frozen test split), as a retrain
    with every label would; ``MONITOR_SHORT_SLOW=1`` fits on the training split only.
    """
    examples = sorted(load_examples(), key=lambda e: e.id)
    fits = [split_frozen(examples)[0]]
    if not os.environ.get("MONITOR_SHORT_SLOW"):
        fits.append(examples)
    for data in fits:
        _check_floors(evaluate_model(_with_fresh_events(shipped, data), items))


def test_shipped_model_with_todays_typer_meets_the_floors(shipped, items) -> None:
    _check_floors(evaluate_model(shipped, items))


def test_the_public_api_types_the_korean_summit_and_treaty_headline(shipped, items) -> None:
    (case,) = [i for i in items if i.id == KOREAN_SUMMIT_TREATY]
    assert shipped.event_types([case.title, case.text]) == ["diplomacy/summit"] * 2
    with pytest.raises(classifiers.ClassifierError):
        shipped.event_types("one string is not a batch")


def test_report_counts_agree_with_the_confusion_matrix(shipped, items) -> None:
    report = evaluate_model(shipped, items)
    matrix = report.confusion()
    assert matrix.sum() == len(items)
    assert np.trace(matrix) / len(items) == pytest.approx(report.accuracy())
    for i, (_, recall, support) in enumerate(report.per_type().values()):
        assert support == matrix[i].sum()
        assert recall == pytest.approx(matrix[i, i] / support)


def test_the_cli_prints_tables(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["--markdown"]) == 0
    out = capsys.readouterr().out
    assert "| event type | precision | recall (accuracy) | n |" in out
    assert "| ko |" in out and "| ru |" in out
    assert main(["--model", str(tmp_path / "missing.skops")]) == 1


# -- the rules behind the typer ---------------------------------------------------------
@pytest.mark.parametrize(("fine", "group"), [
    ("summit_treaty", "diplomacy/summit"), ("mutual_defence_treaty", "diplomacy/summit"),
    ("defence_minister_visit", "diplomacy/summit"), ("un_diplomatic_support", "diplomacy/summit"),
    ("troops_deployment", "arms/military"), ("military_units", "arms/military"),
    ("missiles_space_tech", "arms/military"), ("labour_workers", "economy/labour/trade"),
    ("power_grid", "economy/labour/trade"), ("sanctions_evasion", "sanctions/illicit"),
    ("axis_multiparty", "other"), ("analysis_relationship", "other"), ("", "other"),
])
def test_fine_labels_map_to_groups(fine: str, group: str) -> None:
    assert coarse_event_type(fine) == group


def _best(text: str, title_end: int | None = None) -> str:
    scores = cue_scores(text, title_end)
    return EVENT_GROUPS[int(np.argmax(scores))]


def test_treaty_and_summit_absorb_defence_vocabulary() -> None:
    assert _best("북러 정상회담서 상호 군사원조 조약 서명") == "diplomacy/summit"
    assert _best("Putin and Kim sign mutual defence treaty") == "diplomacy/summit"
    assert _best("Договор о военной помощи ратифицирован") == "diplomacy/summit"
    # ...but not the act: troops sent under the treaty are military.
    assert _best("North Korea deploys troops to Russia under treaty") == "arms/military"


def test_sanctions_absorb_what_was_sanctioned() -> None:
    assert _best("Seoul sanctions ships that carried North Korean shells") == "sanctions/illicit"
    assert _best("Танкеры в обход санкций везут нефть в КНДР") == "sanctions/illicit"
    groups = {g for g, _, _ in matched_cues("eu sanctions generals over troop deployment")}
    assert groups == {"sanctions/illicit"}


def test_cues_match_inside_korean_and_russian_words_but_not_across_latin_ones() -> None:
    assert _best("조약에는 원조 조항이") == "diplomacy/summit"  # particle glued to the stem
    assert _best("договора") == "diplomacy/summit"
    assert cue_scores("pollution and software")[EVENT_GROUPS.index("other")] == 0
    assert cue_scores("удалось")[EVENT_GROUPS.index("other")] == 0  # "ось" inside a word


def test_headline_cues_outweigh_the_description() -> None:
    text = "Kim meets Putin's envoy. Artillery deliveries were not discussed."
    assert _best(text, title_end=text.index("Artillery")) == "diplomacy/summit"


def test_without_a_model_or_evidence_the_type_is_other(shipped) -> None:
    zeros = np.zeros((2, len(EVENT_GROUPS)))
    cues = np.zeros((2, len(EVENT_GROUPS)))
    cues[1, EVENT_GROUPS.index("economy/labour/trade")] = 2.0
    assert combine(zeros, cues) == ["other", "economy/labour/trade"]
    annotate = shipped.annotate
    assert type_events(None, annotate(["Moscow–Pyongyang flights resume", "Hello"])) == [
        "economy/labour/trade", "other"]
