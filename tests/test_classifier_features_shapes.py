"""Multi-party and wrong-direction rule features: each cue on sentences written for it.

Why these exist: a leave-shape-out evaluation showed the embassy-as-source, crypto-crime
and captured-weapons false alarms, and the axis and Iran-and-North-Korea positives, were
caught only when the model had seen their wording. The cues below are structural, so
each test gives a case that must fire and a close neighbour that must not.
"""

from __future__ import annotations

import pytest

from classifiers.features import RULE_FEATURES, RuleFeatures, rule_values
from classifiers.keywords import KeywordLexicon

NEW = ("russia_as_source", "separate_cases", "parallel_actors", "captured_dprk_arms",
       "against_russia", "axis_bloc", "axis_trio", "pair_with_dprk", "crime_each_side")


@pytest.fixture(scope="module")
def lexicon() -> KeywordLexicon:
    return KeywordLexicon.from_toml()


def value(lexicon: KeywordLexicon, text: str, name: str) -> float:
    return rule_values(lexicon.find(text), 8)[name]


def test_new_features_are_appended_after_the_old_columns() -> None:
    """A model saved before these existed selects its columns by index: they must come last."""
    assert RULE_FEATURES[-len(NEW):] == NEW
    assert RULE_FEATURES.index("actor_coop_actor") == len(RULE_FEATURES) - len(NEW) - 1


@pytest.mark.parametrize("text", [
    "Pyongyang ends its week-long lockdown, the Russian embassy says",
    "North Korea shuts capital schools early, according to Russian diplomats",
    "Kaesong market reopens, Russia's embassy in Pyongyang reports",
    "The embassy of Russia confirms North Korea has lifted the curfew",
    "По данным посольства России, в Пхеньяне сняли карантин",
    "러시아 대사관에 따르면 평양의 봉쇄가 해제됐다",
])
def test_russia_only_as_source(lexicon: KeywordLexicon, text: str) -> None:
    assert value(lexicon, text, "russia_as_source") == 1.0


@pytest.mark.parametrize("text", [
    # Russia is an actor as well as the source.
    "Russia ships fuel to North Korea, the Russian embassy says",
    # The embassy is an actor, not a source (no saying verb).
    "Russian embassy hosts North Korean officers at Victory Day banquet",
    "Putin and Kim sign defence treaty in Pyongyang",
])
def test_russia_as_actor_is_not_a_source(lexicon: KeywordLexicon, text: str) -> None:
    assert value(lexicon, text, "russia_as_source") == 0.0


@pytest.mark.parametrize(("text", "expected"), [
    ("Prosecutors charge North Korean coders and, in a separate case, a Russian broker", 1.0),
    ("Russian fraud ring unrelated to the North Korean theft, police say", 1.0),
    ("North Korea sends Russia artillery shells in exchange for oil", 0.0),
])
def test_separate_cases(lexicon: KeywordLexicon, text: str, expected: float) -> None:
    assert value(lexicon, text, "separate_cases") == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Bank warns of North Korean hackers and Russian fraudsters", 1.0),
    ("Russia's invasion and North Korea's rocket tests top the summit agenda", 1.0),
    ("Russian ransomware crews, North Korean thieves lead crypto losses", 1.0),
    ("Russia and North Korea sign a defence treaty", 0.0),      # the pair itself
    ("Pyongyang lifts lockdown, Russian embassy says", 0.0),    # a verb phrase, not a noun
    ("North Korean workers arrive at Russian building sites", 0.0),
])
def test_parallel_actors(lexicon: KeywordLexicon, text: str, expected: float) -> None:
    assert value(lexicon, text, "parallel_actors") == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Ukrainian gunners fire captured North Korean rockets at Russian trenches", 1.0),
    ("Kyiv's troops put a seized North Korean howitzer to work against Russia", 1.0),
    ("Украинские военные используют трофейные северокорейские снаряды против России", 1.0),
    # Captured soldiers are a sign of the alliance, not weapons turned around.
    ("Ukraine captures two North Korean soldiers fighting for Russia", 0.0),
    ("North Korean shells pound Ukrainian towns, Russia's army says", 0.0),
])
def test_captured_dprk_arms(lexicon: KeywordLexicon, text: str, expected: float) -> None:
    assert value(lexicon, text, "captured_dprk_arms") == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Ukraine turns North Korean launcher on Russian positions", 1.0),
    ("Ukrainians fire the shells back at Russian lines, not North Korean ones", 1.0),
    ("North Korea delivers launchers to Russian army", 0.0),
])
def test_against_russia(lexicon: KeywordLexicon, text: str, expected: float) -> None:
    assert value(lexicon, text, "against_russia") == expected


@pytest.mark.parametrize(("text", "bloc", "trio"), [
    ("Beijing, Moscow and Pyongyang: is a new northern triangle taking shape?", 1.0, 1.0),
    # "Xi" alone is not in the lexicon, so no China mention: a bloc, not the trio.
    ("Xi, Putin and Kim stand together as anti-Western bloc shows off", 1.0, 0.0),
    ("Analysts see an axis of Moscow and Pyongyang that leaves Beijing uneasy", 1.0, 1.0),
    ("북한과 중국, 러시아의 삼각 협력 강화 움직임", 1.0, 1.0),
    ("Russia and North Korea deepen trilateral ties with Belarus", 1.0, 0.0),
    ("China, Russia and North Korea top survey of least liked countries", 0.0, 0.0),
])
def test_axis_phrasing(lexicon: KeywordLexicon, text: str, bloc: float, trio: float) -> None:
    values = rule_values(lexicon.find(text), 8)
    assert (values["axis_bloc"], values["axis_trio"]) == (bloc, trio)


@pytest.mark.parametrize(("text", "expected"), [
    ("Iran and North Korea arm Russia for its war", 1.0),
    ("Moscow leans on Tehran and Pyongyang for drones and shells", 1.0),
    ("Iranian drones, North Korean shells keep Russia's guns firing", 1.0),
    ("Иран и КНДР снабжают Россию оружием", 1.0),
    # Iran and North Korea, but Russia in another sentence.
    ("Iran and North Korea hold talks. Separately, Russia raises rates.", 0.0),
    ("Russia and North Korea sign a treaty", 0.0),
])
def test_pair_with_dprk(lexicon: KeywordLexicon, text: str, expected: float) -> None:
    assert value(lexicon, text, "pair_with_dprk") == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Bank warns of North Korean hackers and Russian fraudsters", 1.0),
    ("Police say Russian and North Korean crooks share one laundering mixer", 1.0),
    ("러시아 사기 조직과 북한 해커 동시 적발", 1.0),
    ("North Korean hackers stole $600m from a Japanese exchange as Russia's central bank "
     "raises rates", 0.0),
    ("North Korea ships artillery shells to Russia", 0.0),
])
def test_crime_each_side(lexicon: KeywordLexicon, text: str, expected: float) -> None:
    assert value(lexicon, text, "crime_each_side") == expected


def test_cues_need_both_countries(lexicon: KeywordLexicon) -> None:
    """With one side missing the cues say nothing (they describe the link between two)."""
    values = rule_values(lexicon.find(
        "Ukrainian gunners fire captured North Korean rockets in a triangle of villages, "
        "the embassy says"), 8)
    assert all(values[name] == 0.0 for name in NEW)


def test_old_column_selection_still_works(lexicon: KeywordLexicon) -> None:
    """A RuleFeatures fitted before the new columns (its columns_ name old indices) still
    gives its old width and values: what keeps a model saved before this change loadable."""
    texts = [lexicon.find("Iran and North Korea arm Russia")]
    fitted = RuleFeatures().fit(texts)
    old = len(RULE_FEATURES) - len(NEW)
    fitted.columns_ = fitted.columns_[:old]
    fitted.feature_names_ = fitted.feature_names_[:old]
    assert fitted.transform(texts).shape == (1, old)
    assert list(fitted.get_feature_names_out())[-1] == "actor_coop_actor"
