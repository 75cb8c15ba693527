"""The word-indexed country matcher finds exactly what one regex of every term finds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from classifiers.data import load_examples
from monitor.countries import (
    _TYPOGRAPHY,
    _term_regex,
    load_country_terms,
    load_prefilter_terms,
    mentions_country,
)

KEYWORDS = Path(__file__).resolve().parent.parent / "config" / "keywords.toml"
HAND_PICKED = [
    "Kim’s regime courts Moscow", "N.K. envoy lands in Vladivostok", "KN-23 debris in Kharkiv",
    "Mercenaries from abroad", "Pyongyang-Moscow axis", "북러 정상회담", "Мост через Туманную",
    "Северокорейские военные в Курской области", "Kimchi festival in Seoul", "the northern lights",
    "Russians vote", "russia", "Nothing to see here", "", "n korea", "kcna-watch",
]


def reference(text: str, groups: tuple[frozenset[str], ...]) -> bool:
    text = text.translate(_TYPOGRAPHY)
    for group in groups:
        alternatives = sorted((_term_regex(t) for t in group), key=len, reverse=True)
        if re.search("|".join(alternatives), text, re.IGNORECASE):
            return True
    return False


@pytest.mark.parametrize("loader", [load_prefilter_terms, load_country_terms])
def test_matcher_agrees_with_the_plain_regex(loader) -> None:  # type: ignore[no-untyped-def]
    groups = tuple(loader(KEYWORDS))
    texts = HAND_PICKED + [e.text for e in load_examples()]
    found = [mentions_country(t, groups) for t in texts]
    assert found == [reference(t, groups) for t in texts]
    assert 0 < sum(found) < len(texts)
