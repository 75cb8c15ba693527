"""The Korean and Russian training files: enough of each, tagged, in the right script.

Per-language precision and recall on the frozen split mean something only if each
language has positives AND negatives there; the split is by id hash, so a file that
is edited carelessly can leave a cell nearly empty without anyone noticing. These
checks read the files as written (not through the loader) so that a missing tag is
caught rather than filled in by a default.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from classifiers.data import DATA_DIR, is_frozen_test, load_examples

FILES = {"ko": DATA_DIR / "korean.jsonl", "ru": DATA_DIR / "russian.jsonl"}
MIN_ITEMS = 170
#: Positives make up about 45 % of each file; hard negatives the rest.
POSITIVE_SHARE = (0.38, 0.52)
#: The frozen split takes ~20 % of ids; every language × label cell must get a fair share.
FROZEN_SHARE = (0.12, 0.30)
MIN_FROZEN_PER_CELL = 12

_HANGUL = re.compile(r"[\uac00-\ud7a3]")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_LATIN = re.compile(r"[A-Za-z]")
_DATE = re.compile(r"^(20(19|2[0-5]))-(0[1-9]|1[0-2])$")


def _rows(lang: str) -> list[dict[str, object]]:
    lines = Path(FILES[lang]).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.mark.parametrize("lang", sorted(FILES))
def test_enough_items_per_language_and_label(lang: str) -> None:
    rows = _rows(lang)
    labels = Counter(r["label"] for r in rows)
    assert len(rows) >= MIN_ITEMS
    share = labels[1] / len(rows)
    assert POSITIVE_SHARE[0] <= share <= POSITIVE_SHARE[1], f"{lang}: positives {share:.2f}"


@pytest.mark.parametrize("lang", sorted(FILES))
def test_frozen_split_covers_every_language_and_label(lang: str) -> None:
    rows = _rows(lang)
    for label in (0, 1):
        ids = [str(r["id"]) for r in rows if r["label"] == label]
        frozen = sum(is_frozen_test(i) for i in ids)
        assert frozen >= MIN_FROZEN_PER_CELL, f"{lang}/{label}: only {frozen} frozen items"
        assert FROZEN_SHARE[0] <= frozen / len(ids) <= FROZEN_SHARE[1], (lang, label, frozen)


@pytest.mark.parametrize("lang", sorted(FILES))
def test_every_item_is_tagged(lang: str) -> None:
    rows = _rows(lang)
    ids = [str(r["id"]) for r in rows]
    assert len(set(ids)) == len(ids)
    for row in rows:
        where = row["id"]
        assert str(row["id"]).startswith(f"{lang}-"), where
        assert row["lang"] == lang, where
        shape = str(row.get("shape") or "")
        assert shape.startswith(f"{lang}_"), where
        # A negative's shape says which hard case it stands for; a positive's, which tie.
        assert ("_neg_" in shape) == (row["label"] == 0), where
        assert bool(row.get("event_type")) == (row["label"] == 1), where
        assert row.get("style"), where
        assert _DATE.match(str(row.get("date"))), where


@pytest.mark.parametrize("lang", sorted(FILES))
def test_text_is_written_in_the_languages_script(lang: str) -> None:
    for row in _rows(lang):
        text = f"{row['title']} {row.get('summary') or ''}"
        latin = len(_LATIN.findall(text))
        if lang == "ko":
            # A Hangul syllable is a whole written syllable: weigh it like two letters.
            native, other = 2 * len(_HANGUL.findall(text)), latin + len(_CYRILLIC.findall(text))
        else:
            native, other = len(_CYRILLIC.findall(text)), latin + len(_HANGUL.findall(text))
        assert native > 2 * other, f"{row['id']}: not mostly in the {lang} script: {text!r}"


def test_loader_keeps_the_tags_and_titles_are_not_copies() -> None:
    """The loader must keep the language (per-language numbers use it), and no title may
    repeat one from another file: a copy in the other split would flatter the frozen test."""
    examples = load_examples()
    ours = [e for e in examples if e.id.startswith(("ko-", "ru-"))]
    assert len(ours) == sum(len(_rows(lang)) for lang in FILES)
    assert all(e.lang == e.id[:2] for e in ours)
    others = {e.title for e in examples if not e.id.startswith(("ko-", "ru-"))}
    assert not [e.id for e in ours if e.title in others]
