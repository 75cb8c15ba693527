"""Explanations an analyst can act on (issue 12): evidence terms are content words and the
text's own names, never function words or placeholders, and the "why" is the clause of
the item that links the two countries, in English, Korean and Russian.

Texts are written for this test; mentions come from the shipped keyword file.
"""

from __future__ import annotations

import re

import pytest

import classifiers
from classifiers.explain import (
    STOPWORDS,
    WHY_MAX,
    feature_label,
    is_content_word,
    render,
    sentence_spans,
    trim_words,
    why_clause,
)
from classifiers.keywords import KeywordLexicon, Mentions


@pytest.fixture(scope="module")
def lexicon() -> KeywordLexicon:
    return KeywordLexicon.from_toml()


def find(lexicon: KeywordLexicon, text: str) -> Mentions:
    return lexicon.find(text)


# --- which tokens read as evidence ---------------------------------------------------------
@pytest.mark.parametrize("token", [
    "в", "о", "на", "между", "и", "что", "заявил",          # Russian prepositions, conjunctions
    "the", "to", "of", "turns", "says", "amid",             # English function and news words
    "에서", "및", "것을", "밝혔다", "위해",                 # Korean particles, endings, reporting
    "a", "x", "155", "zznum", "zznummm", "zznum년", "—", "...", "2024년",
])
def test_function_words_numbers_and_single_characters_are_not_evidence(token: str) -> None:
    assert not is_content_word(token)


@pytest.mark.parametrize("token", ["troops", "shells", "포탄을", "정상회담", "сотрудничестве",
                                   "переговоры", "zzdprk", "zzrussia"])
def test_content_words_and_actors_are_evidence(token: str) -> None:
    assert is_content_word(token)


@pytest.mark.parametrize(("block", "name"), [
    ("context", "d_в"), ("context", "d_о"), ("context", "r_turns"), ("context", "b_the"),
    ("context", "d_zzdprk"), ("context", "r_zznum"), ("context", "d_에서"),
    ("word", "на"), ("word", "shells to"), ("word", "zznum shells"), ("word", "said zzrussia"),
    ("char", "charhash123"),
])
def test_unreadable_features_get_no_label(block: str, name: str) -> None:
    assert feature_label(block, name) is None


def test_labels_show_the_texts_own_names_for_the_actors(lexicon: KeywordLexicon) -> None:
    en = find(lexicon, "Pyongyang sends troops to Moscow for the Kursk front")
    assert render(feature_label("word", "zzdprk troops"), en) == "Pyongyang troops"
    assert render(feature_label("context", "d_troops"), en) == "Pyongyang~troops"
    assert render(feature_label("context", "b_troops"), en) == "Pyongyang…troops…Moscow"
    assert render(feature_label("context", "r_zzdprk"), en) == "Moscow~Pyongyang"
    assert render(feature_label("rules", "proximity"), en) == "rule:proximity"
    ko = find(lexicon, "북한이 러시아에 포탄을 보냈다")
    assert render(feature_label("context", "d_포탄을"), ko) == "북한~포탄"  # particles dropped
    assert render(feature_label("word", "zzdprk zzrussia"), ko) == "북한 러시아"
    both = find(lexicon, "북러 군사동맹 부활")  # one term naming both countries
    assert render(feature_label("word", "zzdprk zzrussia"), both) == "북러"
    ru = find(lexicon, "Шойгу прибыл в Пхеньян")
    assert render(feature_label("context", "r_прибыл"), ru) == "Шойгу~прибыл"
    # No mention on that side: the country's name, never a placeholder.
    assert render(feature_label("context", "r_shells"), find(lexicon, "Shells")) == "Russia~shells"


SAMPLES = [
    "North Korea turns to Russia for help as sanctions bite",
    "Шойгу прибыл в Пхеньян на переговоры с Ким Чен Ыном о военном сотрудничестве",
    "북한이 러시아에 포탄을 보냈다고 국정원이 밝혔다. 북러 정상회담 이후 무기 거래가 늘었다.",
    "North Korea shipped artillery shells to Russia by rail, Seoul says. Containers of North "
    "Korean artillery shells crossed into Russia by rail from Rajin, satellite images show.",
]
_RAW = re.compile(r"zz(?:dprk|russia|other|num)|\[DPRK\]|\[RUSSIA\]|DPRK~|between:")


@pytest.fixture(scope="module")
def model() -> classifiers.Model:
    return classifiers.load()


@pytest.mark.parametrize("text", SAMPLES)
def test_the_shipped_models_top_terms_are_content_words_and_aliases(
        model: classifiers.Model, text: str) -> None:
    explained = model.explain(text)
    [scored] = model.score([text])
    terms = [name for name, _ in explained.top if not name.startswith("rule:")]
    top = scored.reason.partition("top: ")[2]
    terms += [t.rsplit(" ", 1)[0].lstrip("+-") for t in top.split(", ") if t]
    for term in terms:
        assert not _RAW.search(term), term
        words = re.split(r"[~…\s]+", term)
        assert all(w.lower() not in STOPWORDS and len(w) > 1 for w in words if w), term
    assert explained.why is not None and scored.why == explained.why
    assert len(explained.why) <= WHY_MAX


def test_the_russian_sample_no_longer_shows_prepositions(model: classifiers.Model) -> None:
    explained = model.explain(SAMPLES[1])
    assert all(name not in ("на", "DPRK~в", "DPRK~о") for name, _ in explained.top)
    assert "DPRK~" not in explained.reason and "+на" not in explained.reason


def test_non_matches_carry_no_why_in_score(model: classifiers.Model) -> None:
    [scored] = model.score(["Heatwave closes schools in Madrid"])
    assert not scored.match and scored.why is None


# --- the "why" clause ----------------------------------------------------------------------
def test_why_prefers_a_description_sentence_with_a_relation_word(lexicon: KeywordLexicon) -> None:
    text = SAMPLES[3]
    assert why_clause(find(lexicon, text)) == (
        "Containers of North Korean artillery shells crossed into Russia by rail from Rajin, "
        "satellite images show.")


def test_why_is_none_when_no_sentence_names_both(lexicon: KeywordLexicon) -> None:
    assert why_clause(find(lexicon, "North Korea fires a missile. Russia strikes Kharkiv.")) \
        is None
    assert why_clause(find(lexicon, "North Korea fires a missile into the East Sea")) is None
    assert why_clause(find(lexicon, "Heatwave closes schools in Madrid")) is None
    assert why_clause(find(lexicon, "")) is None


def test_no_sentence_ends_inside_a_name(lexicon: KeywordLexicon) -> None:
    text = "Russia-N. Korea trade nearly doubled last year, customs data show"
    assert why_clause(find(lexicon, text)) == text


def test_why_in_korean_splits_on_da_endings(lexicon: KeywordLexicon) -> None:
    text = "북한이 미사일을 발사했다.러시아는 북한에 군사 기술을 지원했다고 국정원이 밝혔다."
    assert why_clause(find(lexicon, text)) == text.split(".", 1)[1]


def test_why_in_russian_finds_the_visit_told_through_names(lexicon: KeywordLexicon) -> None:
    text = "Ракета упала в море. Шойгу прибыл в Пхеньян для переговоров с Ким Чен Ыном."
    assert why_clause(find(lexicon, text)) == (
        "Шойгу прибыл в Пхеньян для переговоров с Ким Чен Ыном.")


def test_why_takes_a_kim_putin_pair_and_an_alias_visit(lexicon: KeywordLexicon) -> None:
    assert why_clause(find(lexicon, "Kim and Putin exchange letters on Liberation Day")) == (
        "Kim and Putin exchange letters on Liberation Day")
    text = "Parade in the capital. Shoigu in Pyongyang: defence minister watches new missiles"
    assert why_clause(find(lexicon, text)) == text.split(". ", 1)[1]


def test_a_long_sentence_is_narrowed_to_the_linking_clause(lexicon: KeywordLexicon) -> None:
    text = ("Seoul weighs its options. In a long speech on Tuesday that ranged over trade, "
            "climate, the economy, the housing market, the coming local elections and the "
            "alliance with Washington, the minister said that North Korea had shipped millions "
            "of artillery shells to Russia since the summer of 2023, and that the transfers "
            "were continuing despite sanctions, according to a transcript.")
    why = why_clause(find(lexicon, text))
    assert why is not None and len(why) <= WHY_MAX
    assert "North Korea had shipped millions of artillery shells to Russia" in why
    assert why.startswith("…") and "housing market" not in why
    inner = why.strip("…")
    assert inner in text, "a quote, word for word"


def test_a_long_clause_is_cut_on_a_word_boundary(lexicon: KeywordLexicon) -> None:
    text = ("Officials said North Korea and Russia " + "expanded cooperation in every field "
            * 12 + "this year.")
    why = why_clause(find(lexicon, text), limit=120)
    assert why is not None and len(why) <= 120 and why.endswith("…")
    assert why.startswith("Officials said North Korea and Russia")
    assert text[len(why) - 1] == " "


def test_sentence_spans_cover_cjk_stops_and_abbreviations() -> None:
    text = "U.S. says Kim met Putin. 北朝鮮とロシアが会談。次の会談は来年! Next."
    sentences = [text[a:b] for a, b in sentence_spans(text)]
    assert sentences == ["U.S. says Kim met Putin.", "北朝鮮とロシアが会談。", "次の会談は来年!",
                         "Next."]


def test_trim_words() -> None:
    assert trim_words("short", 10) == "short"
    assert trim_words("one two three four", 12) == "one two…"
    assert trim_words("ロシアと北朝鮮が軍事協力を拡大した", 8) == "ロシアと北朝鮮…"
