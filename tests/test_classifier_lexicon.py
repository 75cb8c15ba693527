"""Keyword lexicon and feature transformers: what counts as a mention; fast paths = slow ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from classifiers.errors import LexiconError
from classifiers.features import (
    RULE_FEATURES,
    CompactTfidfVectorizer,
    HashedCharNgrams,
    context_text,
    masked_text,
    rule_values,
    rule_vector,
)
from classifiers.keywords import SECTIONS, KeywordLexicon, normalise_text, sentence_starts


@pytest.fixture(scope="module")
def lexicon() -> KeywordLexicon:
    return KeywordLexicon.from_toml()


def rules(lexicon: KeywordLexicon, text: str) -> dict[str, float]:
    return dict(zip(RULE_FEATURES, rule_vector(lexicon.find(text), 8), strict=True))


def test_rule_features_are_filled_by_name_exactly_once(lexicon: KeywordLexicon) -> None:
    """Every name in RULE_FEATURES gets a value and nothing else does (its column is its name)."""
    from classifiers.data import load_examples

    for e in load_examples()[::25]:
        m = lexicon.find(e.text)
        values = rule_values(m, 8)
        assert list(values) == list(RULE_FEATURES)
        assert rule_vector(m, 8) == [values[name] for name in RULE_FEATURES]


def test_shipped_keyword_file_has_every_section(lexicon: KeywordLexicon) -> None:
    for name in SECTIONS:
        assert getattr(lexicon, name), name


@pytest.mark.parametrize(("text", "dprk", "russia"), [
    ("북한, 러시아에 포탄 수백만 발 제공", "북한", "러시아"),
    ("평양과 모스크바 정상회담", "평양", "모스크바"),
    ("КНДР и Россия подписали договор", "КНДР", "Россия"),
    ("Делегация Пхеньяна прибыла в Москве", "Пхеньяна", "Москве"),  # inflected forms
    ("Ким Чен Ын встретился с Путиным", "Ким Чен Ын", "Путиным"),
])
def test_korean_and_russian_spellings(lexicon: KeywordLexicon, text: str, dprk: str,
                                      russia: str) -> None:
    found = lexicon.find(text)
    # Substring matches are shown as the whole inflected word ("러시아에" for 러시아).
    assert any(h.surface.startswith(dprk) for h in found.dprk)
    assert any(h.surface.startswith(russia) for h in found.russia)
    assert found.both


def test_latin_terms_need_word_boundaries(lexicon: KeywordLexicon) -> None:
    found = lexicon.find("Kimberley diamonds: Prussian blue paint sells in Moscowville")
    assert not found.dprk
    assert not found.russia


def test_spacing_hyphens_and_typography_are_normalised(lexicon: KeywordLexicon) -> None:
    found = lexicon.find("Kim Jong\u2011un\u2019s envoy meets N.Korea watchers in the Kremlin")
    assert [h.term for h in found.dprk][:2] == ["kim jong un", "n. korea"]
    assert [h.surface for h in found.russia] == ["Kremlin"]
    assert normalise_text("a\u00a0\u201cb\u201d") == 'a "b"'


def test_matching_ignores_case_even_where_lowercasing_changes_length(
        lexicon: KeywordLexicon) -> None:
    for text in ("KIM JONG UN MEETS PUTIN", "\u0130stanbul talks: KIM JONG UN meets PUTIN"):
        found = lexicon.find(text)
        assert [h.surface for h in found.dprk] == ["KIM JONG UN"]
        assert [h.surface for h in found.russia] == ["PUTIN"]


def test_exclusions_cancel_the_mention_they_cover(lexicon: KeywordLexicon) -> None:
    found = lexicon.find("North Korean troops carry Russian-made rifles, Soviet-era tanks")
    assert not found.russia
    assert [h.term for h in found.exclusions] == ["russian made", "soviet era"]
    assert lexicon.find("North Korean troops fight for Russian forces").both


def test_weak_aliases_need_context_and_skip_other_kims(lexicon: KeywordLexicon) -> None:
    found = lexicon.find("Putin and Kim sign a pact")
    assert [h.weak for h in found.dprk] == [True]
    assert found.both_any and not found.both  # the plain keyword rule ignores weak names
    assert not lexicon.find("Kim Keon-hee attends Moscow concert").dprk
    assert not lexicon.find("Kim Dae Jung library opens").dprk


def test_prefix_terms(lexicon: KeywordLexicon) -> None:
    found = lexicon.find("Smuggling ring smuggled goods; deliveries resumed")
    assert {h.term for h in found.cooperation} >= {"smuggl*", "deliver*"}


def test_sentence_splitter_keeps_abbreviations() -> None:
    text = "U.S. says Russia buys shells. Officials in Seoul agree."
    assert sentence_starts(text) == (0, text.index("Officials"))


def test_keyword_file_validation(tmp_path: Path) -> None:
    broken = tmp_path / "k.toml"
    broken.write_text('[dprk]\nen = ["dprk"]\n', encoding="utf-8")
    with pytest.raises(LexiconError, match="missing section"):
        KeywordLexicon.from_toml(broken)
    broken.write_text("[dprk\n", encoding="utf-8")
    with pytest.raises(LexiconError, match="cannot read"):
        KeywordLexicon.from_toml(broken)
    with pytest.raises(LexiconError, match="not found"):
        KeywordLexicon.from_toml(tmp_path / "absent.toml")
    with pytest.raises(LexiconError, match="unknown section"):
        KeywordLexicon.from_mapping({"dprk": {"en": ["x"]}, "zz": {}})
    data = {name: {"en": ["x"]} for name in SECTIONS}
    data["dprk"] = {"en": ["~kim"]}
    with pytest.raises(LexiconError, match="strong"):
        KeywordLexicon.from_mapping(data)


def test_rule_features_see_structure(lexicon: KeywordLexicon) -> None:
    tie = rules(lexicon, "Russia and North Korea sign arms deal")
    listed = rules(lexicon, "Report names China, Russia, Iran and North Korea as top threats")
    assert tie["both_in_title"] == tie["pair_join"] == tie["coop_any_near_both"] == 1.0
    assert tie["enumeration"] == 0.0
    assert listed["enumeration"] == listed["list_like"] == 1.0
    troops = rules(lexicon, "Ukraine says North Korean soldiers killed near Kursk")
    assert troops["dprk_personnel_war"] == 1.0
    assert rules(lexicon, "North Korea fires missile")["dprk_only"] == 1.0


def test_relation_shape_features(lexicon: KeywordLexicon) -> None:
    veto = rules(lexicon, "Russia vetoes UN panel monitoring North Korea sanctions")
    assert veto["actor_coop_actor"] == veto["title_pair_coop"] == 1.0
    shipped = rules(lexicon, "Pyongyang ships shells to Moscow, Seoul says")
    assert shipped["actor_coop_actor"] == 1.0
    # A list of adversaries has both names and a cooperation word, but no relation.
    listed = rules(lexicon, "US and Japan modernise alliance against threats from China, "
                            "North Korea and Russia")
    assert listed["actor_coop_actor"] == listed["title_pair_coop"] == 0.0
    # Reading order within one sentence: a full stop between the parts breaks the shape.
    split = rules(lexicon, "Russia sends envoy. North Korea fires missile")
    assert split["actor_coop_actor"] == 0.0


def test_masked_and_context_views(lexicon: KeywordLexicon) -> None:
    m = lexicon.find("Pyongyang ships 10,000 shells to Moscow")
    assert masked_text(m).split() == ["zzdprk", "ships", "zznum", "shells", "to", "zzrussia"]
    context = context_text(m).split()
    assert "d_ships" in context and "r_to" in context and "b_shells" in context


def test_hashed_char_ngrams_batch_equals_single() -> None:
    docs = ["north korea ships shells", "", "россия и кндр", "kim meets putin in vladivostok"]
    vec = HashedCharNgrams(min_df=1).fit(docs)
    assert 0 < len(vec.buckets_) == vec.transform(docs).shape[1] < 200
    batch = vec.transform(docs).toarray()
    single = np.vstack([vec.transform([d]).toarray() for d in docs])
    assert np.allclose(batch, single)
    norms = np.linalg.norm(batch, axis=1)
    assert np.allclose(norms[[0, 2, 3]], 1.0) and norms[1] == 0.0


def test_compact_tfidf_matches_sklearn() -> None:
    docs = ["Russia buys shells", "North Korea sends troops to Russia", "shells shells troops"]
    for params in ({}, {"sublinear_tf": True, "ngram_range": (1, 2)}, {"norm": "l1"}):
        ours = CompactTfidfVectorizer(**params).fit(docs)
        theirs = TfidfVectorizer(**params).fit(docs)
        probe = [*docs, "", "unknown words only"]
        assert np.allclose(ours.transform(probe).toarray(), theirs.transform(probe).toarray())
