"""The English shape data (issue 12) and the Example fields it brought (shape, lang)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from classifiers.data import (
    DATA_DIR,
    Example,
    data_fingerprint,
    detect_lang,
    is_frozen_test,
    load_examples,
)
from classifiers.errors import DataError

POSITIVES = DATA_DIR / "shapes_positives.jsonl"
NEGATIVES = DATA_DIR / "shapes_negatives.jsonl"
#: The shapes the issue names, and how many items each needs at least.
POSITIVE_SHAPES = ("axis_triangle", "iran_dprk_arming_russia", "third_country_sanctions",
                   "trilateral_proposals", "visitor_name_only", "leaders_explainer",
                   "economic_effects")
NEGATIVE_SHAPES = ("embassy_as_source", "ukraine_captured_weapons", "fraud_crypto",
                   "lists_polls", "kursk_russia_only")
MIN_PER_ISSUE_SHAPE = 20
MIN_PER_OTHER_SHAPE = 10


@pytest.fixture(scope="module")
def positives() -> list[Example]:
    return load_examples([POSITIVES])


@pytest.fixture(scope="module")
def negatives() -> list[Example]:
    return load_examples([NEGATIVES])


def test_counts_per_file_and_label(positives: list[Example], negatives: list[Example]) -> None:
    assert len(positives) >= 170 and {e.label for e in positives} == {1}
    assert len(negatives) >= 270 and {e.label for e in negatives} == {0}


def test_every_item_is_tagged_and_well_formed(positives: list[Example],
                                              negatives: list[Example]) -> None:
    for e in positives + negatives:
        assert e.shape, e.id
        assert e.lang == "en", e.id
        assert re.fullmatch(r"20(19|2[0-5])-(0[1-9]|1[0-2])", e.date), e.id
        assert e.style, e.id
    assert all(e.event_type for e in positives)
    assert not any(e.event_type for e in negatives)
    assert all(e.id.startswith("shp-") for e in positives)
    assert all(e.id.startswith("shn-") for e in negatives)


def test_shape_counts(positives: list[Example], negatives: list[Example]) -> None:
    pos, neg = Counter(e.shape for e in positives), Counter(e.shape for e in negatives)
    assert not set(pos) & set(neg), "a shape tag means one label here"
    for shape in POSITIVE_SHAPES:
        assert pos[shape] >= MIN_PER_ISSUE_SHAPE, shape
    for shape in NEGATIVE_SHAPES:
        assert neg[shape] >= MIN_PER_ISSUE_SHAPE, shape
    for shape, n in (neg - Counter({s: neg[s] for s in NEGATIVE_SHAPES})).items():
        assert n >= MIN_PER_OTHER_SHAPE, shape
    assert set(pos) == set(POSITIVE_SHAPES)


def test_frozen_split_covers_every_shape(positives: list[Example],
                                         negatives: list[Example]) -> None:
    """About a fifth of each shape is frozen test data, so per-shape numbers mean something."""
    by_shape: dict[str, list[Example]] = {}
    for e in positives + negatives:
        by_shape.setdefault(e.shape, []).append(e)
    for shape, items in by_shape.items():
        frozen = sum(is_frozen_test(e.id) for e in items)
        assert frozen >= 2, shape
        assert 0.12 <= frozen / len(items) <= 0.30, (shape, frozen, len(items))


def test_ids_and_headlines_are_unique_across_all_data() -> None:
    everything = load_examples()  # raises DataError on a duplicate id in any file
    assert len({e.id for e in everything}) == len(everything)
    titles = Counter(e.title.casefold() for e in everything)
    ours = load_examples([POSITIVES, NEGATIVES])
    assert all(titles[e.title.casefold()] == 1 for e in ours)


# -- the Example fields ------------------------------------------------------------------------
def test_lang_is_detected_by_script_when_absent() -> None:
    assert detect_lang("North Korea ships shells to Russia") == "en"
    assert detect_lang("북한, 러시아에 포탄 수출… KN-23도") == "ko"
    assert detect_lang("КНДР и Россия подписали договор, сообщает KCNA") == "ru"
    assert detect_lang("1234 --") == "en"
    assert Example("x", "Путин прибыл в Пхеньян", "", 1).lang == "ru"
    assert Example("x", "Putin in Pyongyang (푸틴 방북)", "", 1).lang == "en"
    assert Example("x", "Putin", "", 1, lang="ko").lang == "ko"
    with pytest.raises(DataError):
        Example("x", "t", "", 1, lang="de")


def test_old_files_load_unchanged(tmp_path: Path) -> None:
    """A line without shape/lang loads as before, and the new fields do not move the hash."""
    line = {"id": "old-1", "title": "Kim meets Putin", "summary": "", "label": 1,
            "event_type": "summit_letters", "style": "wire", "date": "2019-04"}
    path = tmp_path / "old.jsonl"
    path.write_text(json.dumps(line) + "\n", encoding="utf-8")
    (old,) = load_examples([path])
    assert (old.shape, old.lang, old.weight) == ("", "en", 1.0)
    tagged = {**line, "shape": "visitor_name_only", "lang": "en"}
    path.write_text(json.dumps(tagged) + "\n", encoding="utf-8")
    (new,) = load_examples([path])
    assert new.shape == "visitor_name_only"
    assert data_fingerprint([old]) == data_fingerprint([new])
    path.write_text(json.dumps({**line, "lang": "xx"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="lang"):
        load_examples([path])
