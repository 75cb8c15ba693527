"""classifiers.report: per-group arithmetic, the frozen breakdown, and leave-shape-out.

A tiny synthetic data set keeps the real fits (classifiers.train.fit) to a few seconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from classifiers.data import Example, is_frozen_test
from classifiers.errors import ClassifierError
from classifiers.keywords import KeywordLexicon
from classifiers.model import Model
from classifiers.report import (
    UNTAGGED,
    FrozenReport,
    format_comparison,
    format_frozen,
    format_holdout,
    frozen_report,
    group_score,
    holdout_shapes,
    leave_shape_out,
    score_groups,
)
from classifiers.train import fit

_POSITIVE = [
    "North Korea ships artillery shells to Russia by rail",
    "Kim Jong Un and Putin sign defence treaty in Pyongyang",
    "Russian tourists arrive in Wonsan as Moscow and Pyongyang expand ties",
    "North Korean troops deployed to Russia's Kursk region, Seoul says",
    "Lavrov meets Kim Jong Un, pledges support against US pressure",
    "Russia delivers oil to North Korea above the UN cap",
    "Pyongyang sends missiles to Moscow for its war in Ukraine",
    "North Korean workers rebuild Russian-held Donbas towns",
]
_NEGATIVE = [
    "North Korea fires ballistic missile into the sea off its east coast",
    "Russia strikes Ukrainian power plants overnight",
    "Kim Jong Un inspects new greenhouse farm in South Hamgyong",
    "China and Russia hold joint naval drill near Japan",
    "Ukrainian drones hit oil depot in Russia's Belgorod region",
    "South Korea and Japan agree on missile warning data sharing",
    "Pyongyang marks party anniversary with mass rally",
    "Putin meets Xi in Beijing to discuss trade",
]
_CITIES = ["Seoul", "Tokyo", "Kyiv", "Washington", "Berlin", "Paris", "Canberra", "London",
           "Warsaw", "Oslo"]


def _synthetic() -> list[Example]:
    """80 items: two shapes of 10 (one positive, one negative), the rest untagged."""
    items: list[Example] = []
    for i in range(40):
        city = _CITIES[i % len(_CITIES)]
        pos_shape = "visitor_name_only" if i < 10 else ""
        neg_shape = "embassy_as_source" if i < 10 else ""
        lang = "ko" if i % 8 == 0 else "en"
        items.append(Example(f"pos-{i:03d}", _POSITIVE[i % 8], f"Officials in {city} said.",
                             1, event_type="arms_transfer" if i % 2 else "summit_letters",
                             shape=pos_shape, lang=lang))
        items.append(Example(f"neg-{i:03d}", _NEGATIVE[i % 8], f"Reported from {city}.", 0,
                             shape=neg_shape, lang=lang))
    return items


# -- arithmetic ------------------------------------------------------------------------------
def test_group_score_counts_and_rates() -> None:
    g = group_score("x", [0.9, 0.6, 0.2, 0.7, 0.1, 0.4], [1, 1, 1, 0, 0, 0], 0.5)
    assert (g.tp, g.fp, g.fn, g.tn) == (2, 1, 1, 2)
    assert g.n == 6 and g.n_positive == 3
    assert g.precision == pytest.approx(2 / 3)
    assert g.recall == pytest.approx(2 / 3)
    assert g.f1 == pytest.approx(2 / 3)
    assert g.fp_rate == pytest.approx(1 / 3)


def test_threshold_is_inclusive_and_undefined_rates_are_nan() -> None:
    negatives = group_score("neg", [0.5, 0.49], [0, 0], 0.5)
    assert (negatives.fp, negatives.tn) == (1, 1)
    assert math.isnan(negatives.recall) and math.isnan(negatives.f1)
    assert negatives.precision == 0.0
    positives = group_score("pos", [0.1, 0.2], [1, 1], 0.5)
    assert positives.recall == 0.0
    assert math.isnan(positives.precision) and math.isnan(positives.fp_rate)
    with pytest.raises(ClassifierError):
        group_score("bad", [0.1], [1, 0], 0.5)


def test_score_groups_splits_by_key_and_adds_up() -> None:
    items = [Example("a", "t", "", 1, shape="s1"), Example("b", "t", "", 0, shape="s1"),
             Example("c", "t", "", 1, shape=""), Example("d", "t", "", 0, shape="s2"),
             Example("e", "t", "", 0, shape="s2")]
    scores = np.array([0.8, 0.9, 0.1, 0.2, 0.95])
    groups = {g.group: g for g in score_groups(items, scores, 0.5,
                                               lambda e: e.shape or UNTAGGED)}
    assert set(groups) == {"s1", "s2", UNTAGGED}
    assert (groups["s1"].tp, groups["s1"].fp) == (1, 1)
    assert (groups[UNTAGGED].fn, groups[UNTAGGED].n) == (1, 1)
    assert (groups["s2"].fp, groups["s2"].tn) == (1, 1)
    assert sum(g.n for g in groups.values()) == len(items)
    with pytest.raises(ClassifierError):
        score_groups(items, scores[:2], 0.5, lambda e: e.shape)


def test_holdout_shapes_respects_minimum_and_names() -> None:
    items = [*_synthetic(), Example("z-1", "t", "", 0, shape="tiny")]
    assert holdout_shapes(items) == ["embassy_as_source", "visitor_name_only"]
    assert holdout_shapes(items, ["tiny"]) == ["tiny"]
    with pytest.raises(ClassifierError, match="nope"):
        holdout_shapes(items, ["nope"])


def test_comparison_puts_models_side_by_side() -> None:
    def report(name: str, fp: int) -> FrozenReport:
        overall = group_score("all", [0.9, 0.1] + [0.8] * fp, [1, 1] + [0] * fp, 0.5)
        shape = group_score("lists_polls", [0.8] * fp + [0.1], [0] * (fp + 1), 0.5)
        return FrozenReport(name, 0.5, overall, (shape,), (overall,))

    untagged = report("bare", 0)
    bare = FrozenReport("bare", 0.5, untagged.overall, (), untagged.by_lang)
    table = format_comparison([report("old", 1), report("new", 0), bare], markdown=True)
    lines = table.splitlines()
    assert lines[0] == "| group | n | pos | old (t=0.500) | new (t=0.500) | bare (t=0.500) |"
    assert ("| all | 3 | 2 | 0.500 / 0.500 / 0.500 | 1.000 / 0.500 / 0.667 "
            "| 1.000 / 0.500 / 0.667 |") in lines
    assert "| lists_polls | 2 | 0 | FP rate 0.500 | FP rate 0.000 | – |" in lines


# -- real fits on the synthetic set ----------------------------------------------------------
@pytest.fixture(scope="module")
def lexicon() -> KeywordLexicon:
    return KeywordLexicon.from_toml()


def test_frozen_report_uses_only_frozen_items_per_shape_and_language(
        lexicon: KeywordLexicon) -> None:
    items = _synthetic()
    fitted = fit(items, lexicon, kind="logreg", n_jobs=1)
    model = Model(fitted.bundle["classifier"], threshold=fitted.report.threshold,
                  version="synthetic")
    report = frozen_report(model, items)
    frozen = [e for e in items if is_frozen_test(e.id)]
    assert report.overall.n == len(frozen) > 0
    assert report.threshold == pytest.approx(fitted.report.threshold)
    by_shape = {g.group: g for g in report.by_shape}
    for shape in ("visitor_name_only", "embassy_as_source"):
        expected = sum(1 for e in frozen if e.shape == shape)
        assert by_shape.get(shape, group_score(shape, [], [], 0.5)).n == expected
    assert sum(g.n for g in report.by_lang) == len(frozen)
    assert {g.group for g in report.by_lang} <= {"en", "ko"}
    # The overall counts are what the model's own scores give at its threshold.
    scores = model.predict_proba([e.text for e in sorted(frozen, key=lambda e: e.id)])
    labels = [e.label for e in sorted(frozen, key=lambda e: e.id)]
    direct = group_score("all", scores, labels, model.threshold)
    assert (report.overall.tp, report.overall.fp, report.overall.fn, report.overall.tn) == (
        direct.tp, direct.fp, direct.fn, direct.tn)
    text = format_frozen(report, markdown=True)
    assert text.count("| all |") == 1 and "**Per shape**" in text and "**Per language**" in text


def test_leave_shape_out_never_fits_on_the_held_shape(lexicon: KeywordLexicon) -> None:
    items = _synthetic()
    calls: list[tuple[set[str], Any]] = []

    def recording_fit(examples: Sequence[Example], lex: KeywordLexicon, *, kind: str,
                      seed: int, n_jobs: int | None) -> Any:
        fitted = fit(examples, lex, kind=kind, seed=seed, n_jobs=n_jobs)
        calls.append(({e.id for e in examples}, fitted))
        return fitted

    messages: list[str] = []
    rows = leave_shape_out(items, lexicon, fitter=recording_fit, progress=messages.append)
    assert [r.shape for r in rows] == ["embassy_as_source", "visitor_name_only"]
    assert len(calls) == 3 and len(messages) >= 3
    all_ids = {e.id for e in items}
    assert calls[0][0] == all_ids  # the "with shape" reference model
    for row, (ids, fitted) in zip(rows, calls[1:], strict=True):
        held = [e for e in items if e.shape == row.shape]
        assert not ids & {e.id for e in held}
        assert ids == all_ids - {e.id for e in held}
        # The row's counts are exactly the held-out model's verdicts at its own threshold.
        scores = fitted.bundle["classifier"].predict_proba([e.text for e in
                                                            sorted(held, key=lambda e: e.id)])[:, 1]
        labels = [e.label for e in sorted(held, key=lambda e: e.id)]
        direct = group_score(row.shape, scores, labels, fitted.report.threshold)
        assert (row.without.tp, row.without.fp, row.without.fn, row.without.tn) == (
            direct.tp, direct.fp, direct.fn, direct.tn)
        assert row.without.n == len(held) == row.with_.n
        assert row.n_frozen == sum(1 for e in held if is_frozen_test(e.id))
        assert row.threshold_with == pytest.approx(calls[0][1].report.threshold)
    table = format_holdout(rows)
    assert "recall" in table and "FP rate" in table
