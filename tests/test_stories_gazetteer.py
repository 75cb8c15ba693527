"""The gazetteer data file (monitor/stories/gazetteer.toml): loads, is sane, and is used."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.stories import gazetteer
from monitor.stories.text import content_words, normalise, words


def test_the_shipped_file_loads_with_both_kinds_of_forms() -> None:
    prefixes, synonyms = gazetteer.load(gazetteer.DEFAULT_PATH)
    assert (prefixes, synonyms) == (gazetteer.PREFIXES, gazetteer.SYNONYMS)
    assert len(prefixes) > 200 and len(synonyms) > 50
    assert prefixes["владивост"] == prefixes["블라디보스토크"] == "vladivostok"
    assert synonyms["spaceport"] == "cosmodrome"


def test_every_form_is_lower_case_and_no_prefix_is_a_single_cyrillic_letter() -> None:
    # A one-letter Cyrillic prefix would swallow every word starting with it.
    for form in [*gazetteer.PREFIXES, *gazetteer.SYNONYMS]:
        assert form == form.lower() and form.strip() == form
    assert not [p for p in gazetteer.PREFIXES if len(p) == 1 and "\u0400" <= p <= "\u04ff"]


def test_three_languages_meet_in_one_unit() -> None:
    def units(text: str) -> list[str]:
        return content_words(words(normalise(text)))

    assert "vladivostok" in units("김정은, 블라디보스토크에 도착")
    assert "vladivostok" in units("Ким Чен Ын прибыл во Владивосток")
    assert "casualty" in units("US confirms first North Korean combat losses")  # stemmed


def test_a_malformed_file_says_where(tmp_path: Path) -> None:
    bad = tmp_path / "g.toml"
    bad.write_text('moscow = "москв"\n', encoding="utf-8")
    with pytest.raises(gazetteer.GazetteerError, match="moscow"):
        gazetteer.load(bad)
    bad.write_text("moscow = [\n", encoding="utf-8")
    with pytest.raises(gazetteer.GazetteerError, match=str(bad.name)):
        gazetteer.load(bad)


def test_later_keys_win_and_prefix_matching_is_longest_first(tmp_path: Path) -> None:
    path = tmp_path / "g.toml"
    path.write_text('north = ["северн"]\n"north korea" = ["северн", "кндр", "DPRK"]\n',
                    encoding="utf-8")
    prefixes, synonyms = gazetteer.load(path)
    assert prefixes == {"северн": "north korea", "кндр": "north korea"}
    assert synonyms == {"dprk": "north korea"}
    assert gazetteer.translate("москвы") == "moscow"
